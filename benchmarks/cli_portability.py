"""Every shipped model through the CLI, default settings, decoded under other CPU kernels.

Real scenes larger than a tile: OSCD Las Vegas (test city, L1C, 824x716 at 10 m: 512-px tiles,
edge tiles too), both dates written as 13-band GeoTIFFs and, without B10, as 12-band ones, and
the Sen1Floods11 chip (int16, nodata 0, 512x512: one full tile). Each is encoded by `tec encode`
in this environment (default model choice and tile size unless the row says otherwise), then
decoded by `tec decode` here and in a child process with `ATEN_CPU_CAPABILITY=default`,
`MKL_CBWR=COMPATIBLE` and one thread, and the latents compared (`decode_latents` in each
environment). Reported per stream: identical latents, and the largest pixel difference.

    python benchmarks/cli_portability.py     # -> benchmarks/results/cli_portability.md

Last line: `summary: identical_latents=<k>/<n> max_pixel_diff=<x>`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from _common import SHARED_DATA, write_report

from terracodec.io.raster import read_stack

ROOT = Path(__file__).resolve().parents[1]
MIRROR = ROOT / "tests" / "data" / "shared"
OTHER = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1",
         "MKL_NUM_THREADS": "1"}
TEC = [str(Path(sys.executable).parent / "tec")]
LATENTS = ("import sys, numpy as np, terracodec; l = terracodec.decode_latents(sys.argv[1]); "
           "np.save(sys.argv[2], l.y_hat)")


def scene(dest: Path, city: str, date: int, drop_b10: bool) -> Path:
    """A 13-band (or 12-band) GeoTIFF of an OSCD date on its 10 m grid."""
    root = SHARED_DATA if SHARED_DATA.is_dir() else MIRROR
    files = [root / "oscd_s2_l1c" / city / f"img{date}_{r}.tif" for r in ("10m", "20m", "60m")]
    with read_stack([files]) as stack:
        g, meta = stack.grid, stack.frames[0]
        data = stack.read(0, 0, 0, g.height, g.width)
    names = list(meta.descriptions)
    if drop_b10:
        keep = [i for i, n in enumerate(names) if n != "B10"]
        data, names = data[keep], [names[i] for i in keep]
    path = dest / f"{city}{date}_{len(names)}b.tif"
    with rasterio.open(path, "w", driver="GTiff", width=g.width, height=g.height, count=len(names),
                       dtype=g.dtype, crs=g.crs_wkt, transform=g.affine(), compress="deflate") as ds:
        ds.write(data)
        ds.descriptions = tuple(names)
        ds.update_tags(**meta.tags)
    return path


def run(args: list[str], env: dict | None = None) -> None:
    proc = subprocess.run(args, env=dict(os.environ, **(env or {})), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)}: {proc.stderr.strip()[-500:]}")


def check(tmp: Path, name: str, inputs: list[Path], options: list[str]) -> dict:
    stream = tmp / f"{name}.tec"
    run(TEC + ["encode", *map(str, inputs), "-o", str(stream), "-q", *options])
    pixels = {}
    for where, env in (("here", None), ("other", OTHER)):
        out = tmp / f"{name}_{where}"
        run(TEC + ["decode", str(stream), "-o", str(out), "-q"], env)
        pixels[where] = np.stack([rasterio.open(p).read().astype(np.int64) for p in sorted(out.glob("*.tif"))])
        run([sys.executable, "-c", LATENTS, str(stream), str(tmp / f"{name}_{where}.npy")], env)
    from terracodec import info

    d = info(stream)
    same = np.array_equal(np.load(tmp / f"{name}_here.npy"), np.load(tmp / f"{name}_other.npy"), equal_nan=True)
    return {"stream": name, "model": d["model"], "tile": d["tile_size"], "size": f"{d['width']}x{d['height']}x{d['bands']}",
            "frames": d["frames"], "same_latents": bool(same),
            "max_pixel_diff": int(np.abs(pixels["here"] - pixels["other"]).max())}


def main() -> None:
    root = SHARED_DATA if SHARED_DATA.is_dir() else MIRROR
    city = "lasvegas" if (root / "oscd_s2_l1c" / "lasvegas").is_dir() else "norcia"
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        l1c = [scene(tmp, city, d, False) for d in (1, 2)]
        l1c12 = [scene(tmp, city, d, True) for d in (1, 2)]
        floods = root / "sen1floods11_sample" / "Spain_7370579_S2Hand.tif"
        cases = [
            ("l1c13_default", [l1c[0]], []),
            ("l1c12_default", [l1c12[0]], []),
            ("l1c12_fp_s2l2a", [l1c12[0]], ["--model", "tec-fp-s2l2a"]),
            ("l1c13_fp_s2l1c", [l1c[0]], ["--model", "tec-fp-s2l1c"]),
            ("l1c13_fp_tiny", [l1c[0]], ["--model", "tec-fp-tiny"]),
            ("l1c13_tiles1024", [l1c[0]], ["--tile-size", "1024"]),
            ("floods_default", [floods], []),
            ("l1c13_tt_small_2dates", l1c, ["--model", "tec-tt-small"]),
            ("l1c12_default_2dates", l1c12, []),  # a 12-band series: tec-tt-s2l2a by default
            ("l1c13_default_2dates", l1c, []),  # a 13-band series: tec-tt-s2l1c by default
            ("l1c12_flextec_k6_2dates", l1c12, ["--model", "tec-flextec-s2l2a", "--quality", "6"]),
        ]
        rows = [check(tmp, n, i, o) for n, i, o in cases]
    lines = ["# Shipped models through the CLI under other CPU kernels (benchmarks/cli_portability.py)", "",
             f"OSCD {city} (both dates) and the Sen1Floods11 chip; encoded here, decoded here and with "
             "`ATEN_CPU_CAPABILITY=default MKL_CBWR=COMPATIBLE` on one thread.", "",
             "| stream | model | tile | size | frames | same latents | max pixel diff (DN) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['stream']} | {r['model']} | {r['tile']} | {r['size']} | {r['frames']} | {r['same_latents']} | "
              f"{r['max_pixel_diff']} |" for r in rows]
    lines.append("")
    write_report("cli_portability", lines, f"summary: identical_latents={sum(r['same_latents'] for r in rows)}/"
                 f"{len(rows)} max_pixel_diff={max(r['max_pixel_diff'] for r in rows)}")


if __name__ == "__main__":
    main()
