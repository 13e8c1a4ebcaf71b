"""The lossless layer: pixels that must come back bit-exact (nodata, out of range, non-finite).

A learned codec is lossy and only meaningful inside the range it was trained on. Nodata
values, saturated pixels (65535) and NaN/inf are not imagery: each tile stores a bitmask of
such elements plus their exact values, deflated (docs/FORMAT.md section 4). The model sees a
benign stand-in there (`terracodec.tilecode.encode_tile`), and the decoder writes the exact
values back.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from terracodec.errors import CorruptStreamError, InputError

#: dtypes a stream may hold (GeoTIFF sample types that a float32 model path can represent).
SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def check_dtype(dtype: np.dtype | str) -> np.dtype:
    """The dtype, or InputError when streams cannot hold it."""
    dt = np.dtype(dtype)
    if dt.name not in SUPPORTED_DTYPES:
        raise InputError(
            f"unsupported data type {dt.name} (supported: {', '.join(SUPPORTED_DTYPES)})"
        )
    return dt


def default_valid_range(dtype: np.dtype | str) -> tuple[float, float]:
    """Values the lossy path codes; everything else is stored exactly.

    Integers: the dtype's range capped at +-32767 (Sentinel-2 reflectance x 10000 with the
    +1000 offset stays far below; 65535 is the saturation marker). Floats: any value that is
    finite in float32 (the model path's precision).
    """
    dt = check_dtype(dtype)
    if dt.kind == "f":
        big = float(np.finfo(np.float32).max)
        return (-big, big)
    info = np.iinfo(dt)
    return (float(max(info.min, -32767)), float(min(info.max, 32767)))


def exact_mask(
    pixels: np.ndarray, nodata: float | None, valid_range: tuple[float, float]
) -> np.ndarray:
    """Boolean mask of elements of `pixels` that must be stored exactly."""
    lo, hi = valid_range
    if pixels.dtype.kind == "f":
        mask = ~np.isfinite(pixels)
        with np.errstate(invalid="ignore"):
            mask |= (pixels < lo) | (pixels > hi)
    else:
        mask = (pixels < lo) | (pixels > hi)
    if nodata is not None and not math.isnan(nodata):  # a NaN nodata is already non-finite
        mask |= pixels == nodata
    return mask


def encode_patch(pixels: np.ndarray, mask: np.ndarray) -> bytes:
    """The patch of one tile: deflate(packbits(mask) + exact values, little-endian). Empty if none."""
    if not mask.any():
        return b""
    bits = np.packbits(mask.ravel(), bitorder="big").tobytes()
    values = pixels[mask].astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes()
    return zlib.compress(bits + values, 6)


def decode_patch(patch: bytes, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(mask, exact values) of a tile from its patch; raises CorruptStreamError when malformed."""
    n = int(np.prod(shape))
    if not patch:
        return np.zeros(shape, bool), np.zeros(0, dtype)
    nbits = (n + 7) // 8
    limit = nbits + n * np.dtype(dtype).itemsize  # every element exact: the largest real patch
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(patch, limit)
    except zlib.error as exc:
        raise CorruptStreamError(f"corrupt .tec file: exact-pixel patch does not inflate ({exc})") from None
    if inflater.unconsumed_tail:
        raise CorruptStreamError("corrupt .tec file: exact-pixel patch inflates beyond its tile's size")
    if not inflater.eof or inflater.unused_data:
        raise CorruptStreamError("corrupt .tec file: exact-pixel patch is not one complete zlib stream")
    if len(raw) < nbits:
        raise CorruptStreamError("corrupt .tec file: exact-pixel patch is too short")
    mask = np.unpackbits(np.frombuffer(raw, np.uint8, nbits), count=n, bitorder="big").astype(bool)
    count = int(mask.sum())
    le = np.dtype(dtype).newbyteorder("<")
    if len(raw) != nbits + count * le.itemsize:
        raise CorruptStreamError("corrupt .tec file: exact-pixel patch has the wrong length")
    values = np.frombuffer(raw, le, count, offset=nbits).astype(dtype)
    return mask.reshape(shape), values


def apply_patch(decoded: np.ndarray, mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Write the exact values back into a decoded tile (in place; returns it)."""
    if values.size:
        decoded[mask] = values
    return decoded
