"""Gaussian conditional latent codec: code `y` given predicted (means, scales).

The parameters arrive already computed (by the checkerboard codec's aggregation network);
this codec only splits them, maps scales to table rows and codes one stream per batch item.
Split order is configurable because CompressAI's ELIC stores `(means, scales)` while its
hyperprior models store `(scales, means)`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from terracodec.entropy.gaussian import GaussianConditional
from terracodec.latent_codecs.base import LatentCodec, quantize_ste


class GaussianConditionalLatentCodec(LatentCodec):
    """`y ~ N(means, scales)` per element, coded with the tables of `gaussian_conditional`."""

    def __init__(
        self,
        gaussian_conditional: GaussianConditional | None = None,
        *,
        chunks: tuple[str, str] = ("means", "scales"),
        quantizer: str = "ste",
    ) -> None:
        super().__init__()
        if sorted(chunks) != ["means", "scales"] or quantizer not in ("ste", "noise"):
            raise ValueError(f"invalid chunks {chunks} or quantizer {quantizer!r}")
        self.gaussian_conditional = gaussian_conditional or GaussianConditional(None)
        self.chunks = tuple(chunks)
        self.quantizer = quantizer

    @property
    def num_streams(self) -> int:
        return 1

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        """(scales, means) from the `[B, 2C, h, w]` parameter tensor."""
        first, second = params.chunk(2, dim=1)
        return (second, first) if self.chunks[0] == "means" else (first, second)

    def forward(self, y: Tensor, params: Tensor) -> dict[str, Any]:
        scales, means = self.split(params)
        y_hat, likelihoods = self.gaussian_conditional(y, scales, means)
        if self.quantizer == "ste":
            y_hat = quantize_ste(y - means) + means
        return {"y_hat": y_hat, "likelihoods": {"y": likelihoods}}

    def compress(self, y: Tensor, params: Tensor, coded: Optional[Tensor] = None) -> dict[str, Any]:
        """One stream per batch item; `y_hat = round(y - means) + means` in float64. `coded`
        (`[h, w]` bool): only those cells are coded; the others (padding, cells filled under a
        cloud) cost nothing and decode to their predicted mean, as a symbol of 0 would."""
        scales, means = self.split(params)
        indexes = self.gaussian_conditional.build_indexes(scales)
        y64 = y.to(torch.float64)
        y_hat = torch.round(y64 - means) + means
        if coded is None:
            strings = [
                self.gaussian_conditional.compress(y64[b : b + 1], indexes[b : b + 1], means[b : b + 1])
                for b in range(y.shape[0])
            ]
            return {"strings": [strings], "y_hat": y_hat}
        strings = [
            self.gaussian_conditional.compress(y64[b][:, coded], indexes[b][:, coded], means[b][:, coded])
            for b in range(y.shape[0])
        ]
        return {"strings": [strings], "y_hat": torch.where(coded, y_hat, means)}

    def decompress(self, strings: list[list[bytes]], shape: Sequence[int], params: Tensor,
                   coded: Optional[Tensor] = None) -> dict[str, Any]:
        (stream,) = strings
        scales, means = self.split(params)
        if tuple(scales.shape[2:]) != tuple(shape):
            raise ValueError(f"parameters {tuple(scales.shape)} do not match latent size {tuple(shape)}")
        indexes = self.gaussian_conditional.build_indexes(scales)
        if coded is None:
            y_hat = torch.cat(
                [
                    self.gaussian_conditional.decompress(s, indexes[b : b + 1], means[b : b + 1])
                    for b, s in enumerate(stream)
                ],
                dim=0,
            )
            return {"y_hat": y_hat}
        y_hat = means.clone()  # uncoded cells: their mean (`compress`)
        for b, s in enumerate(stream):
            y_hat[b][:, coded] = self.gaussian_conditional.decompress(
                s, indexes[b][:, coded], means[b][:, coded]).to(y_hat.dtype)
        return {"y_hat": y_hat}
