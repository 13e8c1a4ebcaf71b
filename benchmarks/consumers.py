"""Analysis without full decoding, measured with real labels: what compression does to small
trained heads, and whether they can read our latents directly.

    .venv/bin/python benchmarks/consumers.py                 # ~12 min on 2 cores
    .venv/bin/python benchmarks/consumers.py --quick         # a subset, ~2 min (results/consumers/quick/)
    .venv/bin/python benchmarks/consumers.py --weights terrafm_b.pth   # a published TerraFM-B checkpoint

Every feature path goes through the public API as a user's would: `terracodec.encode` of the
GeoTIFFs into a `.tec` file (model `tec-fp-s2l1c`, the 13-band L1C codec, at each of its
qualities), `terracodec.decode` and `terracodec.decode_latents(path, space="synthesis")`
(the quantised latents the synthesis transform would read, without running it: [T, 96,
ceil(H/16), ceil(W/16)]). Rates are bits per pixel per band (bpppb = 8 bytes / (H W C T)) of the
real `.tec` files, headers included. The feature paths:

* `original`: the original pixels;
* `decoded`: our decoded pixels at every quality;
* `latent`: our latents directly, no synthesis transform;
* `jpeg2000`: pixels decoded from JPEG2000 (OpenJPEG, the `jpeg2000` codec of
  `terracodec.bench.classical`, all bands in one codestream) whose fixed-quality target is
  searched per image until its stream is within 4 % of the `.tec` file's bytes at that quality
  (`_consumers_tools.match_rate`); on EuroSAT also `jpeg2000_payload`: matched to the `.tec`
  tile payload alone (the ~220-byte stream header is half of a 64 x 64 file at quality 1).

Tasks (data in ../shared/data, MANIFEST.md sections 1 and 2):

* EuroSAT-MS subset, 270 labelled 64 x 64 L1C patches, 10 classes. Features: per-band mean and
  std of the patch (26 numbers; `stats`), TerraFM-B's mean-pooled last-layer patch tokens (768;
  RANDOM weights, seed 0, unless `--weights`; on the original, decoded and `jpeg2000` pixels,
  `--terrafm-paths` to change), and for the latent path the per-channel mean and std of the
  4 x 4 latent grid (192) and TerraFM's tokens from the latents through the latent adapter of
  `benchmarks/adapter.py` (`--adapter`; no synthesis, no patch embedding). Heads: logistic regression (linear probe) and kNN (k = 5),
  both on standardised features, stratified 5-fold cross-validation over all patches (seed 0),
  mean accuracy.
* OSCD change detection, the 14 train cities (the only ones with change masks; note that
  `tec-fp-s2l1c` was trained on these cities' images), each date coded as one frame of its three
  GeoTIFFs; date 2 and the mask are cropped with date 1 to their common top-left size. Cells are
  the 16 x 16-px latent grid (whole cells only); a cell is "changed" when >= 5 % of its pixels are
  (mask value 2). Cell features: pixel paths, per-band mean and std of both dates and of their
  difference (78); latent path, both dates' latents of the cell and their difference (288).
  Heads: class-balanced logistic regression (C = 0.1) and a tiny CNN over the cell grid (1x1 to
  8 channels, two 3x3 convs, 20 epochs), 7-fold city-grouped cross-validation (2 cities a
  fold); balanced accuracy and F1 of "changed" over the pooled held-out cells.

Two worker processes (one torch thread each, forked before any torch op) do the coding, the
features and the change heads; the EuroSAT heads run in the main process meanwhile. Encoded
files live in a temporary folder for the run.

Writes `benchmarks/results/consumers/{RESULTS.md,results.json,consumers.png}`. The last line is
`summary: latent_acc=<x> pixel_acc=<x> j2k_acc_at_same_rate=<x>`: EuroSAT linear-probe accuracy
with the hand-crafted features at the codec's middle quality (3 of 1..5) on the latent path, the
decoded-pixel path and JPEG2000 at that quality's bpppb; the line before gives the original
pixels' accuracy.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, cpu_name  # noqa: E402
from _consumers_tools import (  # noqa: E402
    CELL, adapter_features, band_stats, bpppb, cell_labels, cell_latent_features, cell_pixel_features,
    change_cnn, change_logreg, city_folds, classify_cv, latent_stats, match_rate, terrafm_features,
    write_outputs,
)

MODEL = "tec-fp-s2l1c"
EUROSAT = SHARED_DATA / "eurosat_ms_subset"
OSCD = SHARED_DATA / "oscd_s2_l1c"
OUT = RESULTS / "consumers"
WORKERS = 2


def log(msg: str) -> None:
    print(msg, flush=True)


def _one_thread() -> None:
    """One BLAS / OpenMP / torch thread: beside the workers more only contend (lbfgs ~15x slower)."""
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)


def code_tec(inputs: Any, path: Path, quality: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(decoded [C, H, W], synthesis-space latents [M, h, w], file bytes, tile payload bytes)."""
    import terracodec

    described = terracodec.encode(inputs, path, model=MODEL, quality=quality)
    pixels = np.asarray(terracodec.decode(path))[0]
    latents = terracodec.decode_latents(path, space="synthesis").y_hat[0]
    return pixels, latents, path.stat().st_size, int(described["frame_info"][0]["bytes"])


