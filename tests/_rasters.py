"""Making test GeoTIFFs from real ones: crops, pixel edits, nodata and band order, metadata kept."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window


def copy_raster(src: Path, dst: Path, *, rows: Optional[int] = None, cols: Optional[int] = None,
                edit: Optional[Callable[[np.ndarray], None]] = None, nodata: Optional[float] = None,
                band_order: Optional[Sequence[int]] = None) -> Path:
    """Copy `src` to `dst` with its georeferencing, descriptions and tags; optionally keep the
    top-left `rows` x `cols`, edit the pixels in place, set nodata, or reorder the bands."""
    with rasterio.open(src) as ds:
        window = Window(0, 0, cols or ds.width, rows or ds.height)
        px = ds.read(window=window)
        profile = dict(ds.profile, height=int(window.height), width=int(window.width),
                       transform=ds.window_transform(window))
        desc, tags = list(ds.descriptions), ds.tags()
    if band_order is not None:
        px, desc = px[list(band_order)], [desc[i] for i in band_order]
    if edit is not None:
        edit(px)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(dst, "w", **profile) as ds:
        ds.write(px)
        ds.descriptions = desc
        ds.update_tags(**tags)
    return dst


SAMPLE = Path(__file__).resolve().parents[1] / "terracodec" / "data" / "sample"
SAMPLE_DATES = ("20150711", "20150731", "20150820", "20150830", "20150909")


def sample_l2a_series(n: int = 3) -> np.ndarray:
    """[T, 12, 101, 100] DN: the bundled sample's L1C dates without B10, in the L2A band order."""
    frames = []
    for d in SAMPLE_DATES[:n]:
        with rasterio.open(SAMPLE / f"S2L1C_{d}.tif") as ds:
            x = ds.read()
        frames.append(np.delete(x, 10, axis=0))  # B10 (cirrus) is not a band of the L2A order
    return np.stack(frames).astype(np.uint16)


def write_series(folder: Path, x: np.ndarray) -> list[str]:
    """One georeferenced 12-band GeoTIFF per date (the sample's grid), L2A band names set."""
    from terracodec.bands import S2_L2A_BANDS

    folder.mkdir()
    with rasterio.open(SAMPLE / f"S2L1C_{SAMPLE_DATES[0]}.tif") as ds:
        profile = dict(ds.profile, count=12)
    files = []
    for t, d in enumerate(SAMPLE_DATES[: len(x)]):
        f = folder / f"S2L2A_{d}.tif"
        with rasterio.open(f, "w", **profile) as ds:
            ds.write(x[t])
            ds.descriptions = tuple(S2_L2A_BANDS)
        files.append(str(f))
    return files
