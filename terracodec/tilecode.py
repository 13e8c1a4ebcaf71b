"""Coding one frame of one tile: functions of (tile pixels, codec, the codec's state), so a
scheduler can run them anywhere (`terracodec.api.units` runs a tile's frames in order).

Encode: mark the elements that must stay exact (nodata, out of range, non-finite), give the
model a benign stand-in there (the normalisation mean for holes, the range limit for clipped
values), pad, run the codec, and keep the exact elements in the tile's patch. A tile stored
exactly (every element in the patch) never reaches the codec, so it leaves the state as it is,
on both sides. Decode reverses
it: model output, crop, denormalise on the CPU (bit-exact everywhere), round, clip, move valid
pixels off the nodata value (a lossy value that happens to equal nodata would read as a hole),
patch.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from terracodec.container import FLAG_EXACT_ONLY, TileRecord
from terracodec.errors import CorruptStreamError
from terracodec.exact import apply_patch, decode_patch, encode_patch, exact_mask
from terracodec.tiling import Tile, pad_tile


class Normalizer(Protocol):
    """What tile coding needs of `terracodec.normalization.Normalization`."""

    def normalize(self, x: np.ndarray) -> np.ndarray: ...
    def denormalize(self, x: np.ndarray) -> np.ndarray: ...


class SequenceCodec(Protocol):
    """What tile coding needs of a codec (`terracodec.models.codec.Codec`)."""

    bands: int
    multiple: int

    def encode_frame(self, state: Any, x: torch.Tensor) -> tuple[bytes, Any]: ...
    def decode_frame(self, state: Any, data: bytes, height: int, width: int) -> tuple[torch.Tensor, Any]: ...
    def decode_frame_latents(self, state: Any, data: bytes, height: int, width: int) -> tuple[dict, Any]: ...


def encode_tile(
    pixels: np.ndarray,
    tile: Tile,
    codec: SequenceCodec,
    state: Any,
    norm: Normalizer,
    nodata: float | None,
    valid_range: tuple[float, float],
    cloud: np.ndarray | None = None,
    fill_mode: str = "interleave",
) -> tuple[TileRecord, Any]:
    """Code a [C, h, w] tile (model band order, raw dtype) into a tile record; returns it with
    the codec's next state. `cloud`: the padded tile's cloudy latent cells (temporal codecs
    fill their tokens, `terracodec.temporal.clouds`)."""
    mask = exact_mask(pixels, nodata, valid_range)
    patch = encode_patch(pixels, mask)
    if mask.all():
        return TileRecord(b"", patch, FLAG_EXACT_ONLY), state
    values = pixels.astype(np.float32)
    holes = ~np.isfinite(values)
    if nodata is not None:
        holes |= pixels == nodata
    np.clip(values, valid_range[0], valid_range[1], out=values)
    values[holes] = 0.0
    x = np.asarray(norm.normalize(values), dtype=np.float32)
    x[holes] = 0.0  # the band mean: cheap to code, harmless to neighbours
    options = {} if cloud is None else {"cloud": torch.from_numpy(cloud), "fill_mode": fill_mode}
    with torch.inference_mode():
        code, state = codec.encode_frame(state, torch.from_numpy(np.ascontiguousarray(pad_tile(x, tile))), **options)
    return TileRecord(code, patch, 0), state


def decode_tile(
    record: TileRecord,
    tile: Tile,
    codec: SequenceCodec,
    state: Any,
    norm: Normalizer,
    dtype: np.dtype,
    valid_range: tuple[float, float],
    nodata: float | None = None,
) -> tuple[np.ndarray, Any]:
    """The [C, h, w] pixels (model band order, `dtype`) of a tile record, and the codec's next
    state."""
    shape = (codec.bands, tile.height, tile.width)
    mask, exact = decode_patch(record.patch, shape, dtype)
    if record.flags & FLAG_EXACT_ONLY:
        if not mask.all():
            raise CorruptStreamError("corrupt .tec file: an exact-only tile does not cover all pixels")
        out = np.zeros(shape, dtype)
        return apply_patch(out, mask, exact), state
    with torch.inference_mode():
        y, state = codec.decode_frame(state, record.code, tile.padded_height, tile.padded_width)
        y = y.detach().to("cpu", torch.float32)[:, : tile.height, : tile.width]
    values = np.asarray(norm.denormalize(y.numpy()))  # float64, on the CPU
    out = to_dtype(values, dtype, valid_range)
    if nodata is not None:
        avoid_nodata(out, values, ~mask, nodata, valid_range)
    return apply_patch(out, mask, exact), state


def decode_tile_latents(record: TileRecord, tile: Tile, codec: SequenceCodec, state: Any) -> tuple[dict | None, Any]:
    """The decoded latents of a tile record (no synthesis; None for an exact-only tile), and the
    codec's next state."""
    if record.flags & FLAG_EXACT_ONLY:
        return None, state
    with torch.inference_mode():
        return codec.decode_frame_latents(state, record.code, tile.padded_height, tile.padded_width)


def avoid_nodata(out: np.ndarray, values: np.ndarray, valid: np.ndarray, nodata: float,
                 valid_range: tuple[float, float]) -> None:
    """Move decoded valid pixels that equal `nodata` to the next value on the side of the
    model's own value (nodata 0, decoded 0.4: 1), inside the dtype and `valid_range`."""
    if np.isnan(nodata):
        return  # decoded pixels are finite
    hits = valid & (out == nodata)
    if not hits.any():
        return
    dtype = out.dtype
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(valid_range[0], info.min), min(valid_range[1], info.max)
        up, down = nodata + 1, nodata - 1
    else:
        lo, hi = valid_range
        up = float(np.nextafter(dtype.type(nodata), dtype.type(np.inf)))
        down = float(np.nextafter(dtype.type(nodata), dtype.type(-np.inf)))
    go_up = values[hits] >= nodata
    if up > hi:
        go_up[:] = False
    if down < lo:
        go_up[:] = True
    out[hits] = np.where(go_up, up, down).astype(dtype)


def to_dtype(values: np.ndarray, dtype: np.dtype, valid_range: tuple[float, float]) -> np.ndarray:
    """Clip float pixels to the coded range (and the dtype's), round integers, cast."""
    dtype = np.dtype(dtype)
    lo, hi = valid_range
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = max(lo, info.min), min(hi, info.max)
        values = np.rint(values)
    values = np.clip(values, lo, hi)
    return values.astype(dtype)
