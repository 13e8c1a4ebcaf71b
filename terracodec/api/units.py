"""Coding one work unit (`terracodec.api.plan.Unit`): a tile's frames, in order, with one codec
state. The same function serves every codec kind: an image codec's state is None, a temporal
codec's carries its previous frames."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from terracodec.api.plan import Unit, frame_normalizers
from terracodec.container import TileRecord
from terracodec.exact import decode_patch
from terracodec.header import StreamHeader
from terracodec.tilecode import decode_tile, decode_tile_latents, encode_tile

#: `emit(frame, tile, result)`: where a unit's decoded frames go as they come.
Emit = Callable[[int, Any, Any], None]


def encode_unit(unit: Unit, source: Any, header: StreamHeader, codec: Any,
                norms: list[Any] | None = None) -> list[TileRecord]:
    """The records of a unit's frames; pixels are read from `source` (a stack) frame by frame."""
    norms = norms or frame_normalizers(header)
    t = unit.tile
    state = _start(codec, header)
    records = []
    cells_of = getattr(source, "cells_of", None)  # cloud-aware coding (`io.cloud_masks.CloudyStack`)
    for fi in unit.frames:
        frame = header.frames[fi]
        pixels = _model_order(source.read(fi, t.row_off, t.col_off, t.height, t.width),
                              frame.band_order, codec, norms[fi], header.valid_range)
        cloud = cells_of(fi, t) if cells_of else None
        record, state = encode_tile(pixels, t, codec, state, norms[fi], frame.meta.nodata, header.valid_range,
                                    cloud=cloud, fill_mode=getattr(source, "fill_mode", "interleave"))
        records.append(record)
    return records


def _model_order(pixels: np.ndarray, order: list[int], codec: Any, norm: Any,
                 valid_range: tuple[float, float]) -> np.ndarray:
    """A tile's file bands `[count, h, w]` in the model's order; a band the frame lacks (-1,
    `terracodec.bands.ABSENT`) is the model's centre, a constant (`terracodec.centring`)."""
    if min(order) >= 0:
        return np.ascontiguousarray(pixels[order])
    from terracodec.centring import absent_fill, model_centre

    centre = model_centre(codec)
    out = np.empty((len(order),) + pixels.shape[1:], pixels.dtype)
    for k, j in enumerate(order):
        if j >= 0:
            out[k] = pixels[j]
        else:
            value = np.clip(absent_fill(norm, centre, k), *valid_range)
            out[k] = np.rint(value) if out.dtype.kind in "iu" else value
    return out


def decode_unit(unit: Unit, read: Callable[[int, int], TileRecord], header: StreamHeader, codec: Any,
                wanted: dict[int, int], want: str, emit: Emit, norms: list[Any] | None = None) -> None:
    """Decode a unit's frames in order; `emit(k, tile, result)` each wanted frame `k`
    (`wanted`: frame index -> output position): `want="pixels"` gives `[C, h, w]` pixels in the
    file's band order, `"latents"` the codec's latents (None for a tile stored exactly). Frames
    that are not wanted are decoded to their latents only (later frames may need them)."""
    norms = norms or frame_normalizers(header)
    dtype = np.dtype(header.grid.dtype)
    t = unit.tile
    state = _start(codec, header)
    for fi in unit.frames:
        record = read(fi, t.index)
        if fi not in wanted or want == "latents":
            result, state = decode_tile_latents(record, t, codec, state)
        else:
            frame = header.frames[fi]
            model_order, state = decode_tile(record, t, codec, state, norms[fi], dtype,
                                             header.valid_range, frame.meta.nodata)
            present = [k for k, j in enumerate(frame.band_order) if j >= 0]
            result = np.empty((len(present),) + model_order.shape[1:], model_order.dtype)
            result[[frame.band_order[k] for k in present]] = model_order[present]  # the file's order
        if fi in wanted:
            emit(wanted[fi], t, result)


def check_patches(units: list[Unit], read: Callable[[int, int], TileRecord], header: StreamHeader,
                  codec: Any) -> None:
    """Inflate every exact-pixel patch of units that hold several frames before any is decoded:
    a forged patch of a later frame is refused at once, not after the model work of the frames
    before it (each patch inflates to at most its tile's size; reading the records twice is
    cheap beside a temporal model)."""
    dtype = np.dtype(header.grid.dtype)
    for unit in units:
        if len(unit.frames) > 1:
            t = unit.tile
            for fi in unit.frames:
                decode_patch(read(fi, t.index).patch, (int(codec.bands), t.height, t.width), dtype)


def _start(codec: Any, header: StreamHeader) -> Any:
    """The codec's state before a unit's first frame; a temporal one learns where the stream was
    coded (named when a frame fails to decode elsewhere)."""
    return codec.start_state(coded_on=header.codec.coder_platform)


__all__ = ["Emit", "check_patches", "decode_unit", "encode_unit"]
