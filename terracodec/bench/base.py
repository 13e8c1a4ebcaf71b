"""The one interface every benchmarked codec has, classical or learned.

    codec = Jpeg2000()
    data = codec.encode(x, quality=60)     # x: uint16 [C, H, W] (or [T, C, H, W] if codec.series)
    y = codec.decode(data)                 # same shape and dtype as x

`series` codecs (video codecs, terracodec models) take a whole time series [T, C, H, W] as one
stream; the others code one image [C, H, W] at a time and the runner loops over the frames.

Classical codecs whose data does not fit one library stream (one stream per band, per band
triplet or per video packet) are wrapped in a tiny frame (`pack_parts`): the array shape, a
codec-specific side block (e.g. the per-band value range used for 8/12-bit scaling) and the part
lengths. Those bytes are counted in the rate like everything else; `payload_bytes` gives the
bytes of the library streams alone.
"""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from terracodec.errors import CorruptStreamError, InputError


class Codec(ABC):
    """A codec under test: encode uint16 arrays to bytes and back, at a sweep of qualities."""

    #: Registry name (`tec bench --codecs`).
    name: ClassVar[str] = ""
    #: Library and version doing the work (filled at run time by `library()`).
    label: ClassVar[str] = ""
    #: encode() takes [T, C, H, W] in one stream (else [C, H, W], one frame at a time).
    series: ClassVar[bool] = False
    #: Every quality is lossless (a single reference point, PSNR = inf).
    lossless: ClassVar[bool] = False
    #: What the quality parameter is, in words (higher sweep values are not always better).
    quality_meaning: ClassVar[str] = ""
    #: Band names of the sample being coded (set by the runner; codecs that match bands by
    #: name, like terracodec models, use them; the others ignore them).
    band_names: list[str | None] | None = None

    def __init__(self, threads: int | None = None) -> None:
        #: Threads the library may use, where it takes a number (None: its default).
        self.threads = threads

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this codec cannot run here (missing library or encoder), or None when it can."""
        return None

    @abstractmethod
    def default_qualities(self) -> list[Any]:
        """The default sweep, lowest rate first."""

    @abstractmethod
    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        """Encode a uint16 array ([C, H, W], or [T, C, H, W] for series codecs)."""

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray:
        """Decode what `encode` wrote, to an array of the same shape (uint16)."""

    def payload_bytes(self, data: bytes) -> int:
        """Bytes of the codec's own streams, without our framing or container header."""
        return len(data)

    def settings(self) -> dict[str, Any]:
        """The exact settings used (documented in the results)."""
        return {}

    def frame_bytes(self, data: bytes) -> list[int] | None:
        """Payload bytes of each frame of a series stream, where the codec can split them
        (temporal models: the first date costs more than the dates predicted from it)."""
        return None

    def unsupported(self, x: np.ndarray, band_names: list[str | None] | None) -> str | None:
        """Why this codec cannot code such a sample (wrong band count, ...), or None."""
        return None


def check_uint16(x: np.ndarray, ndim: int) -> np.ndarray:
    """The array as contiguous uint16 of rank `ndim`, or InputError."""
    if x.dtype != np.uint16:
        raise InputError(f"the benchmark codecs take uint16 arrays, got {x.dtype}")
    if x.ndim != ndim:
        raise InputError(f"expected a {ndim}-D array, got shape {x.shape}")
    return np.ascontiguousarray(x)


# ----------------------------------------------------------------------------- framing

_U32 = struct.Struct("<I")


def pack_parts(shape: tuple[int, ...], parts: list[bytes], side: bytes = b"") -> bytes:
    """shape (u8 rank + u32 dims), side block (u32 length + bytes), parts (u32 count + u32
    lengths + bytes), all little-endian."""
    out = [struct.pack("<B", len(shape)), struct.pack(f"<{len(shape)}I", *shape),
           _U32.pack(len(side)), side, _U32.pack(len(parts))]
    out.append(struct.pack(f"<{len(parts)}I", *(len(p) for p in parts)))
    out.extend(parts)
    return b"".join(out)


def unpack_parts(data: bytes) -> tuple[tuple[int, ...], bytes, list[bytes]]:
    """(shape, side block, parts) of a `pack_parts` frame; CorruptStreamError when malformed."""
    try:
        view = memoryview(data)
        rank = view[0]
        pos = 1
        shape = struct.unpack_from(f"<{rank}I", view, pos)
        pos += 4 * rank
        (n_side,) = _U32.unpack_from(view, pos)
        pos += 4
        side = bytes(view[pos : pos + n_side])
        pos += n_side
        (count,) = _U32.unpack_from(view, pos)
        pos += 4
        if count > len(data):
            raise CorruptStreamError("corrupt benchmark stream: impossible part count")
        lengths = struct.unpack_from(f"<{count}I", view, pos)
        pos += 4 * count
    except (IndexError, struct.error):
        raise CorruptStreamError("corrupt benchmark stream: truncated frame header") from None
    if len(side) != n_side or pos + sum(lengths) != len(data):
        raise CorruptStreamError("corrupt benchmark stream: lengths do not match the data")
    parts = []
    for n in lengths:
        parts.append(bytes(view[pos : pos + n]))
        pos += n
    return tuple(int(s) for s in shape), side, parts


def payload_of_parts(data: bytes) -> int:
    """Bytes in the parts of a `pack_parts` frame."""
    return sum(len(p) for p in unpack_parts(data)[2])


# ----------------------------------------------------------------------------- bit-depth scaling


def band_ranges(x: np.ndarray) -> np.ndarray:
    """Per-band (min, max) of a [C, H, W] or [T, C, H, W] uint16 array, as uint16 [C, 2]."""
    axes = (1, 2) if x.ndim == 3 else (0, 2, 3)
    return np.stack([x.min(axis=axes), x.max(axis=axes)], axis=1).astype(np.uint16)


def to_codes(x: np.ndarray, ranges: np.ndarray, bits: int, band_axis: int) -> np.ndarray:
    """Map each band linearly from its [min, max] onto [0, 2^bits - 1] (rounded), so that an
    8/10/12-bit codec sees the whole code range; a constant band maps to 0."""
    shape = [1] * x.ndim
    shape[band_axis] = -1
    lo = ranges[:, 0].astype(np.float64).reshape(shape)
    span = (ranges[:, 1].astype(np.float64) - ranges[:, 0]).reshape(shape)
    top = float((1 << bits) - 1)
    scale = np.divide(top, span, out=np.zeros_like(span), where=span > 0)
    codes = np.rint((x.astype(np.float64) - lo) * scale)
    return np.clip(codes, 0, top).astype(np.uint8 if bits <= 8 else np.uint16)


def from_codes(codes: np.ndarray, ranges: np.ndarray, bits: int, band_axis: int) -> np.ndarray:
    """Inverse of `to_codes` (up to its rounding): back to uint16 DN."""
    shape = [1] * codes.ndim
    shape[band_axis] = -1
    lo = ranges[:, 0].astype(np.float64).reshape(shape)
    span = (ranges[:, 1].astype(np.float64) - ranges[:, 0]).reshape(shape)
    top = float((1 << bits) - 1)
    out = np.rint(lo + codes.astype(np.float64) * (span / top))
    return np.clip(out, 0, 65535).astype(np.uint16)


def triplets(bands: int) -> list[list[int]]:
    """Band indices in groups of three; the last group repeats its last band as padding."""
    groups = [list(range(i, min(i + 3, bands))) for i in range(0, bands, 3)]
    for g in groups:
        while len(g) < 3:
            g.append(g[-1])
    return groups
