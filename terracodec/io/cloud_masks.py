"""Cloud masks for cloud-aware coding (`tec encode --cloud-mask FRAME=PATH`): where to read them
and the checks a user needs, then a stack that carries them to the tile coder.

A mask is a single-band raster on the input's grid (same size; same CRS and geotransform when
both are georeferenced), non-zero = cloud. FRAME is a 0-based frame index or an input file's
name. The masks are reduced to cloudy latent cells at once (`temporal.clouds.cloudy_cells`:
16 x 16 pixels each, a few kilobytes for a whole Sentinel-2 tile), which is what travels with
the stack to the coders, on this machine or a cluster's.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from terracodec.errors import InputError


def _frame_index(key: Any, names: list[str]) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        index = int(key)
    elif isinstance(key, str) and key.strip().isdigit():
        index = int(key)
    elif isinstance(key, str) and key in names:
        return names.index(key)
    else:
        raise InputError(f"--cloud-mask names frame {key!r}: not a frame index (0..{len(names) - 1}) "
                         f"nor an input file name ({', '.join(names)})")
    if not 0 <= index < len(names):
        raise InputError(f"--cloud-mask names frame {index}: the input has frames 0..{len(names) - 1}")
    return index


def _read_mask(path: Any, grid: Any) -> np.ndarray:
    import rasterio
    from rasterio.crs import CRS

    if not isinstance(path, (str, os.PathLike)):
        mask = np.asarray(path)
        if mask.shape != (grid.height, grid.width):
            raise InputError(f"a cloud mask of shape {mask.shape} is not on the input grid "
                             f"({grid.height} x {grid.width})")
        return mask
    try:
        with rasterio.open(path) as ds:
            if ds.count != 1:
                raise InputError(f"cloud mask {path} has {ds.count} bands: it must have one")
            if (ds.height, ds.width) != (grid.height, grid.width):
                raise InputError(f"cloud mask {path} is {ds.height} x {ds.width} pixels, the input "
                                 f"{grid.height} x {grid.width}: it must be on the input grid")
            if ds.crs and grid.crs_wkt and (CRS.from_wkt(grid.crs_wkt) != ds.crs or
                                            not np.allclose(tuple(ds.transform)[:6], grid.transform)):
                raise InputError(f"cloud mask {path} is on another grid (CRS or geotransform) than the input")
            return ds.read(1)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read cloud mask {path}: {exc}") from None


#: Bands `detect_clouds` reads (reflectance = (DN - dn_offset) / 10000).
DETECTION_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")


def detect_clouds(band: Mapping[str, np.ndarray]) -> np.ndarray:
    """Fmask's potential-cloud-pixel tests without the thermal band (Zhu & Woodcock 2012,
    tests 1-4), on reflectance: bright in SWIR-2 (B12 > 0.03) and not snow or vegetation (NDSI,
    NDVI < 0.8); white (visible bands within 70 % of their mean); hazy (HOT: B02 - 0.5 B04 >
    0.08); and B8A / B11 > 0.75. -> bool `[H, W]`."""
    b2, b3, b4, b8a, b11, b12 = (np.asarray(band[b], np.float64) for b in DETECTION_BANDS)
    eps = 1e-6
    ndsi = (b3 - b11) / (b3 + b11 + eps)
    ndvi = (b8a - b4) / (b8a + b4 + eps)
    basic = (b12 > 0.03) & (ndsi < 0.8) & (ndvi < 0.8)
    mean = (b2 + b3 + b4) / 3
    white = (np.abs(b2 - mean) + np.abs(b3 - mean) + np.abs(b4 - mean)) / (mean + eps) < 0.7
    hot = b2 - 0.5 * b4 - 0.08 > 0
    return basic & white & hot & (b8a / (b11 + eps) > 0.75)


def detect_cloud_masks(stack: Any, header: Any) -> dict[int, np.ndarray]:
    """{frame: cloudy latent cells} found by `detect_clouds` in every frame but the first (which
    has no earlier frame to be filled from); InputError when the bands are not there."""
    from terracodec.temporal.clouds import cloudy_cells

    names = list(header.codec.band_names or [])
    missing = [b for b in DETECTION_BANDS if b not in names]
    if missing:
        raise InputError(f"--cloud-mask auto needs Sentinel-2 bands {', '.join(DETECTION_BANDS)}; "
                         f"the model codes {', '.join(names) or 'unnamed bands'}")
    g = stack.grid
    out = {}
    for fi, frame in enumerate(header.frames[1:], start=1):
        files = [frame.band_order[names.index(b)] for b in DETECTION_BANDS]
        if min(files) < 0:
            raise InputError(f"--cloud-mask auto: frame {frame.meta.name} lacks one of {', '.join(DETECTION_BANDS)}")
        pixels = stack.read(fi, 0, 0, g.height, g.width)
        reflectance = {b: (pixels[j].astype(np.float64) * frame.dn_scale - frame.dn_offset) / 10000.0
                       for b, j in zip(DETECTION_BANDS, files)}
        cells = cloudy_cells(detect_clouds(reflectance))
        if cells.any():
            out[fi] = cells
    return out


def read_cloud_masks(masks: Mapping[Any, Any], stack: Any) -> dict[int, np.ndarray]:
    """{frame index: cloudy latent cells} of `masks` ({FRAME: PATH or array})."""
    from terracodec.temporal.clouds import cloudy_cells

    names = [str(f.name) for f in stack.frames]
    out: dict[int, np.ndarray] = {}
    for key, path in masks.items():
        index = _frame_index(key, names)
        if index in out:
            raise InputError(f"frame {index} has two cloud masks")
        out[index] = cloudy_cells(_read_mask(path, stack.grid))
    return out


class CloudyStack:
    """A stack (`read`, and the rest of it) whose frames carry cloudy cells: `cells_of(frame,
    tile)` for the tile coder (`api.units.encode_unit`), `fill_mode` for the codec. In a frame
    with a mask, the cells of a tile's padding are filled as well (they cost bits otherwise)."""

    def __init__(self, stack: Any, cells: dict[int, np.ndarray], fill_mode: str) -> None:
        self._stack, self.cells, self.fill_mode = stack, cells, fill_mode

    def read(self, *args: Any) -> np.ndarray:
        return self._stack.read(*args)

    def cells_of(self, frame: int, tile: Any) -> np.ndarray | None:
        from terracodec.temporal.clouds import tile_cells

        cells = self.cells.get(frame)
        if cells is None:
            return None
        # cells of padding only (no pixel of the frame) are filled too: nobody sees them
        return tile_cells(cells, tile.row_off, tile.col_off, tile.padded_height, tile.padded_width, outside=True)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_stack":
            raise AttributeError(name)
        return getattr(self._stack, name)


__all__ = ["CloudyStack", "DETECTION_BANDS", "detect_cloud_masks", "detect_clouds", "read_cloud_masks"]
