"""Hyperprior (Ballé et al., ICLR 2018): a latent codec for `y` driven by a hyper branch.

Streams per tile: the hyper stream (z) first, because the decoder needs it first, then the
streams of the `y` codec.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import Tensor

from terracodec.latent_codecs.base import LatentCodec
from terracodec.latent_codecs.hyper import HyperLatentCodec


class HyperpriorLatentCodec(LatentCodec):
    """`hyper` predicts side parameters; `y` codes the latent given them."""

    def __init__(self, y: LatentCodec, hyper: HyperLatentCodec) -> None:
        super().__init__()
        self.y = y
        self.hyper = hyper

    @property
    def num_streams(self) -> int:
        return self.hyper.num_streams + self.y.num_streams

    def forward(self, y: Tensor) -> dict[str, Any]:
        hyper_out = self.hyper(y)
        y_out = self.y(y, hyper_out["params"])
        return {
            "y_hat": y_out["y_hat"],
            "likelihoods": {"y": y_out["likelihoods"]["y"], "z": hyper_out["likelihoods"]["z"]},
        }

    def compress(self, y: Tensor, coded: Optional[Tensor] = None) -> dict[str, Any]:
        """`coded`: the cells of `y` to code (`latent_codecs.padding`); the hyperprior sees all."""
        hyper_out = self.hyper.compress(y)
        y_out = self.y.compress(y, hyper_out["params"], coded)
        return {
            "strings": hyper_out["strings"] + y_out["strings"],
            "y_hat": y_out["y_hat"],
            "z_hat": hyper_out["z_hat"],
        }

    def decompress(
        self, strings: list[list[bytes]], y_shape: Sequence[int], z_shape: Sequence[int],
        coded: Optional[Tensor] = None,
    ) -> dict[str, Any]:
        n = self.hyper.num_streams
        hyper_out = self.hyper.decompress(strings[:n], z_shape)
        y_out = self.y.decompress(strings[n:], y_shape, hyper_out["params"], coded)
        return {"y_hat": y_out["y_hat"], "z_hat": hyper_out["z_hat"]}