def load_eurosat(per_class: int | None) -> tuple[list[Path], list[str], np.ndarray, list[str]]:
    """EuroSAT patches (all, or the first `per_class` of each class): paths, classes, uint16 DN
    [N, 13, 64, 64] in the files' band order (B8A last) and the band names from the files."""
    import rasterio

    with (EUROSAT / "labels.csv").open(newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: (r["class"], r["path"]))
    if per_class:
        rows = [r for k, r in enumerate(rows) if sum(o["class"] == r["class"] for o in rows[:k]) < per_class]
    pixels, names = [], None
    for r in rows:
        with rasterio.open(EUROSAT / r["path"]) as ds:
            pixels.append(ds.read())
            if names not in (None, list(ds.descriptions)):
                raise SystemExit(f"error: {r['path']} has another band order")
            names = list(ds.descriptions)
    return [EUROSAT / r["path"] for r in rows], [r["class"] for r in rows], np.stack(pixels), names


def terrafm_model(weights: str | None) -> Any:
    """TerraFM-B (a worker builds it once): the published checkpoint `weights`, else random
    weights from seed 0 (the same in every worker)."""
    global _TERRAFM
    if _TERRAFM is None:
        from terracodec.consumers.terrafm import build_terrafm

        _TERRAFM = build_terrafm("b", weights=weights) if weights else build_terrafm("b", seed=0)
    return _TERRAFM


_TERRAFM: Any = None
#: The latent adapter `benchmarks/adapter.py` trains for tec-fp-s2l1c and random TerraFM-B (seed 0).
RANDOM_ADAPTER = OUT.parent / "adapter_tec-fp-s2l1c_terrafm-b-random.safetensors"
_PIXEL_PATHS = ("decoded", "jpeg2000", "jpeg2000_payload")


def eurosat_task(paths: list[Path], x: np.ndarray, names: list[str], qualities: list[int], tmp: Path,
                 terrafm: dict[str, Any] | None) -> dict[Any, Any]:
    """Code a worker's share of the patches at every quality and compute their features: per
    quality the `.tec` file / payload bytes, JPEG2000 bytes matched to each of them, the
    hand-crafted features of every path and TerraFM's on `terrafm["paths"]` (+ `original`)."""
    from terracodec.bench.classical import Jpeg2000

    j2k = Jpeg2000(threads=1)
    tried: dict[tuple[int, str], dict[float, int]] = {}
    seconds = [0.0]

    def tokens(pixels: np.ndarray) -> np.ndarray:
        t0 = time.perf_counter()
        out = terrafm_features(terrafm_model(terrafm["weights"]), pixels, names)
        seconds[0] += time.perf_counter() - t0
        return out

    out: dict[Any, Any] = {"original": {"stats": band_stats(x)}}
    if terrafm:
        out["original"]["terrafm"] = tokens(x)
    for q in qualities:  # quality outermost: one model load per quality
        px = {k: np.empty_like(x) for k in _PIXEL_PATHS}
        lat, r = [], {k: [] for k in ("bytes", "payload", "jpeg2000_bytes", "jpeg2000_payload_bytes",
                                      "jpeg2000_ratio", "jpeg2000_payload_ratio")}
        hint = {"jpeg2000": 50.0, "jpeg2000_payload": 50.0}
        for i, p in enumerate(paths):
            px["decoded"][i], y, n, pay = code_tec(p, tmp / f"eurosat_q{q}_{p.parent.parent.name}_{p.stem}.tec", q)
            lat.append(y)
            r["bytes"].append(n)
            r["payload"].append(pay)
            for kind, target in (("jpeg2000", n), ("jpeg2000_payload", pay)):
                m = match_rate(lambda lv: j2k.encode(x[i], lv), target, tried=tried.setdefault((i, kind), {}),
                               start=hint[kind])
                hint[kind] = m["level"]
                px[kind][i] = j2k.decode(m["data"])
                r[f"{kind}_bytes"].append(m["bytes"])
                r[f"{kind}_ratio"].append(m["ratio"])
        out[q] = {"rates": r, "latent": {"stats": latent_stats(np.stack(lat))}}
        if terrafm and terrafm.get("adapter"):
            t0, stream = time.perf_counter(), tmp / f"eurosat_q{q}_{paths[0].parent.parent.name}_{paths[0].stem}.tec"
            out[q]["latent"]["terrafm"] = adapter_features(terrafm["adapter"], terrafm_model(terrafm["weights"]),
                                                           terrafm["weights"], lat, stream)
            seconds[0] += time.perf_counter() - t0
        for k in _PIXEL_PATHS:
            out[q][k] = {"stats": band_stats(px[k])}
            if terrafm and k in terrafm["paths"]:
                out[q][k]["terrafm"] = tokens(px[k])
    out["terrafm_seconds"] = seconds[0]
    return out


