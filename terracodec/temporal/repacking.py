"""FlexTEC's latent repacking (TerraCodec v1): a tokenizer whose token j carries channel slice j
of every position of a window, so that the first k tokens are a coarse-to-fine subset of the
channels and a stream can stop after any k of the 16 steps (`coding`, quality k).

Inside each window the `tokens x features` block is transposed in blocks of q = D / T features:

    repack(x)[n, j, t*q + r] = x[n, t, j*q + r]        j, t < T,  r < q

           positions t ->                      slices j ->
    tok 0 [ c0..c11 | c12..c23 | ...]       tok 0 [ c0..c11 of p0 | c0..c11 of p1 | ... ]
    tok 1 [ c0..c11 | c12..c23 | ...]  -->  tok 1 [ c12..c23 of p0 | c12..c23 of p1 | ... ]
    ...                                     ...

a transpose, so it is its own inverse. Current 4x4 windows: T = 16 (192 channels: 12 per
token); the 8x8 context windows: T = 64 (3 channels per token); merging applies the current
windows' repacking to whatever width comes back (the decoder features too: the published
dequantiser was trained on that layout).
"""

from __future__ import annotations

from torch import Tensor

from terracodec.temporal.windows import WindowTokenizer, context_windows, current_windows, merge_windows


def repack(x: Tensor) -> Tensor:
    """`[N, T, D] -> [N, T, D]`, the block transpose above (self-inverse); D % T == 0."""
    n, t, d = x.shape
    if d % t:
        raise ValueError(f"latent repacking needs a width divisible by {t} tokens, got {d}")
    return x.reshape(n, t, t, d // t).transpose(1, 2).reshape(n, t, d)


class RepackingTokenizer(WindowTokenizer):
    """`WindowTokenizer` with FlexTEC's repacked token layout (see the module docstring)."""

    def current(self, y: Tensor) -> Tensor:
        return repack(current_windows(y, self.current_size))

    def context(self, y: Tensor) -> Tensor:
        return repack(context_windows(y, self.context_size, self.current_size))

    def merge(self, t: Tensor, height: int, width: int) -> Tensor:
        return merge_windows(repack(t), height, width, self.current_size)


__all__ = ["RepackingTokenizer", "repack"]
