"""GeoTIFF stacks in, GeoTIFFs out (rasterio), keeping every piece of georeferencing.

Reading is lazy: `read_stack` checks that the inputs are rasters on one grid and keeps them
open; pixels are read window by window so that a full Sentinel-2 tile never sits in memory.
Writing goes through `RasterWriter`, which writes windows into a temporary tiled GeoTIFF and
moves it into place (converting to a Cloud-Optimised GeoTIFF first when asked) on success.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.windows import Window

from terracodec.errors import InputError
from terracodec.exact import check_dtype
from terracodec.io.atomic import AtomicOutputs

#: Tag names that carry an acquisition date or time, in order of preference.
_TIME_TAGS = ("DATE", "ACQUISITION_DATE", "DATETIME", "datetime", "SENSING_TIME", "date")


@dataclass
class Grid:
    """What frames must share: size, bands, dtype and georeferencing."""

    height: int
    width: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: tuple[float, ...]  # affine order (a, b, c, d, e, f)

    def affine(self) -> Affine:
        return Affine(*self.transform)


@dataclass
class FrameMeta:
    """Per-file metadata kept so that decoding gives back the same file."""

    name: str
    nodata: float | None = None
    descriptions: list[str | None] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    band_tags: list[dict[str, str]] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    units: list[str | None] = field(default_factory=list)
    timestamp: str | None = None


def parse_timestamp(tags: dict[str, str]) -> str | None:
    """ISO 8601 acquisition date from a file's tags (YYYYMMDD becomes YYYY-MM-DD), if any."""
    for key in _TIME_TAGS:
        value = tags.get(key)
        if value:
            value = value.strip()
            m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value)
            return f"{m[1]}-{m[2]}-{m[3]}" if m else value
    return None


def _open(path: Path) -> rasterio.io.DatasetReader:
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"not a raster: {path} is a directory")
    try:
        return rasterio.open(path)
    except RasterioError as exc:
        raise InputError(f"not a raster: {path} ({str(exc).splitlines()[0][:200]})") from None


class RasterStack:
    """Frames (files) on one grid, open for windowed reads."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self._datasets: list = []
        try:
            for path in paths:
                self._datasets.append(_open(path))
            self.grid, self.frames = self._describe()
        except BaseException:
            self.close()
            raise

    def _describe(self) -> tuple[Grid, list[FrameMeta]]:
        grid: Grid | None = None
        frames = []
        for path, ds in zip(self.paths, self._datasets):
            if len(set(ds.dtypes)) != 1:
                raise InputError(f"{path}: bands have different data types {sorted(set(ds.dtypes))}")
            check_dtype(ds.dtypes[0])
            this = Grid(
                ds.height, ds.width, ds.count, ds.dtypes[0],
                ds.crs.to_wkt() if ds.crs else None, tuple(ds.transform)[:6],
            )
            if grid is None:
                grid = this
            else:
                _check_same_grid(grid, this, self.paths[0], path)
            frames.append(FrameMeta(
                name=path.name,
                nodata=None if ds.nodata is None else float(ds.nodata),
                descriptions=list(ds.descriptions),
                tags=dict(ds.tags()),
                band_tags=[dict(ds.tags(i)) for i in range(1, ds.count + 1)],
                scales=[float(s) for s in ds.scales],
                offsets=[float(o) for o in ds.offsets],
                units=list(ds.units),
                timestamp=parse_timestamp(ds.tags()),
            ))
        assert grid is not None
        return grid, frames

    def read(self, frame: int, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Pixels [C, height, width] of one frame, in the file's band order and dtype."""
        try:
            return self._datasets[frame].read(window=Window(col_off, row_off, width, height))
        except RasterioError as exc:
            raise InputError(f"cannot read {self.paths[frame]}: {str(exc).splitlines()[0][:200]}") from None

    def close(self) -> None:
        for ds in self._datasets:
            ds.close()
        self._datasets = []

    def __enter__(self) -> "RasterStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_same_grid(a: Grid, b: Grid, path_a: Path, path_b: Path) -> None:
    if (a.height, a.width) != (b.height, b.width):
        raise InputError(
            f"frames are on different grids: {path_a.name} is {a.width}x{a.height}, "
            f"{path_b.name} is {b.width}x{b.height}"
        )
    if a.count != b.count:
        raise InputError(f"frames have different band counts: {a.count} vs {b.count} ({path_b.name})")
    if a.dtype != b.dtype:
        raise InputError(f"frames have different data types: {a.dtype} vs {b.dtype} ({path_b.name})")
    if not np.allclose(a.transform, b.transform, rtol=0, atol=1e-9 * max(1.0, *map(abs, a.transform))):
        raise InputError(f"frames are on different grids: {path_b.name} has another geotransform")
    if (a.crs_wkt is None) != (b.crs_wkt is None) or (
        a.crs_wkt and CRS.from_wkt(a.crs_wkt) != CRS.from_wkt(b.crs_wkt)
    ):
        raise InputError(f"frames are on different grids: {path_b.name} has another CRS")


