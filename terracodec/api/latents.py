"""`decode_latents`: a stream's quantised latents on their georeferenced 1/16 grid, without
the synthesis transform (for models that work on the compressed representation)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from terracodec.api.args import parse_frames
from terracodec.api.resolve import decode_model
from terracodec.api.stream import open_stream
from terracodec.api.tiles import walk
from terracodec.errors import InputError
from terracodec.tiling import tile_grid

LATENT_STRIDE = 16  # every terracodec model's latents lie on a 1/16 grid


@dataclass
class Latents:
    """Decoded latents of a stream on their georeferenced 1/16 grid (no synthesis).

    Latent pixel (r, c) covers scene pixels [16r, 16r + 16) x [16c, 16c + 16); `transform` is
    the scene's with 16x larger pixels. Latents of tiles stored exactly (all nodata) are NaN.
    """

    y_hat: np.ndarray                  # [T, M, ceil(H/16), ceil(W/16)] float32, quantised latents
    features: np.ndarray | None        # [T, D, ...] decoder features (temporal models), else None
    crs: str | None                    # WKT
    transform: Any                     # affine.Affine of the latent grid
    frame_names: list[str]
    timestamps: list[str | None]


def decode_latents(
    source: str | os.PathLike | bytes,
    *,
    frames: Sequence[int] | None = None,
    model: Any = None,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
) -> Latents:
    """The quantised latents (and, for temporal models, the entropy decoder's features) of the
    selected frames of a stream, tile by tile, without running the synthesis transform."""
    from affine import Affine

    reader, header = open_stream(source)
    with reader:
        selected = parse_frames(frames, header.frame_count)
        codec = decode_model(header, model, weights, device)
        g, s = header.grid, LATENT_STRIDE
        tiles = tile_grid(g.height, g.width, header.tile_size, header.codec.multiple)
        lh, lw = -(-g.height // s), -(-g.width // s)
        out: dict[str, np.ndarray] = {}
        for k, t, lat in walk(reader, header, codec, selected, tiles, "latents"):
            if lat is None:  # stored exactly
                continue
            r0, c0 = t.row_off // s, t.col_off // s
            h, w = -(-t.height // s), -(-t.width // s)
            for key in ("y_hat", "features"):
                if lat.get(key) is None:
                    continue
                value = lat[key].detach().float().cpu().numpy()
                if key not in out:
                    out[key] = np.full((len(selected), value.shape[0], lh, lw), np.nan, np.float32)
                out[key][k, :, r0 : r0 + h, c0 : c0 + w] = value[:, :h, :w]
        if "y_hat" not in out:
            raise InputError("every selected tile is stored exactly: there are no latents")
        metas = [header.frames[i].meta for i in selected]
        return Latents(out["y_hat"], out.get("features"), g.crs_wkt, g.affine() * Affine.scale(s),
                       [m.name for m in metas], [m.timestamp for m in metas])


__all__ = ["LATENT_STRIDE", "Latents", "decode_latents"]
