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
    tile)` for the tile coder (`api.units.encode_unit`), `fill_mode` for the codec."""

    def __init__(self, stack: Any, cells: dict[int, np.ndarray], fill_mode: str) -> None:
        self._stack, self.cells, self.fill_mode = stack, cells, fill_mode

    def read(self, *args: Any) -> np.ndarray:
        return self._stack.read(*args)

    def cells_of(self, frame: int, tile: Any) -> np.ndarray | None:
        from terracodec.temporal.clouds import tile_cells

        cells = self.cells.get(frame)
        if cells is None:
            return None
        out = tile_cells(cells, tile.row_off, tile.col_off, tile.padded_height, tile.padded_width)
        return out if out.any() else None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_stack":
            raise AttributeError(name)
        return getattr(self._stack, name)

    def __enter__(self) -> "CloudyStack":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


__all__ = ["CloudyStack", "read_cloud_masks"]
