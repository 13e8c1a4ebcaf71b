"""`xarray.open_dataset("scene.tec", engine="terracodec")`: a stream as a lazy Dataset.

The Dataset holds one data variable, `reflectance` (`VARIABLE`), with dims (time, band, y, x)
and the stream's dtype. Its coordinates are:

* `time`: the frames' timestamps as datetime64, or the frame names when a timestamp is
  missing or cannot be parsed; `frame_name` (along time) always holds the frame names;
* `band`: the band descriptions of the first frame (for a band without one, the model's name
  for it, else `band_<n>`);
* `y`, `x`: pixel centres from the affine transform (left out when the grid is rotated: the
  `GeoTransform` still says where it lies);
* `spatial_ref`: a scalar with `crs_wkt`, `spatial_ref` and `GeoTransform`, as rioxarray
  reads and writes them (the variable's `grid_mapping` names it).

The nodata value of the frames (when they share one) is the variable's `_FillValue`. By
default values come back as the stream holds them (`decode()`'s pixels, exactly);
`mask_and_scale=True` turns nodata into NaN (CF decoding, a float array). Attributes say
which model coded the stream, at which quality and rate (`bpppb`: bits per pixel per band).

Nothing is decoded when the Dataset opens (the header alone is read, without torch). Reading
a selection makes one `terracodec.api.decoding.decode` call for the selection's frames and
bounding pixel window, so only the tiles it touches are read; the array holds the stream's
path (never an open file), so it pickles and a Dask worker in another process decodes its
own chunks. `chunks={}` gives chunks of one tile: one frame per chunk for image streams, and
every frame for temporal ones (frame t of a temporal stream is decoded from frames 0..t, so
chunks of one frame would decode the first frames again for every later one).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import xarray as xr
from xarray.backends import BackendArray, BackendEntrypoint
from xarray.core import indexing

from terracodec.api.stream import open_stream
from terracodec.container import MAGIC
from terracodec.errors import InputError, TerracodecError
from terracodec.header import StreamHeader

#: The name of the data variable.
VARIABLE = "reflectance"
DIMS = ("time", "band", "y", "x")


class TecBackendArray(BackendArray):
    """The pixels of a stream [T, C, H, W], decoded on demand, selection by selection."""

    def __init__(self, source: str | bytes, shape: tuple[int, int, int, int], dtype: Any,
                 lock: Any = None) -> None:
        self.source = source  # a path or the stream's bytes: what pickles
        self.shape = shape
        self.dtype = np.dtype(dtype)
        self.lock = lock

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(
            key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        """Outer indexing (ints, positive-step slices, sorted integer arrays) by one decode."""
        scalar = [isinstance(k, (int, np.integer)) for k in key]
        picks = [_positions(k, n) for k, n in zip(key, self.shape)]
        if any(p.size == 0 for p in picks):
            return np.empty(tuple(p.size for p, s in zip(picks, scalar) if not s), self.dtype)
        frames = np.unique(picks[0])
        rows, cols = picks[2], picks[3]
        r0, c0 = int(rows.min()), int(cols.min())
        window = (c0, r0, int(cols.max()) + 1 - c0, int(rows.max()) + 1 - r0)
        from terracodec.api.decoding import decode  # torch: only when pixels are wanted

        with self.lock if self.lock is not None else nullcontext():
            block = decode(self.source, frames=frames.tolist(), window=window).pixels
        relative = [np.searchsorted(frames, picks[0]), picks[1], rows - r0, cols - c0]
        for axis, rel in enumerate(relative):
            if len(rel) != block.shape[axis] or bool((rel != np.arange(len(rel))).any()):
                block = block.take(rel, axis=axis)
        return block[tuple(0 if s else slice(None) for s in scalar)]


def _positions(key: Any, size: int) -> np.ndarray:
    if isinstance(key, slice):
        return np.arange(size)[key]
    return np.atleast_1d(np.asarray(key, dtype=np.int64))


def open_tec_dataset(source: Any, *, mask_and_scale: bool = False, lock: Any = None,
                     drop_variables: Iterable[str] | None = None) -> xr.Dataset:
    """The lazy Dataset of a `.tec` path (or its bytes); see the module docstring."""
    src = _source(source)
    try:
        reader, header = open_stream(src)
    except TerracodecError as exc:
        where = f"{src}: " if isinstance(src, str) else ""
        raise type(exc)(f"{where}{exc}") from None
    with reader:
        size = reader.file_size
    g = header.grid
    shape = (header.frame_count, g.count, g.height, g.width)
    if lock is True:
        from xarray.backends.locks import SerializableLock

        lock = SerializableLock()
    array = TecBackendArray(src, shape, g.dtype, lock or None)
    nodata = _common_nodata(header)
    attrs = _attrs(header, size)
    attrs["grid_mapping"] = "spatial_ref"
    if nodata is not None:
        attrs["_FillValue"] = np.array(nodata).astype(g.dtype)[()]
    encoding = {"preferred_chunks": dict(zip(DIMS, _chunks(header)))}
    if isinstance(src, str):
        encoding["source"] = src
    var = xr.Variable(DIMS, indexing.LazilyIndexedArray(array), attrs, encoding)
    if mask_and_scale:
        var = xr.conventions.decode_cf_variable(VARIABLE, var, mask_and_scale=True, decode_times=False)
    data_vars = {} if VARIABLE in set(drop_variables or ()) else {VARIABLE: var}
    ds = xr.Dataset(data_vars, coords=_coords(header), attrs=_attrs(header, size))
    return ds


def _source(source: Any) -> str | bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fsdecode(source))
        if not path.is_file():
            raise InputError(f"no such .tec file: {path}")
        return str(path.resolve())  # a Dask worker may run elsewhere in the file system tree
    raise InputError(f"engine='terracodec' reads a .tec path or bytes, got {type(source).__name__}")


def _chunks(header: StreamHeader) -> tuple[int, int, int, int]:
    """One tile per chunk: one frame (image streams) or all of them (temporal streams)."""
    g, size = header.grid, header.tile_size
    frames = header.frame_count if header.codec.kind == "temporal" else 1
    return frames, g.count, min(size, g.height), min(size, g.width)


def _common_nodata(header: StreamHeader) -> float | None:
    values = {repr(f.meta.nodata) for f in header.frames}
    return header.frames[0].meta.nodata if len(values) == 1 else None


def _attrs(header: StreamHeader, size: int) -> dict[str, Any]:
    g, c = header.grid, header.codec
    attrs: dict[str, Any] = {
        "model": c.name, "model_kind": c.kind, "tile_size": header.tile_size,
        "bpppb": 8.0 * size / (g.height * g.width * g.count * header.frame_count),
        "compressed_bytes": size,
    }
    if c.quality is not None:
        attrs["quality"] = c.quality
    return attrs


def _coords(header: StreamHeader) -> dict[str, Any]:
    g = header.grid
    names = [f.meta.name for f in header.frames]
    coords: dict[str, Any] = {
        "time": ("time", _times(header, names)),
        "frame_name": ("time", np.array(names, dtype=object)),
        "band": ("band", np.array(band_names(header), dtype=object)),
        "spatial_ref": xr.Variable((), np.int64(0), _spatial_ref(g.crs_wkt, g.transform)),
    }
    a, b, c, d, e, f = g.transform
    if b == 0 and d == 0:
        coords["x"] = ("x", c + a * (np.arange(g.width) + 0.5))
        coords["y"] = ("y", f + e * (np.arange(g.height) + 0.5))
    return coords


def band_names(header: StreamHeader) -> list[str]:
    """The file's band names: its descriptions, else the model's name of the band, else
    `band_<n>` (1-based)."""
    first = header.frames[0]
    described = list(first.meta.descriptions) + [None] * header.grid.count
    model = header.codec.band_names or []
    by_file = {j: model[k] for k, j in enumerate(first.band_order) if k < len(model)}
    return [described[j] or by_file.get(j) or f"band_{j + 1}" for j in range(header.grid.count)]


def _times(header: StreamHeader, names: list[str]) -> np.ndarray:
    """datetime64[ns] of every frame's timestamp; the frame names if one is missing or odd."""
    import pandas as pd

    stamps = [f.meta.timestamp for f in header.frames]
    try:
        out = []
        for s in stamps:
            if not s:
                raise ValueError("no timestamp")
            t = pd.Timestamp(s)
            out.append(t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t)
        return np.array([t.to_datetime64() for t in out], dtype="datetime64[ns]")
    except (ValueError, TypeError, OverflowError):
        return np.array(names, dtype=object)