def read_stack(paths: list[str | os.PathLike] | str | os.PathLike) -> RasterStack:
    """Open one file (a multi-band image) or several (frames of a time series on one grid)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise InputError("no input files given")
    return RasterStack([Path(p) for p in paths])


def _creation_options(dtype: np.dtype, block: int) -> dict:
    return {
        "driver": "GTiff", "tiled": True, "blockxsize": block, "blockysize": block,
        "compress": "deflate", "predictor": 3 if dtype.kind == "f" else 2, "BIGTIFF": "IF_SAFER",
    }


class RasterWriter:
    """Writes one GeoTIFF window by window; the file appears only on `commit` of `outputs`."""

    def __init__(
        self, path: str | os.PathLike, grid: Grid, meta: FrameMeta, outputs: AtomicOutputs,
        *, cog: bool = False, block: int = 256,
    ) -> None:
        self.path, self._cog, self._outputs = Path(path), cog, outputs
        dtype = np.dtype(grid.dtype)
        # GTiff (and COG) blocks must be multiples of 16 and need not exceed the image.
        block = max(16, min(block, 16 * math.ceil(max(grid.height, grid.width) / 16)))
        self._temp = outputs.temp_for(self.path, suffix=".tif")
        profile = dict(
            _creation_options(dtype, block), height=grid.height, width=grid.width,
            count=grid.count, dtype=dtype.name,
            crs=CRS.from_wkt(grid.crs_wkt) if grid.crs_wkt else None,
            transform=grid.affine(), nodata=meta.nodata,
        )
        if cog:  # COG is a copy-only driver: write a plain GeoTIFF first, convert at close
            profile.update(compress="none", predictor=1)
        try:
            self._ds = rasterio.open(self._temp, "w", **profile)
            self._write_meta(meta)
        except RasterioError as exc:
            raise InputError(f"cannot write {self.path}: {str(exc).splitlines()[0][:200]}") from None

    def _write_meta(self, meta: FrameMeta) -> None:
        ds = self._ds
        if meta.tags:
            ds.update_tags(**meta.tags)
        for i in range(ds.count):
            if i < len(meta.descriptions) and meta.descriptions[i]:
                ds.set_band_description(i + 1, meta.descriptions[i])
            if i < len(meta.band_tags) and meta.band_tags[i]:
                ds.update_tags(i + 1, **meta.band_tags[i])
            if i < len(meta.units) and meta.units[i]:
                ds.set_band_unit(i + 1, meta.units[i])
        if meta.scales and any(s != 1.0 for s in meta.scales):
            ds.scales = meta.scales
        if meta.offsets and any(o != 0.0 for o in meta.offsets):
            ds.offsets = meta.offsets

    def write(self, pixels: np.ndarray, row_off: int, col_off: int) -> None:
        """Write a [C, h, w] block at (row_off, col_off)."""
        c, h, w = pixels.shape
        try:
            self._ds.write(pixels, window=Window(col_off, row_off, w, h))
        except RasterioError as exc:
            raise InputError(f"cannot write {self.path}: {str(exc).splitlines()[0][:200]}") from None

    def abandon(self) -> None:
        """Close the dataset if it is still open (after an error; `outputs` removes the file)."""
        if not self._ds.closed:
            self._ds.close()

    def close(self) -> None:
        """Finish the temporary file (convert to COG if asked); `outputs` still has to commit it."""
        try:
            self._ds.close()
            if self._cog:
                plain = self._temp
                self._temp = self._outputs.temp_for(self.path, suffix=".tif")
                rasterio.shutil.copy(
                    plain, self._temp, driver="COG", compress="DEFLATE",
                    predictor="YES", blocksize=512, BIGTIFF="IF_SAFER",
                )
                self._outputs.discard(plain)
        except RasterioError as exc:
            raise InputError(f"cannot write {self.path}: {str(exc).splitlines()[0][:200]}") from None


def write_raster(
    path: str | os.PathLike, pixels: np.ndarray, grid: Grid, meta: FrameMeta, *, cog: bool = False
) -> Path:
    """Write a whole [C, H, W] array as one GeoTIFF (atomically)."""
    with AtomicOutputs() as outputs:
        writer = RasterWriter(path, grid, meta, outputs, cog=cog)
        writer.write(pixels, 0, 0)
        writer.close()
    return Path(path)


class ArrayStack:
    """An in-memory [T, C, H, W] (or [C, H, W]) array behind the `RasterStack` interface."""

    def __init__(
        self,
        pixels: np.ndarray,
        *,
        band_names: list[str | None] | None = None,
        crs: str | CRS | None = None,
        transform: Affine | tuple[float, ...] | None = None,
        nodata: float | None = None,
        frame_names: list[str] | None = None,
    ) -> None:
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        if pixels.ndim != 4:
            raise InputError(f"array must be [C, H, W] or [T, C, H, W], got shape {pixels.shape}")
        check_dtype(pixels.dtype)
        t, c, h, w = pixels.shape
        if band_names is not None and len(band_names) != c:
            raise InputError(f"{len(band_names)} band names for {c} bands")
        if frame_names is not None and len(frame_names) != t:
            raise InputError(f"{len(frame_names)} frame names for {t} frames")
        self.pixels = pixels
        crs_wkt = (crs if isinstance(crs, CRS) else CRS.from_user_input(crs)).to_wkt() if crs else None
        affine = tuple(transform)[:6] if transform is not None else tuple(Affine.identity())[:6]
        self.grid = Grid(h, w, c, pixels.dtype.name, crs_wkt, tuple(float(v) for v in affine))
        names = frame_names or [f"frame_{i:03d}.tif" for i in range(t)]
        self.frames = [
            FrameMeta(name=names[i], nodata=None if nodata is None else float(nodata),
                      descriptions=list(band_names) if band_names else [None] * c)
            for i in range(t)
        ]

    def read(self, frame: int, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        return self.pixels[frame, :, row_off : row_off + height, col_off : col_off + width]

    def close(self) -> None:
        pass

    def __enter__(self) -> "ArrayStack":
        return self

    def __exit__(self, *exc: object) -> None:
        pass
