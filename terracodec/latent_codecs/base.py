"""What latent codecs share: the interface, straight-through rounding and per-tile coding.

A latent codec turns a latent tensor `y` [B, C, h, w] into entropy-coded streams and back
(CompressAI's split: models own transforms, latent codecs own the probability model around a
latent). `compress` returns `{"strings": [stream][batch item] -> bytes, "y_hat": ...}`: every
batch item (tile) gets its own bytes, so tiles stay independent of how they were batched.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from terracodec.entropy.bottleneck import EntropyBottleneck

Strings = list[list[bytes]]  # [stream][batch item]


class LatentCodec(nn.Module):
    """Interface: `forward` (training), `compress` and `decompress` (coding)."""

    def forward(self, y: Tensor, *args: Any) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def compress(self, y: Tensor, *args: Any) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def decompress(self, strings: Strings, shape: Sequence[int], *args: Any) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    @property
    def num_streams(self) -> int:  # pragma: no cover - interface
        """How many streams `compress` produces per batch item."""
        raise NotImplementedError


def quantize_ste(x: Tensor) -> Tensor:
    """`round(x)` forward, identity gradient backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def batch_size_of(strings: Strings) -> int:
    """Number of batch items in a `[stream][item]` list (all streams must agree)."""
    sizes = {len(s) for s in strings}
    if len(sizes) != 1:
        raise ValueError("every stream must hold one string per batch item")
    return sizes.pop()


def eb_compress(eb: EntropyBottleneck, z: Tensor) -> tuple[list[bytes], Tensor]:
    """One stream per batch item of `z`, and the dequantised `z_hat` the decoder will see."""
    strings = [eb.compress(z[b : b + 1]) for b in range(z.shape[0])]
    medians = eb._get_medians().detach().reshape(1, -1, 1, 1).to(z.dtype)
    z_hat = torch.round(z - medians) + medians
    return strings, z_hat


def eb_decompress(eb: EntropyBottleneck, strings: list[bytes], hw: Sequence[int]) -> Tensor:
    """Inverse of `eb_compress` for latents of spatial size `hw`."""
    shape = (1, eb.channels, int(hw[0]), int(hw[1]))
    return torch.cat([eb.decompress(s, shape) for s in strings], dim=0)
