"""Mixing the image codec's Gaussian with the previous frame's latent, per element.

A checkerboard codec's parameter network (ELIC's "parameter aggregation") predicts `(means,
scales)` of a channel group from spatial, channel and side context. When the side parameters
also carry the previous frame's decoded latent (`temporal_prior`: `[params, y_hat[t-1]]`), this
wrapper moves each mean towards the previous value and rescales each scale, by how much a small
pointwise network trusts the past given the intra prediction:

    [ctx, params] --aggregation--> means, scales --+
    y_hat[t-1][group] ------------------------------+--[mix]--> a, b
    means' = means + sigmoid(a) * (y_hat[t-1] - means)     scales' = scales * exp(b)

Its inputs are relative to the intra prediction (the gap to it, the predicted scale), which is
what lets one trained mixer serve places and seasons it never saw. Without a previous frame the
wrapper is the aggregation network itself. While coding (`exact_forward`) every step is exact
fixed point or a single IEEE operation on float64 (`det_exp`, a frexp-based log feature), so
both ends compute the same bits on any machine.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from terracodec.layers.conv import conv1x1
from terracodec.layers.fixedpoint import exact_forward
from terracodec.temporal.exact_math import det_exp

#: Bounds of the log scale factor (`b`): the past may sharpen a scale 20x, never blur it > 2.7x.
LOG_SCALE_RANGE = (-3.0, 1.0)


def _log2ish(scales: Tensor) -> Tensor:
    """A piecewise-linear log2 (exact: frexp and exact arithmetic): a feature, not a measurement."""
    mantissa, exponent = torch.frexp(scales.clamp_min(2.0**-20))
    return exponent.to(scales.dtype) - 2.0 + 2.0 * mantissa


class TemporalMixing(nn.Module):
    """`aggregation` (the image codec's parameter network, means first) plus `mix` for the
    group's channels `lo:hi` of an `M`-channel latent (module docstring)."""

    def __init__(self, aggregation: nn.Sequential, lo: int, hi: int, latent_channels: int, width: int) -> None:
        super().__init__()
        self.aggregation = aggregation
        self.lo, self.hi, self.latent_channels = int(lo), int(hi), int(latent_channels)
        g = self.hi - self.lo
        self.mix = nn.Sequential(conv1x1(4 * g, width), nn.ReLU(inplace=True),
                                 conv1x1(width, width), nn.ReLU(inplace=True), conv1x1(width, 2 * g))
        nn.init.zeros_(self.mix[-1].weight)
        with torch.no_grad():  # start as the image codec: no pull to the past, scales unchanged
            self.mix[-1].bias.copy_(torch.cat([torch.full((g,), -8.0), torch.zeros(g)]))

    @property
    def base_channels(self) -> int:
        return int(self.aggregation[0].in_channels)

    def _split(self, inp: Tensor) -> tuple[Tensor, Tensor | None]:
        n = self.base_channels
        if inp.shape[1] == n:
            return inp, None
        if inp.shape[1] != n + self.latent_channels:
            raise ValueError(f"parameter input has {inp.shape[1]} channels, expected {n} or {n + self.latent_channels}")
        return inp[:, :n], inp[:, n + self.lo : n + self.hi]

    @staticmethod
    def _features(means: Tensor, scales: Tensor, prev: Tensor) -> Tensor:
        gap = prev - means
        return torch.cat([gap, gap.abs() / scales.clamp_min(0.11), _log2ish(scales), means], dim=1)

    def forward(self, inp: Tensor) -> Tensor:
        base, prev = self._split(inp)
        params = self.aggregation(base)
        if prev is None:
            return params
        means, scales = params.chunk(2, dim=1)
        a, b = self.mix(self._features(means, scales, prev.to(means.dtype))).chunk(2, dim=1)
        b = b.clamp(*LOG_SCALE_RANGE)
        return torch.cat([means + torch.sigmoid(a) * (prev - means), scales * torch.exp(b)], dim=1)

    def exact_forward(self, inp: Tensor) -> Tensor:
        """The same in exact arithmetic (see the module docstring), float64."""
        base, prev = self._split(inp)
        params = exact_forward(self.aggregation, base)
        if prev is None:
            return params
        means, scales = params.chunk(2, dim=1)
        prev = prev.to(torch.float64)
        a, b = exact_forward(self.mix, self._features(means, scales, prev)).chunk(2, dim=1)
        trust = 1.0 / (1.0 + det_exp(-a))
        b = b.clamp(*LOG_SCALE_RANGE)
        return torch.cat([means + trust * (prev - means), scales * det_exp(b)], dim=1)
