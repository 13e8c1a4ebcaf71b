"""The JSON header of a `.tec` stream: what it says, and checking that it says it properly.

The container (`container.py`) only stores the header's bytes under a CRC; this module gives
them meaning (docs/FORMAT.md section 2). Every field is checked for type and bounds
(`terracodec.limits`) before anything uses it, so a header that passes the CRC but is
malformed (a bug or a forged file) is a `CorruptStreamError`, never an odd failure later or an
allocation it chose. The writer runs the same checks on what it is about to write.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from terracodec import limits
from terracodec.errors import CorruptStreamError
from terracodec.exact import SUPPORTED_DTYPES
from terracodec.io.meta import FrameMeta, Grid
from terracodec.tiling import grid_shape

#: Model kinds a stream may hold: "image" codes every frame on its own, "temporal" codes each
#: tile's frames in time order, each from the previous ones.
KINDS = ("image", "temporal")


#: `codec.coder_platform` values whose entropy parameters every machine computes bit for bit
#: (`terracodec.temporal.entropy_paths`), oldest first: new streams record the last.
PORTABLE_ENTROPY_PATHS = ("exact-v1", "int8-v2")
#: The fixed-point path of temporal models built on an image codec (`tec-tt-elic`): every entropy
#: parameter from exact fixed-point convolutions (`terracodec.layers.fixedpoint`).
FIXED_POINT_PATH = "fixed-point-v1"
#: Every `coder_platform` that decodes bit-exactly on any machine.
PORTABLE_CODER_PLATFORMS = (*PORTABLE_ENTROPY_PATHS, FIXED_POINT_PATH)


@dataclass
class CodecInfo:
    """Which model coded the tiles, exactly (the weights hash pins the weights)."""

    name: str
    quality: Any
    weights_hash: str
    kind: str = "image"
    bands: int = 0
    band_names: list[str] | None = None
    multiple: int = 1
    #: Temporal models: how the entropy parameters were computed: a portable path
    #: (`PORTABLE_ENTROPY_PATHS`), or the platform of an older float stream (`terracodec.temporal.
    #: coding.coder_platform`), which a decoder names when it fails elsewhere. "" if unknown.
    coder_platform: str = ""


@dataclass
class FrameInfo:
    """One frame: the source file's metadata and how its bands map to the model's."""

    meta: FrameMeta
    band_order: list[int]  # band_order[k] = index (in the file) of the model's band k
    #: DN added to the header normalisation's means for this frame (Sentinel-2 baseline offset:
    #: +1000 / -1000, see terracodec/io/baseline.py); 0 in streams written before the field.
    dn_offset: float = 0.0
    #: Factor from the file's values to DN: reflectance 0..1 is coded as DN = 10000 x value
    #: (`terracodec.io.inputs`) and decoded back; 1 in streams written before the field.
    dn_scale: float = 1.0
    #: Whole DN added per model band to the means (after `dn_offset`): the frame's band centring
    #: (`terracodec.centring`); empty for none (format major 6 when any frame has one).
    band_shift: list[float] = field(default_factory=list)
    #: Share of the frame's pixels whose latent cells were filled (predicted, not sent) under
    #: clouds: cloud-aware coding of temporal models (`terracodec.temporal.clouds`); 0 for none
    #: (format major 7).
    filled: float = 0.0


@dataclass
class StreamHeader:
    """Everything a decoder needs apart from the tile records."""

    codec: CodecInfo
    normalization: dict
    grid: Grid
    valid_range: tuple[float, float]
    tile_size: int
    frames: list[FrameInfo] = field(default_factory=list)
    writer: str = ""

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def tiles_per_frame(self) -> int:
        rows, cols = grid_shape(self.grid.height, self.grid.width, self.tile_size)
        return rows * cols

    def to_json(self) -> dict:
        """The header as a JSON-ready dict (floats that JSON cannot hold become strings)."""
        frames = []
        for f in self.frames:
            d = dict(asdict(f.meta), nodata=_num_out(f.meta.nodata), band_order=f.band_order,
                     dn_offset=f.dn_offset)
            if f.dn_scale != 1.0:
                d["dn_scale"] = f.dn_scale
            if f.band_shift:
                d["band_shift"] = list(f.band_shift)
            if f.filled:
                d["filled"] = f.filled
            frames.append(d)
        grid = dict(asdict(self.grid), transform=list(self.grid.transform))
        for key in ("gcps", "gcp_crs_wkt"):  # optional: absent unless the input had GCPs
            if grid[key] is None:
                del grid[key]
        return {
            "codec": asdict(self.codec),
            "normalization": self.normalization,
            "grid": grid,
            "valid_range": [_num_out(v) for v in self.valid_range],
            "tiling": {"tile_size": self.tile_size, "padding": "edge"},
            "patch": "zlib",
            "frames": frames,
            "writer": self.writer,
        }

    @classmethod
    def from_json(cls, d: Any) -> "StreamHeader":
        """Parse and check a header dict; CorruptStreamError when it is malformed."""
        try:
            return _parse(d)
        except _Bad as exc:
            raise CorruptStreamError(f"corrupt .tec file: malformed header ({exc})") from None


class _Bad(Exception):
    """A header field that is missing, of the wrong type or out of bounds."""


def _parse(d: Any) -> StreamHeader:
    _obj(d, "header")
    c = _obj(d.get("codec"), "codec")
    kind = _str(c.get("kind", "image"), "codec.kind")
    if kind not in KINDS:
        raise _Bad(f"codec.kind {kind!r} is not one of {', '.join(KINDS)}")
    bands = _int(c.get("bands"), "codec.bands", 1, limits.MAX_BANDS)
    quality = c.get("quality")
    if isinstance(quality, bool) or not (quality is None or isinstance(quality, (int, float, str))):
        raise _Bad("codec.quality")
    if isinstance(quality, float) and not math.isfinite(quality):
        raise _Bad("codec.quality")
    names = c.get("band_names")
    codec = CodecInfo(
        name=_str(c.get("name"), "codec.name", 1), quality=quality,
        weights_hash=_str(c.get("weights_hash", ""), "codec.weights_hash", 0, 256), kind=kind,
        bands=bands,
        band_names=None if names is None else _list(names, "codec.band_names", _str, bands, bands),
        multiple=_int(c.get("multiple", 1), "codec.multiple", 1, limits.MAX_MULTIPLE),
        coder_platform=_str(c.get("coder_platform", ""), "codec.coder_platform", 0, 1024),
    )
    g = _obj(d.get("grid"), "grid")
    gcps = g.get("gcps")
    grid = Grid(
        height=_int(g.get("height"), "grid.height", 1, limits.MAX_SIDE),
        width=_int(g.get("width"), "grid.width", 1, limits.MAX_SIDE),
        count=_int(g.get("count"), "grid.count", 1, bands),
        dtype=_str(g.get("dtype"), "grid.dtype"),
        crs_wkt=_opt_crs(g.get("crs_wkt"), "grid.crs_wkt"),
        transform=tuple(_list(g.get("transform"), "grid.transform", _finite, 6, 6)),
        gcps=None if gcps is None else _list(gcps, "grid.gcps", _gcp, 1, limits.MAX_GCPS),
        gcp_crs_wkt=_opt_crs(g.get("gcp_crs_wkt"), "grid.gcp_crs_wkt"),
    )
    if grid.dtype not in SUPPORTED_DTYPES:
        raise _Bad(f"grid.dtype {grid.dtype!r}")
    tiling = _obj(d.get("tiling"), "tiling")
    tile_size = _int(tiling.get("tile_size"), "tiling.tile_size", codec.multiple, limits.MAX_TILE_SIZE)
    if tile_size % codec.multiple:
        raise _Bad("tiling.tile_size is not a multiple of codec.multiple")
    rows, cols = grid_shape(grid.height, grid.width, tile_size)
    if rows * cols > limits.MAX_ENTRIES:
        raise _Bad("too many tiles")
    valid_range = tuple(_list(d.get("valid_range"), "valid_range", _num, 2, 2))
    if math.isnan(valid_range[0]) or math.isnan(valid_range[1]) or valid_range[0] > valid_range[1]:
        raise _Bad("valid_range")
    frames = _list(d.get("frames"), "frames", lambda f, w: _frame(f, w, bands, grid.count), 1, limits.MAX_FRAMES)
    for i, f in enumerate(frames):
        if f.meta.nodata is not None and not representable(f.meta.nodata, grid.dtype):
            raise _Bad(f"frames[{i}].nodata {f.meta.nodata!r} is not a {grid.dtype} value")
    if len(frames) * rows * cols > limits.MAX_ENTRIES:
        raise _Bad("too many tiles")
    return StreamHeader(codec, _normalization(d.get("normalization"), bands), grid, valid_range,
                        tile_size, frames, _str(d.get("writer", ""), "writer", 0, 1024))


def _frame(f: Any, what: str, bands: int, count: int) -> FrameInfo:
    _obj(f, what)
    order = _list(f.get("band_order"), f"{what}.band_order", lambda v, w: _int(v, w, -1, bands - 1), bands, bands)
    # the file's `count` bands each once; -1 (bands < count: a band the frame lacks) for the rest
    if sorted(j for j in order if j >= 0) != list(range(count)):
        raise _Bad(f"{what}.band_order is not a permutation of the file's bands")
    opt_str = lambda v, w: None if v is None else _str(v, w)  # noqa: E731
    tags = lambda v, w: _tags(v, w)  # noqa: E731
    meta = FrameMeta(
        name=_str(f.get("name"), f"{what}.name", 1, 4096),
        nodata=_num(f.get("nodata"), f"{what}.nodata") if f.get("nodata") is not None else None,
        descriptions=_list(f.get("descriptions", []), f"{what}.descriptions", opt_str, 0, count),
        tags=_tags(f.get("tags", {}), f"{what}.tags"),
        band_tags=_list(f.get("band_tags", []), f"{what}.band_tags", tags, 0, count),
        scales=_list(f.get("scales", []), f"{what}.scales", _finite, 0, count),
        offsets=_list(f.get("offsets", []), f"{what}.offsets", _finite, 0, count),
        units=_list(f.get("units", []), f"{what}.units", opt_str, 0, count),
        timestamp=opt_str(f.get("timestamp"), f"{what}.timestamp"),
    )
    offset = _finite(f.get("dn_offset", 0.0), f"{what}.dn_offset")
    scale = _finite(f.get("dn_scale", 1.0), f"{what}.dn_scale")
    if abs(offset) > 1e9 or not 1e-9 <= scale <= 1e9:
        raise _Bad(f"{what}.dn_offset or dn_scale")
    shift = _list(f.get("band_shift", []), f"{what}.band_shift", _finite, 0, bands)
    if shift and (len(shift) != bands or max(abs(v) for v in shift) > 1e9):
        raise _Bad(f"{what}.band_shift needs one value per band, each at most 1e9 in size")
    filled = _finite(f.get("filled", 0.0), f"{what}.filled")
    if not 0.0 <= filled <= 1.0:
        raise _Bad(f"{what}.filled must be a share in [0, 1]")
    return FrameInfo(meta, order, offset, scale, shift, filled)


def _normalization(n: Any, bands: int) -> dict:
    _obj(n, "normalization")
    _list(n.get("mean"), "normalization.mean", _finite, bands, bands)
    std = _list(n.get("std"), "normalization.std", _finite, bands, bands)
    if min(std) <= 0:
        raise _Bad("normalization.std must be positive")
    if not isinstance(n.get("name", ""), str):
        raise _Bad("normalization.name")
    return n


# -- field checks: each returns the value or raises _Bad naming the field ----------------------
def _obj(v: Any, what: str) -> dict:
    if not isinstance(v, dict):
        raise _Bad(f"{what} is not an object")
    return v


def _int(v: Any, what: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _Bad(f"{what} must be an integer in [{lo}, {hi}]")
    return v


def _str(v: Any, what: str, min_len: int = 0, max_len: int = limits.MAX_STRING) -> str:
    if not isinstance(v, str) or not min_len <= len(v) <= max_len:
        raise _Bad(f"{what} must be a string of {min_len}..{max_len} characters")
    return v


def _num(v: Any, what: str) -> float:
    """A number, or one of the strings "nan", "inf", "-inf"."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(f"{what} must be a number")
    return float(v)


