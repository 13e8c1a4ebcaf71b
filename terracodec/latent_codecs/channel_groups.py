"""Uneven channel groups coded in sequence (He et al., ELIC, CVPR 2022).

The latent channels are split into groups (ELIC: 16, 16, 32, 64, M - 128). Group `k` is coded
with extra context from groups already decoded: a channel-context network `g_ch^(k)` reads the
first group and the most recent one (the simplification of CompressAI's `Elic2022Chandelier`,
which TerraCodec v1 uses), and its output is stacked with the side parameters. Each group has
its own latent codec (checkerboard around a Gaussian conditional in ELIC).
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from terracodec.latent_codecs.base import LatentCodec
from terracodec.layers.fixedpoint import exact_forward


class ChannelGroupsLatentCodec(LatentCodec):
    """`latent_codec["y{k}"]` codes group k; `channel_context["y{k}"]` (k >= 1) predicts its context."""

    def __init__(
        self,
        groups: Sequence[int],
        channel_context: Mapping[str, nn.Module],
        latent_codec: Mapping[str, LatentCodec],
    ) -> None:
        super().__init__()
        self.groups = [int(g) for g in groups]
        self.bounds = list(accumulate(self.groups, initial=0))
        self.channel_context = nn.ModuleDict(channel_context)
        self.latent_codec = nn.ModuleDict(latent_codec)

    @property
    def num_streams(self) -> int:
        return sum(self.latent_codec[f"y{k}"].num_streams for k in range(len(self.groups)))

    def _context_input(self, k: int, decoded: list[Tensor]) -> Tensor:
        """First group alone for k = 1; first and most recent group after that."""
        return decoded[0] if k == 1 else torch.cat([decoded[0], decoded[k - 1]], dim=1)

    def _params(self, k: int, side_params: Tensor, decoded: list[Tensor], exact: bool) -> Tensor:
        if k == 0:
            return side_params
        net = self.channel_context[f"y{k}"]
        inp = self._context_input(k, decoded)
        ctx = exact_forward(net, inp) if exact else net(inp)
        return torch.cat([ctx, side_params.to(ctx.dtype)], dim=1)

    def forward(self, y: Tensor, side_params: Tensor) -> dict[str, Any]:
        decoded: list[Tensor] = []
        likelihoods = []
        for k, y_k in enumerate(y.split(self.groups, dim=1)):
            out = self.latent_codec[f"y{k}"](y_k, self._params(k, side_params, decoded, False))
            decoded.append(out["y_hat"])
            likelihoods.append(out["likelihoods"]["y"])
        return {"y_hat": torch.cat(decoded, dim=1), "likelihoods": {"y": torch.cat(likelihoods, dim=1)}}

    def compress(self, y: Tensor, side_params: Tensor, coded: Optional[Tensor] = None) -> dict[str, Any]:
        """`coded`: the cells to code (`latent_codecs.padding`), passed to every group."""
        decoded: list[Tensor] = []
        strings: list[list[bytes]] = []
        for k, y_k in enumerate(y.split(self.groups, dim=1)):
            out = self.latent_codec[f"y{k}"].compress(y_k, self._params(k, side_params, decoded, True), coded)
            decoded.append(out["y_hat"])
            strings.extend(out["strings"])
        return {"strings": strings, "y_hat": torch.cat(decoded, dim=1)}

    def decompress(self, strings: list[list[bytes]], shape: Sequence[int], side_params: Tensor,
                   coded: Optional[Tensor] = None) -> dict[str, Any]:
        decoded: list[Tensor] = []
        pos = 0
        for k in range(len(self.groups)):
            codec = self.latent_codec[f"y{k}"]
            part = strings[pos : pos + codec.num_streams]
            pos += codec.num_streams
            out = codec.decompress(part, shape, self._params(k, side_params, decoded, True), coded)
            decoded.append(out["y_hat"])
        return {"y_hat": torch.cat(decoded, dim=1)}
