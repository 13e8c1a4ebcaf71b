"""TEC-FP: the factorized-prior codec of Ballé et al. (ICLR 2018) for multispectral tiles.

Four stride-2 convolutions with GDN map `[C, H, W]` to `M` latent channels at 1/16 resolution;
each latent channel is coded with its own learned, input-independent density (an entropy
bottleneck). TerraCodec v1's TEC-FP is CompressAI's `FactorizedPrior` with `C` input/output
bands and no [0, 1] clamping (inputs are standardised); module names here match its state-dict
keys (`g_a.0.weight`, `g_s.1.beta`, `entropy_bottleneck.quantiles`, ...).

With a factorized prior the decoder needs no predicted parameters: symbols are coded with fixed
per-channel tables around the channel medians, so decoding is exact by construction.

Variable rate: with `lambdas` in the config (one per quality, lowest rate first) the model
learns a per-quality *gain* and *inverse gain* vector over the latent channels (Cui et al.,
"Asymmetric Gained Deep Image Compression", CVPR 2021): `y * gain[q]` is quantised and
`y_hat * inverse_gain[q]` is synthesised, so one set of transforms and entropy tables serves
every quality. `config["quality"]` (1-based, as in the registry) picks the level used to code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from terracodec.entropy.bottleneck import EntropyBottleneck
from terracodec.latent_codecs.base import eb_compress, eb_decompress
from terracodec.layers.conv import conv, deconv
from terracodec.layers.gdn import GDN
from terracodec.models.base import ImageCodec, register_architecture


@register_architecture("tec-fp")
class FactorizedPriorCodec(ImageCodec):
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
        lambdas = [float(v) for v in config.get("lambdas") or []]
        self.num_qualities = len(lambdas)
        self.quality_index = 0
        if lambdas:
            if sorted(lambdas) != lambdas or lambdas[0] <= 0:
                raise ValueError("lambdas must be positive and increasing (lowest rate first)")
            # Start from gains that an MSE-optimal uniform quantiser would pick around the middle
            # lambda (step size ~ 1/sqrt(lambda)); training refines them.
            ref = lambdas[len(lambdas) // 2]
            g = torch.tensor([(v / ref) ** 0.5 for v in lambdas])[:, None].expand(-1, m)
            self.gain = nn.Parameter(g.clone())
            self.inverse_gain = nn.Parameter(1.0 / g)
            quality = config.get("quality")
            self.set_quality(int(quality) if quality is not None else len(lambdas) // 2 + 1)

    def set_quality(self, quality: int) -> None:
        """Code at quality level `quality` (1-based) of a variable-rate model."""
        if not 1 <= quality <= max(1, self.num_qualities):
            raise ValueError(f"quality {quality} outside 1..{self.num_qualities}")
        self.quality_index = quality - 1

    def _gains(self, index: int | None) -> tuple[Tensor, Tensor] | None:
        if not self.num_qualities:
            return None
        q = self.quality_index if index is None else index
        return self.gain[q][None, :, None, None], self.inverse_gain[q][None, :, None, None]

    def forward(self, x: Tensor, quality_index: int | None = None) -> dict[str, Any]:
        """Training pass: noisy latents in train mode, rounded (around medians) in eval mode.
        `quality_index` (0-based) picks the gain pair of a variable-rate model."""
        gains = self._gains(quality_index)
        y = self.g_a(x)
        y_hat, likelihoods = self.entropy_bottleneck(y * gains[0] if gains else y)
        return {"x_hat": self.g_s(y_hat * gains[1] if gains else y_hat), "likelihoods": {"y": likelihoods}}

    def analysis(self, x: Tensor) -> Tensor:
        gains = self._gains(None)
        y = self.g_a(x)
        return y * gains[0] if gains else y

    def synthesis(self, y_hat: Tensor) -> Tensor:
        gains = self._gains(None)
        return self.g_s(y_hat * gains[1] if gains else y_hat)

    def compress_latents(self, y: Tensor) -> tuple[list[list[bytes]], dict[str, Tensor]]:
        strings, y_hat = eb_compress(self.entropy_bottleneck, y)
        return [strings], {"y_hat": y_hat}

    def decompress_latents(
        self, strings: list[list[bytes]], height: int, width: int
    ) -> dict[str, Tensor]:
        hw = (height // 16, width // 16)
        return {"y_hat": eb_decompress(self.entropy_bottleneck, strings[0], hw)}
