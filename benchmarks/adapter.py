"""TerraFM from latents: how close a latent adapter's tokens come to the decoded-pixel path, and
how much time skipping the synthesis transform and the patch embedding saves.

    .venv/bin/python benchmarks/adapter.py            # ~10 min on 2 cores
    .venv/bin/python benchmarks/adapter.py --quick    # a smoke run (results/adapter_quick.*)

TerraFM-B has RANDOM weights here (DINO's initialisation, seed 0: its published weights are not
reachable from this machine), so the numbers measure how well the adapter imitates this
network's patch embedding, not the quality of TerraFM's features.

* Training (`terracodec.consumers.distill`): the 14 OSCD TRAIN cities, both dates, each date a
  frame of its 10/20/60 m GeoTIFFs; 3 random crops of 128..256 px per date, each coded with
  `tec-fp-s2l1c` at a random quality of 1..5; target: TerraFM-B's embedded patches of the
  decoded crop's reflectance (modality s2_l1c).
* Held out: the 10 OSCD TEST cities (date 1, the central 256 x 256 px) and 20 EuroSAT-MS test
  patches (64 x 64, the first 2 of each class), each coded at every quality. Per frame:
  - pixel path (what `tec embed` runs): `decode` + reflectance + patch embedding + ViT;
  - latent path: `decode_latents(space="synthesis")` + adapter + ViT (`latent_tokens`).
  Both ViT runs see the whole frame (frames are under `tec embed`'s 512 px window). Per token:
  the cosine similarity of the two paths' last-layer tokens (mean, 5th percentile), beside a
  no-information baseline (every patch replaced by the mean training patch); per embedded
  patch: R^2 of the adapter's output against the pixel path's. Times are wall-clock seconds
  per frame, the two paths interleaved in one run (alternating which goes first).

Writes `benchmarks/results/adapter.{md,json}` and, when under 5 MB, the adapter itself
(`results/adapter_tec-fp-s2l1c_terrafm-b-random.{safetensors,json}`). Last line:
`summary: cosine_mean=<x> cosine_p5=<x> latent_path_speedup=<x>` (cosine over every held-out
token at every quality; speedup = OSCD test frames' pixel-path time / latent-path time).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, SHARED_DATA, cpu_name, write_report  # noqa: E402

MODEL = "tec-fp-s2l1c"
ADAPTER = "adapter_tec-fp-s2l1c_terrafm-b-random"
OSCD = SHARED_DATA / "oscd_s2_l1c"
EUROSAT = SHARED_DATA / "eurosat_ms_subset"


def oscd_frames(split: str, dates: tuple[int, ...]) -> list[tuple[str, list[str]]]:
    """(city_date, [10 m, 20 m, 60 m files]) of the OSCD `split` cities."""
    cities = [c.strip() for c in (OSCD / f"{split}.txt").read_text().replace("\n", ",").split(",") if c.strip()]
    return [(f"{c}_img{d}", [str(OSCD / c / f"img{d}_{r}.tif") for r in ("10m", "20m", "60m")])
            for c in cities for d in dates]


def eurosat_patches(per_class: int) -> list[tuple[str, str]]:
    """(name, file) of the first `per_class` test patches of each EuroSAT class."""
    out = []
    for folder in sorted(p for p in (EUROSAT / "test").iterdir() if p.is_dir()):
        out += [(f.stem, str(f)) for f in sorted(folder.glob("*.tif"))[:per_class]]
    return out


def coded(frame: Any, crop: int, qualities: list[int]) -> list[tuple[int, bytes, int]]:
    """(quality, stream, pixels x bands) of `frame`'s central `crop` px coded at each quality."""
    from terracodec.consumers.distill import encode_crop
    from terracodec.io.baseline import has_baseline_offset
    from terracodec.io.raster import read_stack

    with read_stack([frame]) as stack:
        g = stack.grid
        h, w = min(crop, g.height), min(crop, g.width)
        window = ((g.height - h) // 2, (g.width - w) // 2, h, w)
        offset = has_baseline_offset(stack, 0)
        return [(q, encode_crop(stack, window, MODEL, q, offset), h * w * g.count) for q in qualities]


def compare(stream: bytes, adapter: Any, terrafm: Any, baseline: Any, latent_first: bool) -> dict[str, Any]:
    """Both paths on one stream: per-token cosines, the patches' squared errors, the times."""
    from terracodec.api.latents import decode_latents
    from terracodec.consumers.adapter import latent_tokens
    from terracodec.consumers.distill import decoded_input

    def pixel_path() -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        t0 = time.perf_counter()
        x, modality = decoded_input(stream)
        t1 = time.perf_counter()
        patches = terrafm.patch_embed(x, modality)
        t2 = time.perf_counter()
        tokens = terrafm.tokens_from_patches(patches, x.shape[-2] // 16, x.shape[-1] // 16)
        t3 = time.perf_counter()
        return tokens[0], patches[0], {"decode": t1 - t0, "embed": t2 - t1, "vit": t3 - t2}

    def latent_path() -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        t0 = time.perf_counter()
        y = decode_latents(stream, space="synthesis").y_hat[0]
        t1 = time.perf_counter()
        tokens = latent_tokens(adapter, terrafm, y)
        t2 = time.perf_counter()
        return tokens, y, {"decode": t1 - t0, "adapter_vit": t2 - t1}

    with torch.inference_mode():
        if latent_first:
            lat, y, lat_t = latent_path()
            pix, patches, pix_t = pixel_path()
        else:
            pix, patches, pix_t = pixel_path()
            lat, y, lat_t = latent_path()
        t0 = time.perf_counter()
        predicted = adapter(torch.from_numpy(np.nan_to_num(y))[None])[0]
        lat_t["adapter"] = time.perf_counter() - t0
        rows, cols = pix.shape[1:]
        if (rows, cols) not in baseline["tokens"]:
            flat = baseline["patch"].expand(1, rows * cols, -1).contiguous()
            baseline["tokens"][rows, cols] = terrafm.tokens_from_patches(flat, rows, cols)[0]
        constant = baseline["tokens"][rows, cols]
    valid = torch.from_numpy(~np.isnan(y).any(0)).flatten()
    lat_flat = torch.from_numpy(lat).flatten(1)[:, valid]
    pix_flat = pix.flatten(1)[:, valid]
    return {
        "cosine": F.cosine_similarity(lat_flat, pix_flat, dim=0).numpy(),
        "baseline": F.cosine_similarity(constant.flatten(1)[:, valid], pix_flat, dim=0).numpy(),
        "sse": float(((predicted[valid] - patches[valid]) ** 2).sum()),
        "sst": float(((patches[valid] - baseline["patch"]) ** 2).sum()),
        "pixel_s": sum(pix_t.values()), "latent_s": lat_t["decode"] + lat_t["adapter_vit"],
        "pixel_pre_vit_s": pix_t["decode"] + pix_t["embed"], "latent_pre_vit_s": lat_t["decode"] + lat_t["adapter"],
        "vit_s": pix_t["vit"],
    }


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    cos = np.concatenate([r["cosine"] for r in results])
    base = np.concatenate([r["baseline"] for r in results])
    total = {k: float(sum(r[k] for r in results)) for k in
             ("pixel_s", "latent_s", "pixel_pre_vit_s", "latent_pre_vit_s", "vit_s")}
    n = len(results)
    return {
        "frames": n, "tokens": int(cos.size),
        "cosine_mean": float(cos.mean()), "cosine_p5": float(np.percentile(cos, 5)),
        "baseline_cosine_mean": float(base.mean()), "baseline_cosine_p5": float(np.percentile(base, 5)),
        "patch_r2": 1.0 - sum(r["sse"] for r in results) / sum(r["sst"] for r in results),
        **{f"{k}_per_frame": v / n for k, v in total.items()},
        "speedup": total["pixel_s"] / total["latent_s"],
        "pre_vit_speedup": total["pixel_pre_vit_s"] / total["latent_pre_vit_s"],
        "bpppb": float(np.mean([r["bpppb"] for r in results])),
    }


def evaluate(sets: dict[str, list[tuple[str, Any]]], crop: int, qualities: list[int], adapter: Any,
             terrafm: Any, baseline: dict[str, Any]) -> dict[str, Any]:
    """Per set and quality (and per set over all qualities): `summarise` of every frame."""
    out: dict[str, Any] = {}
    count = 0
    for name, frames in sets.items():
        rows: dict[int, list[dict[str, Any]]] = {q: [] for q in qualities}
        for label, frame in frames:
            for q, stream, values in coded(frame, crop, qualities):
                row = compare(stream, adapter, terrafm, baseline, latent_first=count % 2 == 0)
                rows[q].append(dict(row, frame=label, bpppb=8 * len(stream) / values))
                count += 1
            cosines = " ".join(f"{rows[q][-1]['cosine'].mean():.4f}" for q in qualities)
            print(f"  {label}: cosine per quality {cosines}", flush=True)
        out[name] = {"per_quality": {q: summarise(r) for q, r in rows.items()},
                     "all": summarise([r for q in qualities for r in rows[q]])}
        out[name]["_rows"] = [r for q in qualities for r in rows[q]]
    return out


def markdown(res: dict[str, Any]) -> list[str]:
    lines = [
        "# TerraFM from latents: latent adapter vs the decoded-pixel path",
        "",
        f"Codec `{MODEL}`; encoder TerraFM-B with **RANDOM weights (seed 0)**, not the published "
        "checkpoint: cosines measure how well the adapter imitates this network's patch embedding.",
        f"Adapter: {res['adapter']['parameters']:,} parameters, trained {res['training']['seconds']:.0f} s "
        f"({res['training']['steps']} steps on {res['training']['pairs']} coded crops of the 14 OSCD train "
        f"cities); final training MSE {res['training']['final']['mse']:.4f}, cosine "
        f"{res['training']['final']['cosine']:.4f}. Machine: {res['machine']}; run {res['seconds']:.0f} s.",
        "",
        "Cosine: per token, latent-path vs pixel-path last-layer tokens (baseline: every patch "
        "replaced by the mean training patch). R^2: adapter output vs the pixel path's embedded "
        "patches. Times: seconds per frame; speedup = pixel path / latent path; pre-ViT = decode "
        "(+ reflectance) + patch embedding vs decode_latents + adapter.",
        "",
    ]
    for name, data in res["heldout"].items():
        lines += [f"## {name}", "",
                  "| quality | bpppb | frames | cosine mean | cosine p5 | baseline mean | baseline p5 | patch R^2 "
                  "| pixel path s | latent path s | speedup | pre-ViT speedup |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for q, s in [*data["per_quality"].items(), ("all", data["all"])]:
            lines.append(f"| {q} | {s['bpppb']:.3f} | {s['frames']} | {s['cosine_mean']:.4f} | {s['cosine_p5']:.4f} "
                         f"| {s['baseline_cosine_mean']:.4f} | {s['baseline_cosine_p5']:.4f} | {s['patch_r2']:.3f} "
                         f"| {s['pixel_s_per_frame']:.3f} | {s['latent_s_per_frame']:.3f} | {s['speedup']:.2f} "
                         f"| {s['pre_vit_speedup']:.2f} |")
        lines.append("")
    return lines


def main() -> None:
    from terracodec.consumers.adapter import save_adapter, terrafm_identity
    from terracodec.consumers.distill import DistillConfig, fit, make_pairs, model_qualities
    from terracodec.consumers.terrafm import build_terrafm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="A smoke run on a few inputs.")
    parser.add_argument("--steps", type=int, default=None, help="Training steps (default 4000; quick 100).")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(2)
    quick = args.quick
    train_frames = oscd_frames("train", (1,) if quick else (1, 2))[: 3 if quick else None]
    sets = {"OSCD test cities (256 x 256 px, date 1)": oscd_frames("test", (1,))[: 2 if quick else None],
            "EuroSAT-MS test patches (64 x 64 px)": eurosat_patches(1 if quick else 2)[: 3 if quick else None]}
    qualities = model_qualities(MODEL)
    cfg = DistillConfig(steps=args.steps or (100 if quick else 4000), crop=256, crop_min=128,
                        crops_per_input=2 if quick else 3, lr=2e-3, seed=0)
    terrafm = build_terrafm("b", seed=0)
    print(f"training on {len(train_frames)} OSCD train frames ...", flush=True)
    t0 = time.perf_counter()

    def progress(step: int, row: dict) -> None:
        if row["stage"] == "train" and step % 500 == 0:
            print(f"  step {step}: mse {row['mse']:.4f} cosine {row['cosine']:.4f}", flush=True)

    pairs, stream_info, modality = make_pairs([f for _, f in train_frames], MODEL, terrafm, cfg, progress=progress)
    adapter, history = fit(pairs, stream_info, modality, encoder="terrafm-b", terrafm_weights=terrafm_identity(None, 0),
                           dim=terrafm.dim, cfg=cfg, progress=progress)
    train_s = time.perf_counter() - t0
    # The no-information baseline: the mean embedded patch of the training crops.
    baseline = {"patch": torch.cat([p.target.flatten(1) for p in pairs], 1).mean(1), "tokens": {}}
    print("held-out frames ...", flush=True)
    heldout = evaluate(sets, 256, qualities, adapter, terrafm, baseline)
    rows = [r for data in heldout.values() for r in data.pop("_rows")]
    cos = np.concatenate([r["cosine"] for r in rows])
    oscd = next(iter(heldout.values()))["all"]
    size = sum(p.numel() * p.element_size() for p in adapter.state_dict().values())
    saved = None
    if size < 5e6 and not quick:
        saved = [str(p.relative_to(RESULTS.parent.parent)) for p in save_adapter(adapter, RESULTS / ADAPTER, overwrite=True)]
    res = {
        "model": MODEL, "encoder": "terrafm-b", "terrafm_weights": "random seed 0 (NOT the published weights)",
        "adapter": {"parameters": sum(p.numel() for p in adapter.parameters()), "bytes": size, "saved": saved,
                    "config": adapter.config},
        "training": {"seconds": train_s, "steps": cfg.steps, "pairs": adapter.config["training"]["pairs"],
                     "final": history[-1], "history": history},
        "heldout": heldout, "machine": f"{cpu_name()}, {torch.get_num_threads()} threads",
        "seconds": time.perf_counter() - started,
        "summary": {"cosine_mean": float(cos.mean()), "cosine_p5": float(np.percentile(cos, 5)),
                    "latent_path_speedup": oscd["speedup"]},
    }
    stem = "adapter_quick" if quick else "adapter"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=1, default=_jsonable) + "\n")
    s = res["summary"]
    write_report(stem, markdown(res), f"summary: cosine_mean={s['cosine_mean']:.4f} cosine_p5={s['cosine_p5']:.4f} "
                                      f"latent_path_speedup={s['latent_path_speedup']:.2f}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    main()
