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
