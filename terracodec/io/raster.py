"""GeoTIFF stacks in (rasterio), keeping every piece of georeferencing.

A stack is frames on one grid. A frame is one multi-band file, or several files of one date
at different resolutions (OSCD's `img1_10m/20m/60m.tif`, BigEarthNet's file per band): their
bands are concatenated in file order and brought onto the finest file's grid, coarser files
resampled bilinearly by GDAL (a warped VRT, so every window reads the same values as the whole
band would). Decoding gives that one multi-band frame on the fine grid.

Reading is lazy: `read_stack` checks the files (opening each in turn) and reads nothing; pixels
are read window by window, and file handles are opened on demand and kept in a small LRU
cache, so a series of hundreds of frames never holds hundreds of files open. A stack pickles
without its handles, so it travels to another process's worker, which reopens its files.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from terracodec.errors import InputError
from terracodec.exact import check_dtype
from terracodec.io.meta import FrameMeta, Grid, parse_timestamp

#: File handles a stack keeps open at most (each costs a descriptor and GDAL's state).
MAX_OPEN_FILES = 16  # a Sentinel-2 product frame is 13 band files


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:200]


def _open(path: Path) -> rasterio.io.DatasetReader:
    if str(path).startswith("/vsi"):  # inside an archive (a zipped SAFE product): GDAL checks
        try:
            return rasterio.open(str(path))
        except RasterioError as exc:
            raise InputError(f"cannot read {path} ({_first_line(exc)})") from None
    if not path.exists():
        raise InputError(f"no such file: {path}")
    if path.is_dir():
        raise InputError(f"not a raster: {path} is a directory")
    try:
        return rasterio.open(path)
    except RasterioError as exc:
        raise InputError(f"not a raster: {path} ({_first_line(exc)})") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None


@dataclass
class _FileInfo:
    """What one file says, read once when the stack is described."""

    path: Path
    grid: Grid
    meta: FrameMeta


def _describe_file(path: Path) -> _FileInfo:
    with _open(path) as ds:
        if len(set(ds.dtypes)) != 1:
            raise InputError(f"{path}: bands have different data types {sorted(set(ds.dtypes))}")
        check_dtype(ds.dtypes[0])
        gcps, gcp_crs = ds.gcps
        grid = Grid(
            ds.height, ds.width, ds.count, ds.dtypes[0],
            ds.crs.to_wkt() if ds.crs else None, tuple(ds.transform)[:6],
            [[g.row, g.col, g.x, g.y, g.z or 0.0] for g in gcps] or None,
            gcp_crs.to_wkt() if gcps and gcp_crs else None,
        )
        tags = dict(ds.tags())
        meta = FrameMeta(
            name=path.name,
            nodata=None if ds.nodata is None else float(ds.nodata),
            descriptions=list(ds.descriptions),
            tags=tags,
            band_tags=[dict(ds.tags(i)) for i in range(1, ds.count + 1)],
            scales=[float(s) for s in ds.scales],
            offsets=[float(o) for o in ds.offsets],
            units=list(ds.units),
            timestamp=parse_timestamp(tags),
        )
    return _FileInfo(path, grid, meta)


def _frame_name(paths: Sequence[Path]) -> str:
    """One file: its name. Several: their common name prefix (`img1_10m.tif`, `img1_20m.tif`
    -> `img1.tif`), else the first file's name."""
    if len(paths) == 1:
        return paths[0].name
    prefix = os.path.commonprefix([p.stem for p in paths]).rstrip("_-. ")
    return f"{prefix}.tif" if prefix else paths[0].name


def _combine(files: list[_FileInfo]) -> tuple[Grid, FrameMeta]:
    """One frame from files of one date: bands concatenated, on the finest file's grid."""
    if len(files) == 1:
        return files[0].grid, files[0].meta
    fine = max(files, key=lambda f: f.grid.height * f.grid.width)
    names = ", ".join(f.path.name for f in files)
    for f in files:
        if f.grid.gcps or not f.grid.crs_wkt:
            raise InputError(f"a frame of several files needs a CRS and a geotransform in each: {f.path.name}")
        if CRS.from_wkt(f.grid.crs_wkt) != CRS.from_wkt(fine.grid.crs_wkt):
            raise InputError(f"files of one frame are in different CRSs: {names}")
        if f.grid.dtype != fine.grid.dtype:
            raise InputError(f"files of one frame have different data types: {names}")
        if not _covers(f.grid, fine.grid):
            raise InputError(f"{f.path.name} does not cover {fine.path.name}'s extent (files of one frame)")
    nodatas = {f.meta.nodata for f in files if f.meta.nodata is not None}
    if len(nodatas) > 1:
        raise InputError(f"files of one frame have different nodata values: {names}")
    grid = Grid(fine.grid.height, fine.grid.width, sum(f.grid.count for f in files),
                fine.grid.dtype, fine.grid.crs_wkt, fine.grid.transform)
    tags: dict[str, str] = {}
    for f in reversed(files):
        tags.update(f.meta.tags)
    meta = FrameMeta(
        name=_frame_name([f.path for f in files]),
        nodata=nodatas.pop() if nodatas else None,
        descriptions=[d for f in files for d in f.meta.descriptions],
        tags=tags,
        band_tags=[t for f in files for t in f.meta.band_tags],
        scales=[s for f in files for s in f.meta.scales],
        offsets=[o for f in files for o in f.meta.offsets],
        units=[u for f in files for u in f.meta.units],
        timestamp=next((f.meta.timestamp for f in files if f.meta.timestamp), None),
    )
    return grid, meta


def _bounds(g: Grid) -> tuple[float, float, float, float]:
    a = g.affine()
    xs, ys = zip(a * (0, 0), a * (g.width, g.height))
    return min(xs), min(ys), max(xs), max(ys)


