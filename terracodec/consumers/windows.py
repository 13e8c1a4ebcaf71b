"""Running a patch-token model over a scene of any size on the 16-px grid.

A ViT's tokens see the whole input, so a token near a window's edge differs from the same token
seen in a bigger window. Scenes up to `window` px run in one pass. Larger ones run in windows of
`window` px placed every `window - 2 * margin` px; each token is taken from the window whose
core (the window less `margin` px on each inner side) holds it, so every kept token has at
least `margin` px of context on every side that the scene has:

    scene  |<------------- W ------------->|
    win 0  |[ core 0      ]mm|
    win 1          |mm[ core 1      ]mm|
    win 2                    |mm[ core 2   ]|

Scenes whose sides are not multiples of 16 are padded by repeating the last row / column; the
tokens of the padding are cut off (a partial last cell is kept, as the latent grid keeps it).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

PATCH = 16


def _starts(size: int, window: int, margin: int) -> list[int]:
    """Window origins (px, multiples of 16) along one axis of `size` px (a multiple of 16)."""
    if size <= window:
        return [0]
    step = window - 2 * margin
    starts = list(range(0, size - window, step)) + [size - window]
    return sorted(set(starts))


def _core(start: int, size: int, window: int, margin: int, first: bool, last: bool) -> tuple[int, int]:
    lo = start if first else start + margin
    hi = start + window if last else start + window - margin
    return lo, min(hi, size)


def run_windows(
    fn: Callable[[Tensor], Tensor], x: Tensor, *, window: int = 512, margin: int = 64,
) -> Tensor:
    """`fn` ([1, C, h, w] -> [1, D, h/16, w/16]) over `x` [1, C, H, W]: [1, D, ceil(H/16), ceil(W/16)]."""
    if window % PATCH or margin % PATCH or window <= 2 * margin:
        raise ValueError("window and margin must be multiples of 16 with window > 2 * margin")
    _, _, h, w = x.shape
    hp, wp = PATCH * math.ceil(h / PATCH), PATCH * math.ceil(w / PATCH)
    if (hp, wp) != (h, w):
        x = torch.nn.functional.pad(x, (0, wp - w, 0, hp - h), mode="replicate")
    rows, cols = _starts(hp, window, margin), _starts(wp, window, margin)
    out: Tensor | None = None
    for i, r in enumerate(rows):
        r_lo, r_hi = _core(r, hp, window, margin, i == 0, i == len(rows) - 1)
        for j, c in enumerate(cols):
            c_lo, c_hi = _core(c, wp, window, margin, j == 0, j == len(cols) - 1)
            tokens = fn(x[:, :, r : r + min(window, hp), c : c + min(window, wp)])
            if out is None:
                out = tokens.new_empty(1, tokens.shape[1], hp // PATCH, wp // PATCH)
            out[:, :, r_lo // PATCH : r_hi // PATCH, c_lo // PATCH : c_hi // PATCH] = tokens[
                :, :, (r_lo - r) // PATCH : (r_hi - r) // PATCH, (c_lo - c) // PATCH : (c_hi - c) // PATCH]
    assert out is not None
    return out


__all__ = ["run_windows"]
