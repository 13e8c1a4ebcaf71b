"""An in-memory array behind the `RasterStack` interface, and checking georeferencing given
by hand (arrays, or overrides of what files say)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from terracodec.errors import InputError
from terracodec.exact import check_dtype
from terracodec.io.meta import FrameMeta, Grid


def crs_to_wkt(crs: Any) -> str | None:
    """WKT of anything rasterio's `CRS.from_user_input` takes ("EPSG:32632", WKT, a CRS)."""
    if crs is None:
        return None
    from terracodec.io.gdal import parse_crs

    try:
        return parse_crs(crs).to_wkt()
    except ValueError as exc:
        raise InputError(f"not a coordinate reference system: {crs!r} ({str(exc)[:120]})") from None


def check_transform(transform: Any) -> tuple[float, ...]:
    """Six finite numbers (an `Affine` or a GDAL-order-free `(a, b, c, d, e, f)` tuple)."""
    try:
        values = tuple(float(v) for v in tuple(transform)[:6])
    except (TypeError, ValueError):
        raise InputError(f"transform must be 6 numbers (a, b, c, d, e, f), got {transform!r}") from None
    if len(values) != 6 or not all(math.isfinite(v) for v in values):
        raise InputError(f"transform must be 6 finite numbers (a, b, c, d, e, f), got {transform!r}")
    if values[0] * values[4] - values[1] * values[3] == 0:
        raise InputError(f"transform {values} is not invertible")
    return values


def check_nodata(nodata: Any) -> float | None:
    if nodata is None:
        return None
    if isinstance(nodata, bool) or not isinstance(nodata, (int, float, np.integer, np.floating)):
        raise InputError(f"nodata must be a number, got {nodata!r}")
    return float(nodata)


class ArrayStack:
    """An in-memory [T, C, H, W] (or [C, H, W]) array behind the `RasterStack` interface."""

    def __init__(self, pixels: np.ndarray, *, band_names: Any = None, crs: Any = None,
                 transform: Any = None, nodata: float | None = None, frame_names: Any = None) -> None:
        if not isinstance(pixels, np.ndarray):
            raise InputError(f"expected a numpy array, got {type(pixels).__name__}")
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.ndim != 4 or 0 in pixels.shape:
            raise InputError(f"array must be [C, H, W] or [T, C, H, W], got shape {pixels.shape}")
        check_dtype(pixels.dtype)
        t, c, h, w = pixels.shape
        self.pixels = pixels
        affine = check_transform(transform) if transform is not None else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
        self.grid = Grid(h, w, c, pixels.dtype.name, crs_to_wkt(crs), affine)
        self.frames = [
            FrameMeta(name=f"frame_{i:03d}.tif", nodata=check_nodata(nodata), descriptions=[None] * c)
            for i in range(t)
        ]
        apply_overrides(self, band_names=band_names, frame_names=frame_names)

    def read(self, frame: int, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        return self.pixels[frame, :, row_off : row_off + height, col_off : col_off + width]

    def close(self) -> None:
        pass

    def __enter__(self) -> "ArrayStack":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def apply_overrides(stack: Any, *, band_names: Any = None, crs: Any = None, transform: Any = None,
                    nodata: Any = None, frame_names: Any = None, timestamps: Any = None) -> None:
    """What the caller says about the inputs, over what the files say (or for an array): band
    names by position, CRS, geotransform, nodata, frame names and dates, for every frame."""
    g, frames = stack.grid, stack.frames
    if band_names is not None:
        if isinstance(band_names, str) or len(band_names) != g.count:
            raise InputError(f"{_count(band_names)} band names for {g.count} bands")
        if not all(b is None or isinstance(b, str) for b in band_names):
            raise InputError(f"band names must be strings, got {band_names!r}")
        for f in frames:
            f.descriptions = list(band_names)
    if crs is not None:
        g.crs_wkt = crs_to_wkt(crs)
    if transform is not None:
        g.transform = check_transform(transform)
    if nodata is not None:
        value = check_nodata(nodata)
        for f in frames:
            f.nodata = value
    for what, values, attr in (("frame names", frame_names, "name"), ("timestamps", timestamps, "timestamp")):
        if values is None:
            continue
        if isinstance(values, str) or len(values) != len(frames):
            raise InputError(f"{_count(values)} {what} for {len(frames)} frames")
        for f, v in zip(frames, values):
            if v is not None and not isinstance(v, str):
                raise InputError(f"{what} must be strings, got {v!r}")
            if attr == "name" and not v:
                raise InputError("frame names must be non-empty strings")
            setattr(f, attr, v)


def _count(values: Any) -> str:
    return "1" if isinstance(values, str) else str(len(values))


__all__ = ["ArrayStack", "apply_overrides", "check_nodata", "check_transform", "crs_to_wkt"]