def _covers(coarse: Grid, fine: Grid) -> bool:
    """Whether `coarse` covers `fine`'s extent to within one of its own pixels."""
    (cx0, cy0, cx1, cy1), (fx0, fy0, fx1, fy1) = _bounds(coarse), _bounds(fine)
    tol_x, tol_y = abs(coarse.transform[0]) + abs(coarse.transform[1]), abs(coarse.transform[3]) + abs(coarse.transform[4])
    return cx0 <= fx0 + tol_x and cy0 <= fy0 + tol_y and cx1 >= fx1 - tol_x and cy1 >= fy1 - tol_y


class RasterStack:
    """Frames (one file each, or several files of one date) on one grid, for windowed reads."""

    def __init__(self, frames: Sequence[Sequence[Path]]) -> None:
        self.frame_paths = [list(paths) for paths in frames]
        self._init_handles()
        self.grid, self.frames = self._describe()

    def _init_handles(self) -> None:
        # GDAL datasets are not safe to share between threads: each thread that reads (a thread
        # pool given as executor) gets its own open files; `close` closes them all.
        self._local = threading.local()
        self._all_handles: list[OrderedDict[tuple[int, int], Any]] = []
        self._lock = threading.Lock()

    @property
    def _handles(self) -> OrderedDict[tuple[int, int], Any]:
        handles = getattr(self._local, "handles", None)
        if handles is None:
            handles = self._local.handles = OrderedDict()
            with self._lock:
                self._all_handles.append(handles)
        return handles

    @property
    def paths(self) -> list[Path]:
        """Every input file, frame by frame."""
        return [p for paths in self.frame_paths for p in paths]

    def _describe(self) -> tuple[Grid, list[FrameMeta]]:
        grid: Grid | None = None
        metas = []
        self._fine: list[Grid] = []
        for paths in self.frame_paths:
            this, meta = _combine([_describe_file(p) for p in paths])
            self._fine.append(this)
            if grid is None:
                grid = this
            else:
                _check_same_grid(grid, this, self.frame_paths[0][0], paths[0])
            metas.append(meta)
        assert grid is not None
        return grid, metas

    def _handle(self, frame: int, part: int) -> Any:
        """An open dataset (or warped view onto the frame's grid) of one file, LRU-cached."""
        key = (frame, part)
        if key in self._handles:
            self._handles.move_to_end(key)
            return self._handles[key]
        while len(self._handles) >= MAX_OPEN_FILES:
            _, old = self._handles.popitem(last=False)
            _close(old)
        ds = _open(self.frame_paths[frame][part])
        g = self._fine[frame]
        if (ds.height, ds.width) != (g.height, g.width) or len(self.frame_paths[frame]) > 1 and (
            tuple(ds.transform)[:6] != tuple(g.transform)
        ):
            nodata = ds.nodata if ds.nodata is not None else self.frames[frame].nodata
            ds = (WarpedVRT(ds, crs=ds.crs, transform=g.affine(), width=g.width, height=g.height,
                            resampling=Resampling.bilinear, src_nodata=nodata, nodata=nodata), ds)
        self._handles[key] = ds
        return ds

    def read(self, frame: int, row_off: int, col_off: int, height: int, width: int) -> np.ndarray:
        """Pixels [C, height, width] of one frame, in the file's band order and dtype."""
        window = Window(col_off, row_off, width, height)
        parts = []
        for part, path in enumerate(self.frame_paths[frame]):
            handle = self._handle(frame, part)
            ds = handle[0] if isinstance(handle, tuple) else handle
            try:
                parts.append(ds.read(window=window))
            except RasterioError as exc:
                raise InputError(f"cannot read {path}: {_first_line(exc)}") from None
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        with self._lock:
            for handles in self._all_handles:
                for handle in handles.values():
                    _close(handle)
                handles.clear()

    def __getstate__(self) -> dict:
        """Pickled without its open files (a worker reopens them on its first read)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("_local", "_all_handles", "_lock")}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._init_handles()

    def __enter__(self) -> "RasterStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close(handle: Any) -> None:
    for ds in handle if isinstance(handle, tuple) else (handle,):
        ds.close()


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
    if (a.gcps is None) != (b.gcps is None) or (
        a.gcps is not None and not np.allclose(a.gcps, b.gcps, rtol=0, atol=1e-9)
    ):
        raise InputError(f"frames are on different grids: {path_b.name} has other ground control points")


def read_stack(inputs: Sequence[str | os.PathLike | Sequence[str | os.PathLike]] | str | os.PathLike) -> RasterStack:
    """Open one file (a multi-band image) or several frames of a time series on one grid; a
    frame is a path, a Sentinel-2 product (SAFE folder or zip: `terracodec.io.safe`), or a list
    of paths of one date at different resolutions."""
    from terracodec.io.safe import apply_product, is_product, read_product

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    frames = []
    products = {}
    for item in inputs:
        if isinstance(item, (str, os.PathLike)) and is_product(item):
            products[len(frames)] = product = read_product(item)
            frames.append([Path(f) for f in product.files])
        elif isinstance(item, (str, os.PathLike)):
            frames.append([Path(item)])
        elif isinstance(item, (list, tuple)) and item and all(isinstance(p, (str, os.PathLike)) for p in item):
            frames.append([Path(p) for p in item])
        else:
            raise InputError(f"an input frame must be a path or a list of paths, got {item!r}")
    if not frames:
        raise InputError("no input files given")
    stack = RasterStack(frames)
    for index, product in products.items():
        apply_product(stack.frames[index], product)
    return stack


__all__ = ["FrameMeta", "Grid", "MAX_OPEN_FILES", "RasterStack", "parse_timestamp", "read_stack"]
