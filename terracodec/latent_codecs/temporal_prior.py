"""A hyperprior whose side parameters also see the previous frame's quantised latent.

Conditional coding (the video codecs' "conditional, not residual" lesson): frame `t`'s latent is
coded with the image codec's own context model (hyperprior, channel groups, checkerboard), whose
side parameters are corrected by a small network that reads them next to the previous frame's
decoded latent `y_hat[t-1]`:

    y[t] --h_a--> z --EB--> z_hat --h_s--> params ----------------+--(+)--> [params', y_hat[t-1]] --> y codec
                                                |                  |                      (TemporalMixing
    y_hat[t-1] (decoded, same quality) ---------+--[temporal]------+                       per group)

The previous latent travels on with the parameters, so that each channel group's parameter
network (`temporal_mixing.TemporalMixing`) can pull its means towards it. `temporal` ends in a
zero-initialised convolution, so before training the codec is exactly the image codec it wraps; without a previous frame (a sequence's first frame) it *is* that codec,
byte for byte. `temporal` runs with `exact_forward` while coding: its output is exact fixed
point, so both ends build the same parameters on any machine (`terracodec.layers.fixedpoint`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from terracodec.latent_codecs.hyperprior import HyperpriorLatentCodec
from terracodec.layers.conv import conv1x1
from terracodec.layers.fixedpoint import exact_forward


def temporal_prior_net(latent_channels: int, side_channels: int, width: int) -> nn.Sequential:
    """`[side params, previous y_hat] -> correction of the side params`, pointwise: each latent
    cell reads its own past only (Sentinel-2 dates are co-registered to a small fraction of a
    latent cell), so the network sees no tile border and nothing spatial to overfit."""
    net = nn.Sequential(
        conv1x1(side_channels + latent_channels, width), nn.ReLU(inplace=True),
        conv1x1(width, width), nn.ReLU(inplace=True),
        conv1x1(width, side_channels),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class TemporalPriorLatentCodec(HyperpriorLatentCodec):
    """`HyperpriorLatentCodec` plus `temporal` (see the module docstring); `y_prev=None` codes
    a first frame, exactly as the wrapped hyperprior does."""

    def __init__(self, y: Any, hyper: Any, temporal: nn.Module) -> None:
        super().__init__(y, hyper)
        self.temporal = temporal

    def conditioned(self, params: Tensor, y_prev: Optional[Tensor], exact: bool) -> Tensor:
        """The side parameters corrected by the previous frame's latent, with that latent appended
        (for the groups' `TemporalMixing`); unchanged without one."""
        if y_prev is None:
            return params
        if exact:
            params, y_prev = params.to(torch.float64), y_prev.to(torch.float64)
            corrected = params + exact_forward(self.temporal, torch.cat([params, y_prev], dim=1))
        else:
            y_prev = y_prev.to(params.dtype)
            corrected = params + self.temporal(torch.cat([params, y_prev], dim=1))
        return torch.cat([corrected, y_prev], dim=1)

    def forward(self, y: Tensor, y_prev: Optional[Tensor] = None) -> dict[str, Any]:
        hyper_out = self.hyper(y)
        y_out = self.y(y, self.conditioned(hyper_out["params"], y_prev, exact=False))
        return {
            "y_hat": y_out["y_hat"],
            "likelihoods": {"y": y_out["likelihoods"]["y"], "z": hyper_out["likelihoods"]["z"]},
        }

    def compress(self, y: Tensor, y_prev: Optional[Tensor] = None,
                 coded: Optional[Tensor] = None) -> dict[str, Any]:
        hyper_out = self.hyper.compress(y)
        y_out = self.y.compress(y, self.conditioned(hyper_out["params"], y_prev, exact=True), coded)
        return {"strings": hyper_out["strings"] + y_out["strings"], "y_hat": y_out["y_hat"],
                "z_hat": hyper_out["z_hat"]}

    def decompress(self, strings: list[list[bytes]], y_shape: Sequence[int], z_shape: Sequence[int],
                   y_prev: Optional[Tensor] = None, coded: Optional[Tensor] = None) -> dict[str, Any]:
        n = self.hyper.num_streams
        hyper_out = self.hyper.decompress(strings[:n], z_shape)
        params = self.conditioned(hyper_out["params"], y_prev, exact=True)
        y_out = self.y.decompress(strings[n:], y_shape, params, coded)
        return {"y_hat": y_out["y_hat"], "z_hat": hyper_out["z_hat"]}
