"""Why the learned rate-distortion curves flatten: the transforms' own reconstruction floor.

    .venv/bin/python benchmarks/transform_floor.py            # ~3.5 min on 2 cores

For every trained image model and quality, on the 10 OSCD test cities (both dates, central
256 x 256 crops, the model's bands; never trained on), two reconstructions are compared with the
original DN:

* `coded`: the real thing, `terracodec.api.encode` + `decode` (container bytes counted);
* `unquantised`: `synthesis(analysis(x))` with the latent left continuous (no rounding, no
  entropy coding): the best that these transforms can do at any rate.

If `coded` is already close to `unquantised`, more bits cannot buy quality: what limits the
model is its transforms (their capacity, their training, or a latent too small for the bands),
not its entropy model or its rate. PSNR-10k (peak 10000 DN), pooled squared error over all frames;
rate in bits per pixel per band. Writes `benchmarks/results/transform_floor.{json,md}`; the last
line is `summary: <model>_gap_q<max>_db=<x> ...`: the dB between coded and unquantised at each
model's highest quality.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_name, oscd_test_series  # noqa: E402

from terracodec import api  # noqa: E402
from terracodec.bench.metrics import PEAK_10K, psnr_from_mse  # noqa: E402
from terracodec.zoo import list_models, load_model  # noqa: E402
from terracodec.normalization import Normalization  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _unquantised(model: Any, frames: np.ndarray) -> np.ndarray:
    """`synthesis(analysis(x))` of frames `[T, C, H, W]` DN, edge-padded to the model's multiple."""
    norm = Normalization.from_config(model.config["normalization"])
    t, c, h, w = frames.shape
    m = model.multiple
    ph, pw = -(-h // m) * m, -(-w // m) * m
    x = np.pad(frames.astype(np.float64), ((0, 0), (0, 0), (0, ph - h), (0, pw - w)), mode="edge")
    xn = norm.normalize(torch.from_numpy(x).transpose(0, 1)).transpose(0, 1).float()
    with torch.no_grad():
        x_hat = model.synthesis(model.analysis(xn)).double()
    dn = norm.denormalize(x_hat.transpose(0, 1)).transpose(0, 1).numpy()
    return dn[:, :, :h, :w]


def measure(name: str, samples: list[Any]) -> list[dict[str, Any]]:
    entry = next(e for e in list_models() if e["name"] == name)
    rows = []
    for q in entry["qualities"]:
        model = load_model(name, q).eval()
        se_coded = se_unq = 0.0
        n = bits = 0
        for s in samples:
            x = s.pixels
            blob = api.encode(x, model=model)
            y = np.asarray(api.decode(blob)).astype(np.float64)
            u = _unquantised(model, x)
            se_coded += float(((y - x) ** 2).sum())
            se_unq += float(((u - x) ** 2).sum())
            n += x.size
            bits += 8 * len(blob)
        coded, unq = (float(psnr_from_mse(se / n, PEAK_10K)) for se in (se_coded, se_unq))
        rows.append({"quality": q, "bpppb": bits / n, "psnr10k_coded": coded,
                     "psnr10k_unquantised": unq, "gap_db": unq - coded})
        print(f"{name} q{q}: {bits / n:.4f} bpppb, coded {coded:.2f} dB, unquantised {unq:.2f} dB",
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="default: every trained image model")
    parser.add_argument("--crop", type=int, default=256)
    args = parser.parse_args()
    names = args.models or [e["name"] for e in list_models()
                            if e.get("trained") and e.get("kind", "image") == "image"]
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for name in names:
        bands = load_model(name).config["band_names"]
        results[name] = measure(name, oscd_test_series(bands, args.crop))
    took = time.perf_counter() - t0
    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
           "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
           "seconds": round(took, 1), "crop": args.crop}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transform_floor.json").write_text(json.dumps({"environment": env, "models": results}, indent=2) + "\n")
    lines = [
        "# The transforms' reconstruction floor (`benchmarks/transform_floor.py`)",
        "",
        f"Created {env['date']} on {env['cpu']} ({env['torch_threads']} thread(s)), {took:.0f} s. "
        f"OSCD test cities, both dates, central {args.crop} px crops, each model's bands. "
        "`coded`: real encode + decode (container bytes); `unquantised`: synthesis(analysis(x)) "
        "with a continuous latent, the transforms' best at any rate. PSNR-10k pooled over frames.",
        "",
        "| model | quality | bpppb | PSNR-10k coded | PSNR-10k unquantised | gap dB |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for r in rows:
            lines.append(f"| {name} | {r['quality']} | {r['bpppb']:.4f} | {r['psnr10k_coded']:.2f} | "
                         f"{r['psnr10k_unquantised']:.2f} | {r['gap_db']:.2f} |")
    lines.append("")
    (RESULTS / "transform_floor.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print("summary: " + " ".join(f"{name}_gap_q{rows[-1]['quality']}_db={rows[-1]['gap_db']:.2f}"
                                 for name, rows in results.items()))


if __name__ == "__main__":
    main()
