"""`decode_latents`: a stream's quantised latents on their georeferenced 1/16 grid, without
the synthesis transform (for models that work on the compressed representation)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from terracodec.api.args import parse_frames
from terracodec.api.execute import decode_units
from terracodec.api.plan import plan
from terracodec.api.resolve import decode_model
from terracodec.api.stream import open_stream
from terracodec.errors import InputError
from terracodec.models.codec import LATENT_STRIDE, SPACES, LatentSpec


@dataclass
class Latents:
    """Decoded latents of a stream on their georeferenced 1/16 grid (no synthesis).

    Latent pixel (r, c) covers scene pixels [16r, 16r + 16) x [16c, 16c + 16); `transform` is
    the scene's with 16x larger pixels. Latents of tiles stored exactly (all nodata) are NaN.
    `spec.space` says what `y_hat` is (docs/LATENTS.md): `coded`, the quantised latent the
    entropy model decodes (unit steps around its medians or predicted means; a variable-rate
    model's scaled by its quality's gain), or `synthesis`, what the synthesis transform decodes
    (gain removed, TEC-TT's dequantiser applied): one space at every quality.
    """

    y_hat: np.ndarray                  # [T, M, ceil(H/16), ceil(W/16)] float32
    features: np.ndarray | None        # [T, D, ...] decoder features (temporal models), else None
    crs: str | None                    # WKT
    transform: Any                     # affine.Affine of the latent grid
    frame_names: list[str]
    timestamps: list[str | None]
    spec: LatentSpec | None = None


def decode_latents(
    source: str | os.PathLike | bytes,
    *,
    frames: Sequence[int] | None = None,
    model: Any = None,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    space: str = "coded",
) -> Latents:
    """The latents (and, for temporal models, the entropy decoder's features) of the selected
    frames of a stream, tile by tile, without running the synthesis transform; `space`:
    "coded" or "synthesis" (see `Latents`)."""
    from affine import Affine

    if space not in SPACES:
        raise InputError(f"space must be one of {', '.join(SPACES)}, got {space!r}")
    reader, header = open_stream(source)
    with reader:
        selected = parse_frames(frames, header.frame_count)
        codec = decode_model(header, model, weights, device)
        g, s = header.grid, LATENT_STRIDE
        lh, lw = -(-g.height // s), -(-g.width // s)
        out: dict[str, np.ndarray] = {}

        def place(k: int, t: Any, lat: Any) -> None:
            if lat is None:  # stored exactly
                return
            if space == "synthesis":
                with torch.inference_mode():
                    lat = dict(lat, y_hat=codec.synthesis_latent(lat))
            r0, c0 = t.row_off // s, t.col_off // s
            h, w = -(-t.height // s), -(-t.width // s)
            for key in ("y_hat", "features"):
                if lat.get(key) is None:
                    continue
                value = lat[key].detach().float().cpu().numpy()
                if key not in out:
                    out[key] = np.full((len(selected), value.shape[0], lh, lw), np.nan, np.float32)
                out[key][k, :, r0 : r0 + h, c0 : c0 + w] = value[:, :h, :w]

        wanted = {fi: k for k, fi in enumerate(selected)}
        decode_units(plan(header, selected), reader, None, header, codec, wanted, "latents", place)
        if "y_hat" not in out:
            raise InputError("every selected tile is stored exactly: there are no latents")
        metas = [header.frames[i].meta for i in selected]
        spec = codec.latent_spec(space) if hasattr(codec, "latent_spec") else None
        return Latents(out["y_hat"], out.get("features"), g.crs_wkt, g.affine() * Affine.scale(s),
                       [m.name for m in metas], [m.timestamp for m in metas], spec)


__all__ = ["LATENT_STRIDE", "Latents", "decode_latents"]