def _finite(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise _Bad(f"{what} must be a finite number")
    return float(v)


def _list(v: Any, what: str, item: Any, lo: int, hi: int) -> list:
    if not isinstance(v, list) or not lo <= len(v) <= hi:
        raise _Bad(f"{what} must be a list of {lo}..{hi} items")
    return [item(x, f"{what}[{i}]") for i, x in enumerate(v)]


def _tags(v: Any, what: str) -> dict[str, str]:
    _obj(v, what)
    if len(v) > limits.MAX_TAGS or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        raise _Bad(f"{what} must map strings to strings")
    return v


def _gcp(v: Any, what: str) -> list[float]:
    return _list(v, what, _finite, 5, 5)


def _opt_crs(v: Any, what: str) -> str | None:
    """A CRS that rasterio can read, or None (parsed here so that no later use can fail)."""
    if v is None:
        return None
    text = _str(v, what, 1)
    from terracodec.io.gdal import parse_crs

    try:
        parse_crs(text)
    except ValueError:
        raise _Bad(f"{what} is not a valid CRS") from None
    return text


def representable(value: float, dtype: str) -> bool:
    """Whether `value` is a value of `dtype` (what GDAL accepts as its nodata)."""
    import numpy as np

    dt = np.dtype(dtype)
    if dt.kind == "f":
        return math.isnan(value) or math.isinf(value) or abs(value) <= float(np.finfo(dt).max)
    info = np.iinfo(dt)
    return math.isfinite(value) and value == int(value) and info.min <= value <= info.max


def _num_out(v: float | None) -> float | str | None:
    """JSON has no NaN or infinity: write them as strings."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


__all__ = ["CodecInfo", "FIXED_POINT_PATH", "FrameInfo", "KINDS", "PORTABLE_CODER_PLATFORMS", "PORTABLE_ENTROPY_PATHS",
           "StreamHeader"]
