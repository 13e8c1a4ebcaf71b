"""What the portable TEC-TT entropy paths cost in rate and quality against the float path they
replaced (issue 16: at most 1 % of rate), with `tec-tt-small`, through `terracodec.encode` and
`terracodec.decode` (whole streams, default tiles).

Each series is coded three times: with the float32 entropy model of streams written before the
portable paths (which decode only where they were coded), with `exact-v1` (float64 GEMMs of
20-bit mantissas) and with `int8-v2` (int8 GEMMs: what streams are coded with now). Series: the
bundled sample's five dates (100x101x13) and, where `../shared/data` is present, the first
`--cities` OSCD test cities (both dates, 13 bands, central `--crop` px), never trained on.
Reported: payload bytes (the frames' records; headers differ by the `coder_platform` string)
and PSNR-10k of each decode against the original, per series and path.

    python benchmarks/tt_exact_rate.py [--cities 3] [--crop 512]   # -> results/tt_exact_rate.md

Last line: `summary: rate_change_pct=<x> psnr10k_change_db=<x>` (int8-v2 against float, all
series together; `exact_v1_rate_change_pct` beside it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from _common import SHARED_DATA, oscd_test_series, write_report

import terracodec
import terracodec.temporal.entropy_paths as entropy_paths
import terracodec.temporal.model as temporal_model

ROOT = Path(__file__).resolve().parents[1]
FRAMES = sorted((ROOT / "terracodec" / "data" / "sample").glob("S2L1C_*.tif"))
PATHS = ("float", "exact-v1", "int8-v2")
S2_L1C_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def code(series: np.ndarray | list[str], original: np.ndarray, path: str) -> tuple[int, float]:
    """(bytes, PSNR-10k) of one series coded with entropy path `path`."""
    current, portable = entropy_paths.CURRENT_PATH, temporal_model._portable_path
    if path == "float":  # the float path of older streams: the coder platform names this machine
        from terracodec.temporal.coding import coder_platform

        entropy_paths.CURRENT_PATH = coder_platform()
        temporal_model._portable_path = lambda state: ""
    else:
        entropy_paths.CURRENT_PATH = path
    try:
        stream = terracodec.encode(series, None, model="tec-tt-small")
        info = terracodec.info(stream)
        assert info["coder_platform"] == entropy_paths.CURRENT_PATH
        decoded = terracodec.decode(stream).pixels.astype(np.float64)
    finally:
        entropy_paths.CURRENT_PATH, temporal_model._portable_path = current, portable
    mse = float(np.mean((decoded - original.astype(np.float64)) ** 2))
    # payload bytes: the header differs by the length of the `coder_platform` string
    return sum(f["bytes"] for f in info["frame_info"]), 10 * np.log10(1e8 / mse)


def series_list(cities: int, crop: int) -> list[tuple[str, np.ndarray | list[str], np.ndarray]]:
    frames = []
    for f in FRAMES:
        with rasterio.open(f) as ds:
            frames.append(ds.read())
    out = [("bundled sample (5 dates)", [str(f) for f in FRAMES], np.stack(frames))]
    if cities and (SHARED_DATA / "oscd_s2_l1c").exists():
        for s in oscd_test_series(S2_L1C_BANDS, crop)[:cities]:
            out.append((f"OSCD {s.name} (2 dates)", s.pixels, s.pixels))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cities", type=int, default=3)
    ap.add_argument("--crop", type=int, default=512)
    args = ap.parse_args()
    rows, totals = [], {p: [0, []] for p in PATHS}
    for name, series, original in series_list(args.cities, args.crop):
        results = {p: code(series, original, p) for p in PATHS}
        for p, (size, psnr) in results.items():
            totals[p][0] += size
            totals[p][1].append(psnr)
        rows.append(f"| {name} | {original.shape[-1]}x{original.shape[-2]} | "
                    + " | ".join(f"{results[p][0]} / {results[p][1]:.3f}" for p in PATHS) + " |")
        print(rows[-1], flush=True)

    def change(p: str) -> tuple[float, float]:
        rate = 100.0 * (totals[p][0] / totals["float"][0] - 1.0)
        return rate, float(np.mean(totals[p][1]) - np.mean(totals["float"][1]))

    lines = ["# Portable vs float TEC-TT entropy paths (benchmarks/tt_exact_rate.py)", "",
             f"`tec-tt-small`, whole streams through `terracodec.encode`/`decode` (payload bytes); OSCD: central "
             f"{args.crop} px.", "",
             "| series | size | " + " | ".join(f"{p} bytes / PSNR-10k" for p in PATHS) + " |",
             "|---|---|" + "---|" * len(PATHS)] + rows
    lines += ["", "| path | rate change vs float | mean PSNR-10k change |", "|---|---|---|"]
    lines += [f"| {p} | {change(p)[0]:+.3f} % | {change(p)[1]:+.4f} dB |" for p in PATHS[1:]]
    rate, dpsnr = change("int8-v2")
    write_report("tt_exact_rate", lines + [""],
                 f"summary: rate_change_pct={rate:.3f} psnr10k_change_db={dpsnr:.4f} "
                 f"exact_v1_rate_change_pct={change('exact-v1')[0]:.3f}")


if __name__ == "__main__":
    main()
