"""Latent grids <-> windows of tokens, as TEC-TT's entropy model sees them: the tokenizer.

`WindowTokenizer` is the one place where a frame's windows are formed and merged back: the
entropy model owns one (`TemporalEntropyModel.tokenizer`), and the model and the coder use it.
A different token layout (FlexTEC's latent repacking: token j carries channel slice j of all
16 positions) is another tokenizer with the same three methods.

The current frame's latent `[B, C, H, W]` is cut into non-overlapping `w x w` windows (w = 4:
16 tokens of C channels each, raster order inside a window). Each window is predicted from the
previous frames' latents seen through a larger `p x p` window (p = 8) centred on it: the context
grid is reflect-padded by `(p - w) / 2` on every side (plus up to the next multiple of `w` at the
bottom/right) and cut into `p x p` windows with stride `w`, so that context window `k` surrounds
current window `k`. Windows are ordered `(batch, row, column)`, so tile `b`'s windows are the
rows `b * n .. (b + 1) * n - 1` of every windowed tensor (n windows per tile). Layouts equal
TerraCodec v1's `Patcher` (reflect padding, same token order).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def grid_windows(height: int, width: int, stride: int) -> tuple[int, int]:
    """Windows per column and per row of a `height x width` latent grid."""
    return -(-height // stride), -(-width // stride)


def _reflect(x: Tensor, left: int, right: int, top: int, bottom: int) -> Tensor:
    if left == right == top == bottom == 0:
        return x
    return F.pad(x, (left, right, top, bottom), mode="reflect")


def current_windows(y: Tensor, size: int) -> Tensor:
    """`[B, C, H, W] -> [B * nH * nW, size * size, C]`, non-overlapping windows."""
    b, c, h, w = y.shape
    nh, nw = grid_windows(h, w, size)
    y = _reflect(y, 0, nw * size - w, 0, nh * size - h)
    t = y.reshape(b, c, nh, size, nw, size).permute(0, 2, 4, 3, 5, 1)
    return t.reshape(b * nh * nw, size * size, c)


def context_windows(y: Tensor, size: int, stride: int) -> Tensor:
    """`[B, C, H, W] -> [B * nH * nW, size * size, C]`: `size x size` windows, stride `stride`,
    window `k` centred on current window `k` (reflect padding)."""
    if size < stride or (size - stride) % 2:
        raise ValueError(f"context window {size} must exceed stride {stride} by an even amount")
    b, c, h, w = y.shape
    nh, nw = grid_windows(h, w, stride)
    margin = (size - stride) // 2
    y = _reflect(y, margin, nw * stride - w + margin, margin, nh * stride - h + margin)
    t = y.unfold(2, size, stride).unfold(3, size, stride)  # [B, C, nH, nW, size, size]
    return t.reshape(b, c, nh, nw, size * size).permute(0, 2, 3, 4, 1).reshape(b * nh * nw, size * size, c)


def merge_windows(t: Tensor, height: int, width: int, size: int) -> Tensor:
    """Inverse of `current_windows`: `[B * nH * nW, size * size, D] -> [B, D, height, width]`."""
    nh, nw = grid_windows(height, width, size)
    n, _, d = t.shape
    b = n // (nh * nw)
    t = t.reshape(b, nh, nw, size, size, d).permute(0, 5, 1, 3, 2, 4)
    return t.reshape(b, d, nh * size, nw * size)[..., :height, :width]


class WindowTokenizer:
    """TEC-TT's windows: current `current x current` windows of a latent, the `context x context`
    windows around them in the previous frames' latents, and the way back (see the module
    docstring for the layouts)."""

    def __init__(self, context: int, current: int) -> None:
        if context < current or (context - current) % 2:
            raise ValueError("the context window must exceed the current one by an even amount")
        self.context_size, self.current_size = context, current

    def current(self, y: Tensor) -> Tensor:
        """`[B, C, H, W] -> [windows, tokens, C]`."""
        return current_windows(y, self.current_size)

    def context(self, y: Tensor) -> Tensor:
        """`[B, C, H, W] -> [windows, context_size**2, C]`, window `k` around current window `k`."""
        return context_windows(y, self.context_size, self.current_size)

    def merge(self, t: Tensor, height: int, width: int) -> Tensor:
        """Inverse of `current`: `[windows, tokens, D] -> [B, D, height, width]`."""
        return merge_windows(t, height, width, self.current_size)

    def windows(self, height: int, width: int) -> int:
        """Current windows of one `height x width` latent."""
        nh, nw = grid_windows(height, width, self.current_size)
        return nh * nw


__all__ = ["WindowTokenizer", "context_windows", "current_windows", "grid_windows", "merge_windows"]

