"""Latent padding: a latent rounded up to the hyperprior's grid, the added cells never coded.

ELIC's hyperprior halves the latent twice, so `y` must cover a multiple of 4 cells (64 px).
Padding the *pixels* to 64 px made a small frame pay for its padding: an 80 x 80 px frame was
coded as 128 x 128 (2.56x the cells, issue 17's fordead miss). Instead the pixels are padded to
the transforms' own 16 px, and the latent is padded with cells that both ends know:

    pixels (16 px multiple) --g_a--> y [h, w] --zero pad--> [ceil4(h), ceil4(w)] --h_a--> z
                                                valid cells: coded as before
                                                padding cells: no symbol, no bit; they
                                                decode to their predicted mean

The hyperprior analyses zeros there, which is what its convolutions see beyond a latent's edge
in training. Uncoded cells decoding to their mean is the rule of every masked latent codec
(`GaussianConditionalLatentCodec.compress`): cells filled under clouds follow it too. A latent
already on the grid has no padding: its streams are byte for byte those of pixel-padded tiles.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

#: Latent cells per hyperprior cell (two stride-2 stages).
HYPER_CELLS = 4


def padded_size(h: int, w: int, cells: int = HYPER_CELLS) -> tuple[int, int]:
    """The latent size rounded up to the hyperprior's grid."""
    return -(-h // cells) * cells, -(-w // cells) * cells


def valid_cells(h: int, w: int, cells: int = HYPER_CELLS) -> Optional[Tensor]:
    """`[H, W]` bool over the padded latent, True on the `h x w` coded cells; None without padding."""
    ph, pw = padded_size(h, w, cells)
    if (ph, pw) == (h, w):
        return None
    valid = torch.zeros((ph, pw), dtype=torch.bool)
    valid[:h, :w] = True
    return valid


def pad_latent(y: Tensor, cells: int = HYPER_CELLS) -> tuple[Tensor, Optional[Tensor]]:
    """`y` `[B, M, h, w]` zero-padded to the hyperprior's grid, and its `valid_cells` mask."""
    h, w = y.shape[-2:]
    valid = valid_cells(h, w, cells)
    if valid is None:
        return y, None
    ph, pw = valid.shape
    return F.pad(y, (0, pw - w, 0, ph - h)), valid.to(y.device)


def crop_latent(y: Tensor, h: int, w: int) -> Tensor:
    """The coded `h x w` cells of a padded latent."""
    return y[..., :h, :w]


__all__ = ["HYPER_CELLS", "crop_latent", "pad_latent", "padded_size", "valid_cells"]
