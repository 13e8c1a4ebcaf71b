"""Hyper latent codec: side information `z = h_a(y)` and the parameters `h_s(z_hat)`.

`z` is coded with a factorized entropy bottleneck (fixed per-channel tables), so `z_hat` is
exact at the decoder; `h_s` then runs with `exact_forward` during coding so that the
parameters it predicts are bit-identical at both ends (see `terracodec.layers.fixedpoint`).
"""

from __future__ import annotations

from typing import Any, Sequence

from torch import Tensor, nn

from terracodec.entropy.bottleneck import EntropyBottleneck
from terracodec.latent_codecs.base import LatentCodec, eb_compress, eb_decompress, quantize_ste
from terracodec.layers.fixedpoint import exact_forward


class HyperLatentCodec(LatentCodec):
    """`y -> h_a -> z -> EB -> z_hat -> h_s -> params`."""

    def __init__(self, entropy_bottleneck: EntropyBottleneck, h_a: nn.Module, h_s: nn.Module) -> None:
        super().__init__()
        self.entropy_bottleneck = entropy_bottleneck
        self.h_a = h_a
        self.h_s = h_s

    @property
    def num_streams(self) -> int:
        return 1

    def forward(self, y: Tensor) -> dict[str, Any]:
        """Likelihoods from the bottleneck; `z_hat` by straight-through rounding around medians."""
        z = self.h_a(y)
        _, likelihoods = self.entropy_bottleneck(z)
        medians = self.entropy_bottleneck._get_medians().reshape(1, -1, 1, 1)
        z_hat = quantize_ste(z - medians) + medians
        return {"params": self.h_s(z_hat), "likelihoods": {"z": likelihoods}}

    def compress(self, y: Tensor) -> dict[str, Any]:
        z = self.h_a(y)
        strings, z_hat = eb_compress(self.entropy_bottleneck, z)
        return {"strings": [strings], "z_hat": z_hat, "params": exact_forward(self.h_s, z_hat)}

    def decompress(self, strings: list[list[bytes]], shape: Sequence[int]) -> dict[str, Any]:
        (stream,) = strings
        z_hat = eb_decompress(self.entropy_bottleneck, stream, shape)
        return {"z_hat": z_hat, "params": exact_forward(self.h_s, z_hat)}
