"""`python -m terracodec.demo` (what `make demo` runs): code the bundled Sentinel-2 series.

Encodes the bundled 5-date, 13-band L1C time series (`terracodec/data/sample/`) into one `.tec`
file with a bundled model, decodes it back to GeoTIFFs, and prints the rate (bits per pixel per
band), PSNR-10k / PSNR-65k against the originals and the time per frame.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from terracodec import api

SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "sample"


def psnr(original: np.ndarray, decoded: np.ndarray, peak: float, valid: np.ndarray) -> float:
    """PSNR in dB over valid pixels, for a stated peak (10000 or 65535 DN)."""
    diff = original[valid].astype(np.float64) - decoded[valid].astype(np.float64)
    mse = float(np.mean(diff * diff)) if diff.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def run(model: str, quality: object, files: list[Path]) -> dict:
    """Encode + decode `files`; returns the figures the demo prints."""
    with tempfile.TemporaryDirectory(prefix="tec-demo-") as tmp:
        stream, out_dir = Path(tmp) / "series.tec", Path(tmp) / "decoded"
        t0 = time.perf_counter()
        summary = api.encode(files, stream, model=model, quality=quality)
        t1 = time.perf_counter()
        written = api.decode(stream, out_dir)
        t2 = time.perf_counter()
        rows, originals, decodeds, valids = [], [], [], []
        for src, dst, fi in zip(files, written, summary["frame_info"]):
            with rasterio.open(src) as a, rasterio.open(dst) as b:
                x, y = a.read(), b.read()
                valid = x != a.nodata if a.nodata is not None else np.ones(x.shape, bool)
            originals.append(x), decodeds.append(y), valids.append(valid)
            rows.append((fi["name"], fi["timestamp"], fi["bpppb"],
                         psnr(x, y, 10000, valid), psnr(x, y, 65535, valid)))
        x, y, v = np.stack(originals), np.stack(decodeds), np.stack(valids)
        return {
            "summary": summary, "rows": rows, "encode_s": t1 - t0, "decode_s": t2 - t1,
            "psnr10k": psnr(x, y, 10000, v), "psnr65k": psnr(x, y, 65535, v),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=api.DEFAULT_MODEL)
    parser.add_argument("--quality", default=None)
    args = parser.parse_args(argv)
    files = sorted(SAMPLE_DIR.glob("*.tif"))
    quality = int(args.quality) if args.quality and args.quality.isdigit() else args.quality
    r = run(args.model, quality, files)
    s = r["summary"]
    n = s["frames"]
    print(f"terracodec demo: {n} frames of {s['width']}x{s['height']} px x {s['bands']} bands "
          f"({s['dtype']}, Sentinel-2 L1C, eo-learn sample), model {s['model']} quality {s['quality']}")
    print(f"{'frame':<22}{'date':<22}{'bpppb':>8}{'PSNR-10k':>10}{'PSNR-65k':>10}")
    for name, stamp, bpppb, p10, p65 in r["rows"]:
        print(f"{name:<22}{stamp or '-':<22}{bpppb:>8.4f}{p10:>10.2f}{p65:>10.2f}")
    print(f"{'all frames (whole file, header included)':<44}{s['bpppb']:>8.4f}{r['psnr10k']:>10.2f}"
          f"{r['psnr65k']:>10.2f}")
    print(f"time per frame: encode {1000 * r['encode_s'] / n:.0f} ms, decode {1000 * r['decode_s'] / n:.0f} ms "
          f"({s['bytes']} bytes for {n} frames)")
    info = {m["name"]: m for m in api.models()}.get(s["model"], {})
    if info.get("trained") is False:
        print(f"note: {s['model']} has untrained (seeded) weights: rates and PSNR only show the "
              "pipeline working, not compression quality.")


if __name__ == "__main__":
    main()
