"""TEC-FP: the factorized-prior codec of Ballé et al. (ICLR 2018) for multispectral tiles.

Four stride-2 convolutions with GDN map `[C, H, W]` to `M` latent channels at 1/16 resolution;
each latent channel is coded with its own learned, input-independent density (an entropy
bottleneck). TerraCodec v1's TEC-FP is CompressAI's `FactorizedPrior` with `C` input/output
bands and no [0, 1] clamping (inputs are standardised); module names here match its state-dict
keys (`g_a.0.weight`, `g_s.1.beta`, `entropy_bottleneck.quantiles`, ...).

With a factorized prior the decoder needs no predicted parameters: symbols are coded with fixed
per-channel tables around the channel medians, so decoding is exact by construction.

Variable rate: with `lambdas` in the config the model has per-quality gain vectors
(`terracodec.models.variable_rate`); `config["quality"]` (1-based) picks the level used to code.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from terracodec.entropy.bottleneck import EntropyBottleneck
from terracodec.latent_codecs.base import eb_compress, eb_decompress
from terracodec.layers.conv import conv, deconv
from terracodec.layers.gdn import GDN
from terracodec.models.base import ImageCodec
from terracodec.registry import register_architecture
from terracodec.models.variable_rate import VariableRateMixin


@register_architecture("tec-fp")
class FactorizedPriorCodec(VariableRateMixin, ImageCodec):
    """TEC-FP. Config: `bands`, `N` (transform width), `M` (latent channels), optional
    `lambdas` (variable rate, see the module docstring) and `quality` (1-based level)."""

    multiple = 16
    num_streams = 1

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        c, n, m = self.bands, int(config["N"]), int(config["M"])
        self.N, self.M = n, m
        self.entropy_bottleneck = EntropyBottleneck(m)
        self.g_a = nn.Sequential(
            conv(c, n), GDN(n),
            conv(n, n), GDN(n),
            conv(n, n), GDN(n),
            conv(n, m),
        )
        self.g_s = nn.Sequential(
            deconv(m, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, n), GDN(n, inverse=True),
            deconv(n, c),
        )
        self.init_gains(config, m)

    def forward(self, x: Tensor, quality_index: int | None = None) -> dict[str, Any]:
        """Training pass: noisy latents in train mode, rounded (around medians) in eval mode.
        `quality_index` (0-based) picks the gain pair of a variable-rate model."""
        y_hat, likelihoods = self.entropy_bottleneck(self.gain_latent(self.g_a(x), quality_index))
        return {"x_hat": self.g_s(self.ungain_latent(y_hat, quality_index)), "likelihoods": {"y": likelihoods}}

    def analysis(self, x: Tensor) -> Tensor:
        return self.gain_latent(self.g_a(x))

    def synthesis(self, y_hat: Tensor) -> Tensor:
        return self.g_s(self.ungain_latent(y_hat))

    def compress_latents(self, y: Tensor) -> tuple[list[list[bytes]], dict[str, Tensor]]:
        strings, y_hat = eb_compress(self.entropy_bottleneck, y)
        return [strings], {"y_hat": y_hat}

    def decompress_latents(
        self, strings: list[list[bytes]], height: int, width: int
    ) -> dict[str, Tensor]:
        hw = (height // 16, width // 16)
        return {"y_hat": eb_decompress(self.entropy_bottleneck, strings[0], hw)}
