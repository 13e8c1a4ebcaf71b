"""The work-unit plan: a stream cut into independent units of work.

What depends on what is a property of the codec's kind, and this is the one place that acts on
it:

* image codecs: every (frame, tile) pair is a unit (a frame is coded on its own);
* temporal codecs: a tile's whole sequence is a unit (frame `i` is coded from frames `< i` of
  the same tile, with one state), coded from the first frame up to the last one wanted.

A unit is coded by one function whatever the kind (`terracodec.api.units`), and units run
anywhere, in any order (`terracodec.api.execute`). Encode, decode, windowed and frame-selective
decode and `decode_latents` all use this plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from terracodec.header import StreamHeader
from terracodec.parallel import float_threads_for
from terracodec.tiling import Tile, window_tiles


@dataclass(frozen=True)
class Unit:
    """One tile, and the frames coded for it, in this order, with one codec state."""

    tile: Tile
    frames: tuple[int, ...]


def plan(header: StreamHeader, frames: Sequence[int] | None = None,
         window: tuple[int, int, int, int] | None = None) -> list[Unit]:
    """The units a stream's `frames` (default: all) in a pixel `window` (col_off, row_off,
    width, height; default: all) need, in the order their records are written."""
    g = header.grid
    tiles = window_tiles(g.height, g.width, header.tile_size, header.codec.multiple, window)
    selected = list(range(header.frame_count)) if frames is None else list(frames)
    if header.codec.kind == "temporal":
        return [Unit(t, tuple(range(max(selected) + 1))) for t in tiles]
    return [Unit(t, (fi,)) for fi in selected for t in tiles]


def float_threads_of(header: StreamHeader) -> int:
    """Intra-op threads of a stream's float transforms, fixed by the units of its whole plan (so
    its pixels are the same whatever decodes which part of it: `terracodec.parallel.
    float_threads_for`)."""
    per_frame = 1 if header.codec.kind == "temporal" else header.frame_count
    return float_threads_for(header.tiles_per_frame * per_frame)


def frame_normalizers(header: StreamHeader) -> list[Any]:
    """Each frame's normalisation: the header's, means shifted by `dn_offset` and per band by
    `band_shift` (centring), for values that are DN / `dn_scale`."""
    from terracodec.normalization import Normalization

    base = Normalization.from_config(header.normalization)
    return [base.shifted(f.dn_offset).shifted_bands(f.band_shift).scaled(f.dn_scale) for f in header.frames]


__all__ = ["Unit", "float_threads_of", "frame_normalizers", "plan"]