def _spatial_ref(crs_wkt: str | None, transform: tuple[float, ...]) -> dict[str, str]:
    """The grid mapping's attributes as rioxarray reads them (GeoTransform in GDAL order)."""
    a, b, c, d, e, f = transform
    attrs = {"GeoTransform": " ".join(repr(float(v)) for v in (c, a, b, f, d, e))}
    if crs_wkt:
        attrs = {"crs_wkt": crs_wkt, "spatial_ref": crs_wkt, **attrs}
    return attrs


def _has_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class TerracodecBackendEntrypoint(BackendEntrypoint):
    """xarray's `engine="terracodec"`: `.tec` streams as lazy Datasets (see the module)."""

    description = "Open TerraCodec .tec streams (learned compression of Sentinel-2) lazily"
    open_dataset_parameters = ("filename_or_obj", "drop_variables", "mask_and_scale", "lock")

    def open_dataset(self, filename_or_obj: Any, *, drop_variables: Iterable[str] | None = None,
                     mask_and_scale: bool = False, lock: Any = None) -> xr.Dataset:
        return open_tec_dataset(filename_or_obj, mask_and_scale=bool(mask_and_scale), lock=lock,
                                drop_variables=drop_variables)

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        if not isinstance(filename_or_obj, (str, os.PathLike)):
            return False
        path = os.fsdecode(filename_or_obj)
        return path.lower().endswith(".tec") or (os.path.isfile(path) and _has_magic(path))


__all__ = ["DIMS", "TecBackendArray", "TerracodecBackendEntrypoint", "VARIABLE", "band_names",
           "open_tec_dataset"]
