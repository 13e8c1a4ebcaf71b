"""What the exact entropy path costs in rate and quality against the float path it replaced
(issue 16: at most 1 % of rate), on the bundled sample's five dates with `tec-tt-small`.

The same frames are coded twice through `terracodec.encode` (whole streams, default tiles):
once as streams are coded now (the exact twin, `codec.coder_platform = exact-v1`), once with
the float32 entropy model of streams written before it. Reported: bytes per frame and
PSNR-10k of each decode against the original.

    python benchmarks/tt_exact_rate.py     # -> benchmarks/results/tt_exact_rate.md

Last line: `summary: rate_change_pct=<x> psnr10k_change_db=<x>`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from _common import write_report

import terracodec
import terracodec.temporal.model as temporal_model

ROOT = Path(__file__).resolve().parents[1]
FRAMES = sorted((ROOT / "terracodec" / "data" / "sample").glob("S2L1C_*.tif"))


def code() -> tuple[list[int], list[float]]:
    stream = terracodec.encode([str(f) for f in FRAMES], None, model="tec-tt-small")
    decoded = terracodec.decode(stream).pixels.astype(np.float64)
    psnr = []
    for i, f in enumerate(FRAMES):
        with rasterio.open(f) as ds:
            original = ds.read().astype(np.float64)
        psnr.append(10 * np.log10(1e8 / np.mean((decoded[i] - original) ** 2)))
    return [f["bytes"] for f in terracodec.info(stream)["frame_info"]], psnr


def main() -> None:
    exact_bytes, exact_psnr = code()
    is_exact = temporal_model._is_exact
    temporal_model._is_exact = lambda state: False  # the float path of older streams
    try:
        float_bytes, float_psnr = code()
    finally:
        temporal_model._is_exact = is_exact
    rate = 100.0 * (sum(exact_bytes) / sum(float_bytes) - 1.0)
    dpsnr = float(np.mean(exact_psnr) - np.mean(float_psnr))
    lines = ["# Exact vs float TEC-TT entropy path (benchmarks/tt_exact_rate.py)", "",
             f"`tec-tt-small`, the bundled sample's {len(FRAMES)} dates (100x101x13), one stream each way.", "",
             "| frame | exact bytes | float bytes | exact PSNR-10k | float PSNR-10k |", "|---|---|---|---|---|"]
    lines += [f"| {f.name} | {a} | {b} | {c:.3f} | {d:.3f} |"
              for f, a, b, c, d in zip(FRAMES, exact_bytes, float_bytes, exact_psnr, float_psnr)]
    write_report("tt_exact_rate", lines + [""], f"summary: rate_change_pct={rate:.3f} psnr10k_change_db={dpsnr:.4f}")


if __name__ == "__main__":
    main()