def eurosat_row(path: str, quality: int | None, rate: float | None, feats: dict[str, np.ndarray],
                classes: list[str], **extra: Any) -> dict[str, Any]:
    row = {"path": path, "quality": quality, "bpppb": rate, **extra}
    for kind, f in feats.items():
        row.update({f"{kind}_{k}": v for k, v in classify_cv(f, classes).items()})
    log(f"eurosat {path} q{quality}: bpppb {rate if rate is None else round(rate, 4)}, "
        + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.startswith(("stats_", "terrafm_"))))
    return row


def run_eurosat(data: tuple, futures: list[Any], qualities: list[int]) -> dict[str, Any]:
    paths, classes, x, names = data
    parts = [f.result() for f in futures]

    def feats(*key: Any) -> dict[str, np.ndarray]:
        found = [p[key[0]] if len(key) == 1 else p[key[0]][key[1]] for p in parts]
        return {k: np.concatenate([f[k] for f in found]) for k in found[0]}

    rows = [eurosat_row("original", None, None, feats("original"), classes)]
    shape = x[0].shape
    for q in qualities:
        r = {k: [v for p in parts for v in p[q]["rates"][k]] for k in parts[0][q]["rates"]}
        rate = {k: float(np.mean([bpppb(n, shape) for n in r[k]])) for k in r if not k.endswith("ratio")}
        rows.append(eurosat_row("decoded", q, rate["bytes"], feats(q, "decoded"), classes, payload_bpppb=rate["payload"]))
        rows.append(eurosat_row("latent", q, rate["bytes"], feats(q, "latent"), classes))
        for kind, target in (("jpeg2000", "bytes"), ("jpeg2000_payload", "payload")):
            rows.append(eurosat_row(kind, q, rate[f"{kind}_bytes"], feats(q, kind), classes, target_bpppb=rate[target],
                                    rate_ratio_worst=_worst(r[f"{kind}_ratio"])))
    return {"patches": len(paths), "classes": sorted(set(classes)), "band_names": names,
            "latent_shape": [96, -(-shape[1] // CELL), -(-shape[2] // CELL)], "rows": rows,
            "terrafm_seconds": sum(p["terrafm_seconds"] for p in parts)}


def _worst(ratios: list[float]) -> float:
    return float(max(ratios, key=lambda v: abs(v - 1)))


def load_city(city: str) -> dict[str, Any]:
    """One OSCD city: both dates' 13-band stacks as the encoder reads them (20/60 m bands
    resampled onto the 10 m grid), the frames' file lists, the mask, the common whole-cell grid."""
    import rasterio

    from terracodec.io.raster import read_stack

    out: dict[str, Any] = {"city": city, "frames": [], "pixels": []}
    for d in (1, 2):
        frame = [OSCD / city / f"img{d}_{r}.tif" for r in ("10m", "20m", "60m")]
        with read_stack([frame]) as stack:
            out["pixels"].append(stack.read(0, 0, 0, stack.grid.height, stack.grid.width))
        out["frames"].append(frame)
    with rasterio.open(OSCD / city / "change_mask.tif") as ds:
        mask = ds.read(1)
    h = min(mask.shape[0], *(p.shape[1] for p in out["pixels"]))
    w = min(mask.shape[1], *(p.shape[2] for p in out["pixels"]))
    out["nh"], out["nw"] = h // CELL, w // CELL
    out["labels"] = cell_labels(mask, out["nh"], out["nw"])
    return out


def oscd_task(city: str, qualities: list[int], tmp: Path) -> dict[str, Any]:
    """One city (a worker's share): the labels and the cell features of every path and quality,
    with the bits and coded elements of both dates."""
    from terracodec.bench.classical import Jpeg2000

    d = load_city(city)
    nh, nw = d["nh"], d["nw"]
    j2k = Jpeg2000(threads=1)
    out: dict[str, Any] = {"labels": d["labels"], "original": cell_pixel_features(*d["pixels"], nh, nw)}
    tried: list[dict[float, int]] = [{}, {}]
    hint = 50.0
    for q in qualities:
        dec, lat, jdec, bits, jbits, ratios = [], [], [], 0, 0, []
        for t in (0, 1):
            px, y, n, _ = code_tec([d["frames"][t]], tmp / f"oscd_{city}_{t}_q{q}.tec", q)
            x = d["pixels"][t]
            m = match_rate(lambda lv: j2k.encode(x, lv), n, tried=tried[t], start=hint)
            hint = m["level"]
            dec.append(px)
            lat.append(y)
            jdec.append(j2k.decode(m["data"]))
            bits, jbits = bits + 8 * n, jbits + 8 * m["bytes"]
            ratios.append(m["ratio"])
        out[q] = {"decoded": cell_pixel_features(*dec, nh, nw), "latent": cell_latent_features(*lat, nh, nw),
                  "jpeg2000": cell_pixel_features(*jdec, nh, nw), "bits": bits, "jpeg2000_bits": jbits,
                  "elements": d["pixels"][0].size + d["pixels"][1].size, "ratios": ratios}
    return out


def change_row(path: str, quality: int | None, rate: float | None, grids: list[np.ndarray],
               labels: list[np.ndarray], extra: dict[str, Any]) -> dict[str, Any]:
    folds = city_folds(len(grids))
    row = {"path": path, "quality": quality, "bpppb": rate, **extra}
    row.update({f"logreg_{k}": v for k, v in change_logreg(grids, labels, folds).items()})
    row.update({f"cnn_{k}": v for k, v in change_cnn(grids, labels, folds).items()})
    return row


def run_oscd(cities: list[str], futures: list[Any], qualities: list[int], pool: Any) -> dict[str, Any]:
    parts = [f.result() for f in futures]
    labels = [p["labels"] for p in parts]
    jobs = [("original", None, None, [p["original"] for p in parts], {})]
    for q in qualities:
        bits, jbits, n = (sum(p[q][k] for p in parts) for k in ("bits", "jpeg2000_bits", "elements"))
        jobs += [("decoded", q, bits / n, [p[q]["decoded"] for p in parts], {}),
                 ("latent", q, bits / n, [p[q]["latent"] for p in parts], {}),
                 ("jpeg2000", q, jbits / n, [p[q]["jpeg2000"] for p in parts],
                  {"target_bpppb": bits / n, "rate_ratio_worst": _worst([r for p in parts for r in p[q]["ratios"]])})]
    rows = []
    for row in pool.map(change_row, *zip(*[(*job[:4], labels, job[4]) for job in jobs])):
        log(f"oscd {row['path']} q{row['quality']}: bpppb {row['bpppb'] if row['bpppb'] is None else round(row['bpppb'], 4)}, "
            + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.startswith(("logreg_", "cnn_"))))
        rows.append(row)
    cells = int(sum(y.size for y in labels))
    return {"cities": cities, "cells": cells, "changed_cells": int(sum(y.sum() for y in labels)), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, metavar="PATH", help="a TerraFM-B checkpoint (default: random weights)")
    parser.add_argument("--no-terrafm", action="store_true", help="hand-crafted features only")
    parser.add_argument("--quick", action="store_true", help="50 EuroSAT patches, 4 OSCD cities, qualities 1, 3, 5")
    parser.add_argument("--terrafm-paths", default="decoded,jpeg2000",
                        help="pixel paths whose TerraFM features are computed besides the original's "
                             "(comma list of decoded, jpeg2000, jpeg2000_payload; '' for none)")
    parser.add_argument("--adapter", default=None, metavar="PATH",
                        help="latent adapter for TerraFM on the latent path (default without --weights: "
                             f"{RANDOM_ADAPTER.name}; with --weights: none unless given)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results/consumers)")
    args = parser.parse_args()
    if not (EUROSAT.is_dir() and OSCD.is_dir()):
        sys.exit(f"error: {EUROSAT} or {OSCD} is not present")
    import terracodec

    out = args.out or (OUT / "quick" if args.quick else OUT / f"terrafm_{Path(args.weights).stem}" if args.weights else OUT)
    qualities = next(m["qualities"] for m in terracodec.models() if m["name"] == MODEL)
    if args.quick:
        qualities = [qualities[0], qualities[len(qualities) // 2], qualities[-1]]
    cities = [c.strip() for c in (OSCD / "train.txt").read_text().replace("\n", ",").split(",") if c.strip()]
    if args.quick:
        cities = ["bercy", "paris", "rennes", "bordeaux"]
    eurosat_data = load_eurosat(5 if args.quick else None)
    paths, x, names = eurosat_data[0], eurosat_data[2], eurosat_data[3]
    fm_paths = [k for k in args.terrafm_paths.split(",") if k]
    if set(fm_paths) - set(_PIXEL_PATHS):
        sys.exit(f"error: --terrafm-paths takes {', '.join(_PIXEL_PATHS)}")
    adapter = args.adapter or (None if args.weights or not RANDOM_ADAPTER.exists() else str(RANDOM_ADAPTER))
    terrafm = None if args.no_terrafm else {"weights": args.weights, "paths": fm_paths, "adapter": adapter}
    start = time.perf_counter()
    # Workers fork before this process runs any torch op (OpenMP is not fork-safe once used);
    # they code (our codec and JPEG2000), compute the features and train the change heads, one
    # thread each; this process fits the EuroSAT heads meanwhile.
    context = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="tec-consumers-") as tmp, \
            ProcessPoolExecutor(WORKERS, mp_context=context, initializer=_one_thread) as pool:
        chunks = np.array_split(np.arange(len(paths)), 2 * WORKERS)
        eu_futures = [pool.submit(eurosat_task, [paths[i] for i in c], x[c], names, qualities, Path(tmp), terrafm)
                      for c in chunks]
        big_first = sorted(cities, key=lambda c: -(OSCD / c / "img1_10m.tif").stat().st_size)
        oscd_futures = {c: pool.submit(oscd_task, c, qualities, Path(tmp)) for c in big_first}
        _one_thread()  # after the fork: this process now fits the EuroSAT heads
        eurosat = run_eurosat(eurosat_data, eu_futures, qualities)
        t_eurosat = time.perf_counter() - start
        oscd = run_oscd(cities, [oscd_futures[c] for c in cities], qualities, pool)
    seconds = time.perf_counter() - start
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
           "workers": WORKERS, "python": platform.python_version(),
           "seconds": round(seconds, 1), "cpu_seconds": round(sum(u.ru_utime + u.ru_stime for u in usage), 1),
           "load_average_end": os.getloadavg()[0], "eurosat_seconds": round(t_eurosat, 1), "model": MODEL,
           "qualities": qualities, "quick": args.quick,
           "command": "python benchmarks/consumers.py" + (" --quick" if args.quick else "")
           + (f" --weights {args.weights}" if args.weights else "") + (" --no-terrafm" if args.no_terrafm else "")
           + (f" --terrafm-paths {args.terrafm_paths!r}" if args.terrafm_paths != "decoded,jpeg2000" else "")
           + (f" --adapter {args.adapter}" if args.adapter else ""),
           "terrafm": None if terrafm is None else {
               "label": f"TerraFM-B, weights {Path(args.weights).name}" if args.weights
               else "TerraFM-B with RANDOM weights (seed 0), not a trained model",
               "paths": ["original", *fm_paths, *([f"latent (adapter {Path(adapter).name})"] if adapter else [])],
               "seconds": round(eurosat["terrafm_seconds"], 1),
               "variants": 1 + (len(fm_paths) + bool(adapter)) * len(qualities)}}
    mid = qualities[len(qualities) // 2]
    pick = {r["path"]: r["stats_linear"] for r in eurosat["rows"] if r["quality"] in (None, mid)}
    summary = {"quality": mid, "latent_acc": pick["latent"], "pixel_acc": pick["decoded"],
               "j2k_acc_at_same_rate": pick["jpeg2000"], "original_acc": pick["original"]}
    write_outputs(out, {"environment": env, "summary": summary, "eurosat": eurosat, "oscd": oscd})
    log(f"wrote {out}/ in {seconds:.0f} s")
    log(f"original_acc={summary['original_acc']:.4f} (EuroSAT linear probe, hand-crafted features, original pixels)")
    log(f"summary: latent_acc={summary['latent_acc']:.4f} pixel_acc={summary['pixel_acc']:.4f} "
        f"j2k_acc_at_same_rate={summary['j2k_acc_at_same_rate']:.4f}")


if __name__ == "__main__":
    main()
