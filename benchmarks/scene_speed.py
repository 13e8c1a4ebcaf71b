"""CPU speed of a 12-band learned codec (TEC-FP or TEC-ELIC) against OpenJPEG at matched PSNR, on a 1024 x 1024 x 12 scene.

    .venv/bin/python benchmarks/scene_speed.py [--model tec-fp-s2l2a] [--threads 2] [--repeats 2]

Issue 3 asks how fast a learned codec codes a real scene on a CPU next to JPEG2000 *at the same
quality*, measured in the same run. The scene is a 2 x 2 mosaic of the central 512 x 512 pixels
of four OSCD test cities (first date; 12 bands: L1C without B10, 20 m / 60 m bands resampled
to 10 m, bilinear, as in the rate-distortion sets). For every quality of the model:

1. the model codes the scene through `terracodec.api.encode` / `decode` on the array (the
   `.tec` container included, 512-pixel tiles), and its PSNR-10k is measured;
2. OpenJPEG (imagecodecs `jpeg2k_encode`, all 12 bands as components of one codestream, the
   same settings as the `jpeg2000` codec of the RD benchmark) is tuned to the same PSNR-10k: its
   fixed-quality target is searched (secant steps, then bisection) until the PSNR-10k it gives
   is within `--tolerance` dB of the model's;
3. both are timed, alternately, `--repeats` times each (encode and decode separately, after an
   untimed warm-up); the fastest run counts (the machine is shared, slower runs are noise).

Threads: torch uses `--threads` intra-op threads; OpenJPEG gets the same number (`numthreads`,
used by its tier-1 block coder on encode and decode). MPix/s counts pixels of the H x W grid,
all 12 bands together. Writes `benchmarks/results/scene_speed.json` and `.md`;
`rd_benchmark.py` runs the same code and puts the table into RESULTS.md. The last line printed
is `summary: enc_ratio=<x> dec_ratio=<x>` (model MPix/s over OpenJPEG MPix/s, geometric mean
over the qualities; > 1: the model is faster).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "oscd_s2_l1c"
RESULTS = ROOT / "benchmarks" / "results"
CITIES = ("dubai", "lasvegas", "saclay_w", "chongqing")  # test cities at least 512 px a side

sys.path.insert(0, str(ROOT))
from terracodec.bands import S2_L2A_BANDS  # noqa: E402

BANDS = list(S2_L2A_BANDS)  # L1C without B10, in the model's (L2A) order


def build_scene(size: int = 1024) -> np.ndarray:
    """[12, size, size] uint16: central (size/2)^2 crops of four OSCD test cities, 2 x 2."""
    from terracodec.bench import load_inputs
    from terracodec.bench.data import center_crop

    half = size // 2
    if size % 2 or half > 544:
        raise SystemExit(f"error: --size must be even and at most 1088 (got {size})")
    crops = []
    for city in CITIES:
        (sample,) = load_inputs([DATA / city], bands=BANDS, series=True)
        crops.append(center_crop(sample.pixels[0], half))
    top = np.concatenate(crops[:2], axis=2)
    bottom = np.concatenate(crops[2:], axis=2)
    return np.ascontiguousarray(np.concatenate([top, bottom], axis=1))


def psnr10k(x: np.ndarray, y: np.ndarray) -> float:
    from terracodec.bench.metrics import PEAK_10K, psnr

    return psnr(x, y, PEAK_10K)


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """(last result, fastest wall time of `repeats` calls)."""
    best, out = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def match_jpeg2000(codec: Any, x: np.ndarray, target: float, tolerance: float,
                   max_steps: int = 14) -> dict[str, Any]:
    """The OpenJPEG fixed-quality level whose PSNR-10k on `x` is within `tolerance` of `target`.

    OpenJPEG's target is a PSNR against the 16-bit peak, so the first guess is the target plus
    20 log10(65535 / 10000); then secant steps on (level, PSNR-10k), falling back to bisection
    inside the bracket found so far.
    """
    tried: list[tuple[float, float, int]] = []  # (level, psnr10k, bytes)

    def trial(level: float) -> float:
        data = codec.encode(x, level)
        got = psnr10k(x, codec.decode(data))
        tried.append((level, got, len(data)))
        return got

    level = target + 20 * math.log10(65535 / 10000)
    got = trial(level)
    prev: tuple[float, float] | None = None
    for _ in range(max_steps):
        if abs(got - target) <= tolerance:
            break
        below = [(lv, p) for lv, p, _ in tried if p < target]
        above = [(lv, p) for lv, p, _ in tried if p > target]
        lo = max(below, key=lambda t: t[1]) if below else None
        hi = min(above, key=lambda t: t[1]) if above else None
        slope = 1.0
        if prev is not None and prev[0] != level and prev[1] != got:
            slope = (got - prev[1]) / (level - prev[0])
            slope = min(max(slope, 0.25), 4.0)
        nxt = level + (target - got) / slope
        if lo and hi and not (min(lo[0], hi[0]) < nxt < max(lo[0], hi[0])):
            nxt = 0.5 * (lo[0] + hi[0])
        prev = (level, got)
        level = nxt
        got = trial(level)
    level, got, size = min(tried, key=lambda t: abs(t[1] - target))
    return {"level": level, "psnr10k": got, "bytes": size, "trials": len(tried)}


def run(model: str = "tec-fp-s2l2a", size: int = 1024, threads: int = 2, repeats: int = 2,
        tolerance: float = 0.1, qualities: list[int] | None = None,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    import torch

    from terracodec import api
    from terracodec.bench.classical import Jpeg2000
    from terracodec.bench.data import center_crop

    torch.set_num_threads(threads)
    entry = next((m for m in api.models() if m["name"] == model), None)
    if entry is None:
        raise SystemExit(f"error: unknown model {model}")
    t0 = time.perf_counter()
    x = build_scene(size)
    log(f"scene: {x.shape[1]} x {x.shape[2]} x {x.shape[0]} uint16 mosaic of {', '.join(CITIES)} "
        f"({time.perf_counter() - t0:.0f} s to build)")
    mpix = x.shape[1] * x.shape[2] / 1e6
    elements = x.size
    j2k = Jpeg2000(threads=threads)
    rows = []
    for q in qualities or entry["qualities"]:
        # warm-up: load the model (one weights file for every quality), first calls into torch
        small = center_crop(x, 128)
        api.decode(api.encode(small, model=model, quality=q, band_names=BANDS))

        def fp_encode() -> bytes:
            return api.encode(x, model=model, quality=q, band_names=BANDS)

        stream = fp_encode()
        y = np.asarray(api.decode(stream).pixels)[0]
        target = psnr10k(x, y)
        match = match_jpeg2000(j2k, x, target, tolerance)
        level = match["level"]
        j2k_data = j2k.encode(x, level)
        times = {"fp_enc": math.inf, "fp_dec": math.inf, "j2k_enc": math.inf, "j2k_dec": math.inf}
        for _ in range(repeats):  # alternate, so that load changes hit both codecs alike
            _, s = best_time(fp_encode, 1)
            times["fp_enc"] = min(times["fp_enc"], s)
            _, s = best_time(lambda: api.decode(stream), 1)
            times["fp_dec"] = min(times["fp_dec"], s)
            _, s = best_time(lambda: j2k.encode(x, level), 1)
            times["j2k_enc"] = min(times["j2k_enc"], s)
            _, s = best_time(lambda: j2k.decode(j2k_data), 1)
            times["j2k_dec"] = min(times["j2k_dec"], s)
        row = {
            "quality": q, "psnr10k": target, "bpppb": 8 * len(stream) / elements, "bytes": len(stream),
            "j2k_level": level, "j2k_psnr10k": match["psnr10k"], "j2k_bytes": len(j2k_data),
            "j2k_bpppb": 8 * len(j2k_data) / elements, "j2k_trials": match["trials"],
            **{f"{k}_s": v for k, v in times.items()},
            **{f"{k}_mpix_s": mpix / v for k, v in times.items()},
        }
        row["enc_ratio"] = row["fp_enc_mpix_s"] / row["j2k_enc_mpix_s"]
        row["dec_ratio"] = row["fp_dec_mpix_s"] / row["j2k_dec_mpix_s"]
        row["rate_ratio"] = row["bytes"] / row["j2k_bytes"]
        rows.append(row)
        log(f"q{q}: PSNR-10k {target:.2f} dB ({row['bpppb']:.4f} bpppb) vs OpenJPEG {match['psnr10k']:.2f} dB "
            f"({row['j2k_bpppb']:.4f} bpppb, level {level:.2f}, {match['trials']} trials); "
            f"encode {row['fp_enc_mpix_s']:.3f} vs {row['j2k_enc_mpix_s']:.3f} MPix/s, "
            f"decode {row['fp_dec_mpix_s']:.3f} vs {row['j2k_dec_mpix_s']:.3f} MPix/s")
    scaling = _one_thread(x, model, rows[len(rows) // 2], repeats, threads) if threads > 1 and rows else None
    torch.set_num_threads(threads)
    import imagecodecs

    return {
        "one_thread": scaling,
        "model": model, "trained": entry.get("trained"), "scene": list(x.shape), "cities": list(CITIES),
        "threads": threads, "repeats": repeats, "tolerance_db": tolerance, "rows": rows,
        "torch": torch.__version__, "openjpeg": imagecodecs.jpeg2k_version(),
        "imagecodecs": imagecodecs.__version__, "cpu_count": os.cpu_count(),
        "load_average_end": os.getloadavg(),
        "enc_ratio": _geomean([r["enc_ratio"] for r in rows]),
        "dec_ratio": _geomean([r["dec_ratio"] for r in rows]),
    }


def _one_thread(x: np.ndarray, model: str, row: dict[str, Any], repeats: int, threads: int) -> dict[str, Any]:
    """Both codecs again with 1 thread at one quality: how much the extra threads bring."""
    import torch

    from terracodec import api
    from terracodec.bench.classical import Jpeg2000

    torch.set_num_threads(1)
    q, level = row["quality"], row["j2k_level"]
    j2k = Jpeg2000(threads=1)
    stream, fp_enc = best_time(lambda: api.encode(x, model=model, quality=q, band_names=BANDS), repeats)
    _, fp_dec = best_time(lambda: api.decode(stream), repeats)
    data, j2k_enc = best_time(lambda: j2k.encode(x, level), repeats)
    _, j2k_dec = best_time(lambda: j2k.decode(data), repeats)
    return {"quality": q, "threads": threads, "fp_enc_s": fp_enc, "fp_dec_s": fp_dec,
            "j2k_enc_s": j2k_enc, "j2k_dec_s": j2k_dec}


def _geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else math.nan


def markdown(res: dict[str, Any], heading: str = "##") -> list[str]:
    """The section RESULTS.md (and scene_speed.md) shows."""
    c, h, w = res["scene"]
    lines = [
        f"{heading} CPU speed on a {h} x {w} x {c} scene, next to OpenJPEG at matched PSNR",
        "",
        f"Scene: 2 x 2 mosaic of the central {h // 2} x {w // 2} pixels of the OSCD test cities "
        f"{', '.join(res['cities'])} (first date, {c} bands = L1C without B10, 20/60 m bands resampled to"
        " 10 m). Model `" + res["model"] + "` through `terracodec.api` (`.tec` container, 512-px tiles);"
        f" OpenJPEG {res['openjpeg']} (imagecodecs {res['imagecodecs']}) with all {c} bands in one"
        " codestream (the `jpeg2000` settings of the RD benchmark), its fixed-quality target searched per point until"
        f" its PSNR-10k is within {res['tolerance_db']} dB of the model's. Both measured in the same run,"
        f" alternately, fastest of {res['repeats']} runs each. Threads: torch {res['threads']},"
        f" OpenJPEG numthreads {res['threads']}; {res['cpu_count']} CPU cores; load average at the end"
        f" {res['load_average_end'][0]:.1f} (shared machine). MPix/s: pixels of the H x W grid (all bands)"
        " per second; ratio > 1: the model is faster.",
        "",
        "| quality | PSNR-10k model / OpenJPEG | bpppb model / OpenJPEG | encode s model / OpenJPEG "
        "| encode MPix/s model / OpenJPEG (ratio) | decode s model / OpenJPEG | decode MPix/s model / OpenJPEG (ratio) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['quality']} | {r['psnr10k']:.2f} / {r['j2k_psnr10k']:.2f} | {r['bpppb']:.4f} / {r['j2k_bpppb']:.4f} "
            f"| {r['fp_enc_s']:.2f} / {r['j2k_enc_s']:.2f} "
            f"| {r['fp_enc_mpix_s']:.3f} / {r['j2k_enc_mpix_s']:.3f} (**{r['enc_ratio']:.2f}x**) "
            f"| {r['fp_dec_s']:.2f} / {r['j2k_dec_s']:.2f} "
            f"| {r['fp_dec_mpix_s']:.3f} / {r['j2k_dec_mpix_s']:.3f} (**{r['dec_ratio']:.2f}x**) |")
    lines += [
        "",
        f"Geometric mean over the qualities: encode {res['enc_ratio']:.2f}x, decode {res['dec_ratio']:.2f}x"
        " OpenJPEG's speed" + ("" if res["trained"] else " (the model is untrained: speed only)") + ".",
        "",
    ]
    one = res.get("one_thread")
    if one:
        row = next(r for r in res["rows"] if r["quality"] == one["quality"])
        lines += [
            f"Threads: at quality {one['quality']}, going from 1 to {one['threads']} threads takes the model's"
            f" encode from {one['fp_enc_s']:.2f} s to {row['fp_enc_s']:.2f} s and decode from"
            f" {one['fp_dec_s']:.2f} s to {row['fp_dec_s']:.2f} s; OpenJPEG's encode from {one['j2k_enc_s']:.2f} s"
            f" to {row['j2k_enc_s']:.2f} s and decode from {one['j2k_dec_s']:.2f} s to {row['j2k_dec_s']:.2f} s.",
            "",
        ]
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="tec-fp-s2l2a")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tolerance", type=float, default=0.1, help="PSNR match, dB")
    p.add_argument("--qualities", default=None, help="comma list (default: every quality of the model)")
    a = p.parse_args()
    qualities = [int(q) for q in a.qualities.split(",")] if a.qualities else None
    res = run(a.model, a.size, a.threads, a.repeats, a.tolerance, qualities,
              log=lambda s: print(s, flush=True))
    RESULTS.mkdir(parents=True, exist_ok=True)
    from terracodec.bench.report import jsonable

    (RESULTS / "scene_speed.json").write_text(json.dumps(jsonable(res), indent=1) + "\n")
    cmd = f"python benchmarks/scene_speed.py --model {a.model} --threads {a.threads} --repeats {a.repeats}"
    (RESULTS / "scene_speed.md").write_text("\n".join([f"Regenerate: `{cmd}`", ""] + markdown(res, "#")))
    print(f"wrote {RESULTS / 'scene_speed.md'}")
    print(f"summary: enc_ratio={res['enc_ratio']:.3f} dec_ratio={res['dec_ratio']:.3f}")


if __name__ == "__main__":
    main()
