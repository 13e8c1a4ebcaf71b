"""Why the learned rate-distortion curves flatten: the transforms' own reconstruction floor.

    .venv/bin/python benchmarks/transform_floor.py            # ~3.5 min on 2 cores
    .venv/bin/python benchmarks/transform_floor.py --set bigearthnet_l2a --models tec-fp-s2l2a \
        --weights tec-fp-s2l2a=runs/x/model.safetensors   # another set (benchmarks/_sets.py), weights

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
    """`synthesis(analysis(x))` of frames `[T, C, H, W]` DN (the model's bands), edge-padded to
    the model's multiple; a centred model's frames are centred as its encoder does
    (`terracodec.centring`: each band's mean moved onto the model's centre, whole DN)."""
    base = Normalization.from_config(model.config["normalization"])
    centre = model.config.get("centre")
    t, c, h, w = frames.shape
    m = model.multiple
    ph, pw = -(-h // m) * m, -(-w // m) * m
    out = np.empty(frames.shape, np.float64)
    for i, frame in enumerate(frames.astype(np.float64)):
        norm = base
        if centre is not None:
            target = np.asarray(base.mean) + np.asarray(centre) * np.asarray(base.std)
            norm = base.shifted_bands(list(np.rint(frame.mean(axis=(1, 2)) - target)))
        x = np.pad(frame, ((0, 0), (0, ph - h), (0, pw - w)), mode="edge")
        xn = norm.normalize(torch.from_numpy(x)).float()[None]
        with torch.no_grad():
            x_hat = model.synthesis(model.analysis(xn)).double()[0]
        out[i] = norm.denormalize(x_hat).numpy()[:, :h, :w]
    return out


def measure(name: str, samples: list[Any], weights: str | None = None) -> list[dict[str, Any]]:
    entry = next(e for e in list_models() if e["name"] == name)
    rows = []
    for q in entry["qualities"]:
        model = load_model(name, q, weights=weights).eval()
        se_coded = se_unq = 0.0
        n = bits = 0
        for s in samples:
            x = s.pixels
            blob = api.encode(x, model=model, band_names=s.band_names)
            y = np.asarray(api.decode(blob, model=model)).astype(np.float64)
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
    parser.add_argument("--set", default="oscd", help="oscd (default: OSCD test cities) or a set of "
                        "benchmarks/_sets.py with the models' own bands (e.g. bigearthnet_l2a)")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH",
                        help="these weights instead of the shipped ones (repeatable)")
    parser.add_argument("--label", default="weights",
                        help="with --weights: the output name's suffix (transform_floor_<set>_<label>)")
    args = parser.parse_args()
    weights = dict(w.split("=", 1) for w in args.weights)
    names = args.models or [e["name"] for e in list_models()
                            if e.get("trained") and e.get("kind", "image") == "image"]
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    for name in names:
        bands = load_model(name, weights=weights.get(name)).config["band_names"]
        if args.set == "oscd":
            samples = oscd_test_series(bands, args.crop)
        else:
            from _sets import SETS

            samples = SETS[args.set]["load"](args.crop)
            if any(list(s.band_names or []) != list(bands) for s in samples):
                sys.exit(f"error: {args.set} does not have {name}'s bands in its order")
        results[name] = measure(name, samples, weights.get(name))
    took = time.perf_counter() - t0
    env = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpu": cpu_name(),
           "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
           "seconds": round(took, 1), "crop": args.crop, "set": args.set, "weights": weights}
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "transform_floor" if args.set == "oscd" and not weights else \
        f"transform_floor_{args.set}" + (f"_{args.label}" if weights else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"environment": env, "models": results}, indent=2) + "\n")
    lines = [
        "# The transforms' reconstruction floor (`benchmarks/transform_floor.py`)",
        "",
        f"Created {env['date']} on {env['cpu']} ({env['torch_threads']} thread(s)), {took:.0f} s. "
        + ("OSCD test cities, both dates" if args.set == "oscd" else f"set `{args.set}`")
        + f", central {args.crop} px crops, each model's bands"
        + (f", weights {weights}" if weights else "") + ". "
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
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    print("summary: " + " ".join(f"{name}_gap_q{rows[-1]['quality']}_db={rows[-1]['gap_db']:.2f}"
                                 for name, rows in results.items()))


if __name__ == "__main__":
    main()
