"""Write tests/data/shared: a small mirror of the files of ../shared/data that the tests read.

    .venv/bin/python tests/data/shared/make_mirror.py [--source ../shared/data]

The tests' `shared_data` fixture (tests/conftest.py) uses ../shared/data beside the checkout when
it is there and this mirror otherwise (TERRACODEC_TEST_MIRROR=1 forces the mirror). The mirror
keeps the relative layout of ../shared/data and holds real data only: every raster is a window
of the original (same CRS, dtype, nodata, band descriptions, dataset and band tags, interleave;
the transform moved to the window), written lossless with DEFLATE and the horizontal-differencing
predictor; the small text files are copied unchanged. Running it again rewrites the same files
(idempotent); files of the mirror that are not listed here are removed. Every written raster is
read back and compared with the same window of its source. LICENSE.md (hand-written) names the
source and terms of each file; keep it in step with FILES below.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2].parent / "shared" / "data"  # ../shared/data beside the checkout

#: OSCD change masks are CC BY-NC-SA (README_OSCD_labels.txt); bercy's is kept because
#: tests/test_training.py reads the city folder and checks that the mask is skipped.
INCLUDE_CHANGE_MASKS = True

#: (relative path, window as (row_off, col_off, height, width) or None for the whole file).
#: OSCD: the top-left 192 x 192 px of the 10 m grid and the same extent at 20 m (96 x 96) and
#: 60 m (32 x 32). TerraMind S2 L1C: top-left 128 x 128 (B10 keeps its offset/no-offset level).
#: TerraMind S2 L2A 282D: whole (the parity fixtures are crops of it). Sen1Floods11: the 128 x 128
#: top-right corner (the most water: dark, low-DN valid pixels).
FILES: list[tuple[str, tuple[int, int, int, int] | None]] = []
for _city in ("paris", "bercy", "norcia"):
    for _date in (1, 2):
        FILES += [(f"oscd_s2_l1c/{_city}/img{_date}_10m.tif", (0, 0, 192, 192)),
                  (f"oscd_s2_l1c/{_city}/img{_date}_20m.tif", (0, 0, 96, 96)),
                  (f"oscd_s2_l1c/{_city}/img{_date}_60m.tif", (0, 0, 32, 32))]
    FILES.append((f"oscd_s2_l1c/{_city}/dates.txt", None))
if INCLUDE_CHANGE_MASKS:
    FILES.append(("oscd_s2_l1c/bercy/change_mask.tif", (0, 0, 192, 192)))
for _stem in ("282D_485L_3_3", "38D_378R_2_3", "433D_629L_3_1", "609U_541L_3_0", "637U_59R_1_3"):
    FILES.append((f"terramind_examples/S2L1C/{_stem}.tif", (0, 0, 128, 128)))
FILES.append(("terramind_examples/S2L2A/282D_485L_3_3.tif", None))
FILES.append(("sen1floods11_sample/Spain_7370579_S2Hand.tif", (0, 384, 128, 128)))

#: Written by hand, never removed by this script.
KEEP = {"make_mirror.py", "LICENSE.md"}


def crop_raster(src: Path, dst: Path, window: tuple[int, int, int, int] | None) -> None:
    """Copy `window` of `src` to `dst` with its georeferencing and metadata, losslessly."""
    with rasterio.open(src) as ds:
        r, c, h, w = window if window is not None else (0, 0, ds.height, ds.width)
        win = Window(c, r, w, h)
        if r + h > ds.height or c + w > ds.width:
            raise ValueError(f"{src}: window {window} leaves the {ds.height} x {ds.width} raster")
        px = ds.read(window=win)
        structure = ds.tags(ns="IMAGE_STRUCTURE")
        profile = {
            "driver": "GTiff", "height": h, "width": w, "count": ds.count, "dtype": ds.dtypes[0],
            "crs": ds.crs, "transform": ds.window_transform(win), "nodata": ds.nodata,
            "compress": "deflate", "zlevel": 9, "tiled": False,
            "interleave": structure.get("INTERLEAVE", "band").lower(),
        }
        if np.issubdtype(px.dtype, np.integer):
            profile["predictor"] = 2
        if ds.crs is None and ds.transform.is_identity:
            profile.pop("transform")
        descriptions, tags = ds.descriptions, ds.tags()
        band_tags = [ds.tags(i) for i in range(1, ds.count + 1)]
        scales, offsets, units = ds.scales, ds.offsets, ds.units
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    with rasterio.open(tmp, "w", **profile) as out:
        out.write(px)
        if any(d is not None for d in descriptions):
            out.descriptions = descriptions
        if tags:
            out.update_tags(**tags)
        for i, t in enumerate(band_tags, start=1):
            if t:
                out.update_tags(i, **t)
        if any(s != 1.0 for s in scales) or any(o != 0.0 for o in offsets):
            out.scales, out.offsets = scales, offsets
        if any(units):
            out.units = units
    with rasterio.open(tmp) as back:  # the mirror is the source's window, bit for bit
        assert np.array_equal(back.read(), px), dst
        assert back.crs == profile["crs"] and back.nodata == profile["nodata"], dst
        assert back.descriptions == descriptions and back.tags() == tags, dst
    tmp.replace(dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", NotGeoreferencedWarning)  # OSCD change masks have no CRS
    if not args.source.is_dir():
        print(f"error: {args.source} is not a folder", file=sys.stderr)
        return 1
    wanted = set()
    for rel, window in FILES:
        src, dst = args.source / rel, args.out / rel
        wanted.add(dst)
        if src.suffix.lower() == ".tif":
            crop_raster(src, dst, window)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    for path in sorted(args.out.rglob("*"), reverse=True):  # stale files, then empty folders
        if path.is_file() and path not in wanted and path.relative_to(args.out).as_posix() not in KEEP:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"{len(FILES)} files under {args.out}, {total / 1e6:.2f} MB in all (with the script and LICENSE.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
