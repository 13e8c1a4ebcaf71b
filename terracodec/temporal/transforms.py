"""TEC-TT's transforms and small networks, with TerraCodec v1's module names (so that published
state dicts load): the ELIC-style analysis and synthesis, the learned pad latent that stands in
before the first frame, and the dequantiser that refines a quantised latent with the entropy
model's features (`y_hat + f(features)`)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from terracodec.layers.blocks import AttentionBlock, ResidualUnit
from terracodec.layers.conv import conv, deconv


class _Analysis(nn.Module):
    def __init__(self, bands: int, ch: Sequence[int], blocks: int) -> None:
        super().__init__()
        units = lambda n: [ResidualUnit(n) for _ in range(blocks)]  # noqa: E731
        self.transforms = nn.Sequential(
            conv(bands, ch[0]), *units(ch[0]),
            conv(ch[0], ch[1]), *units(ch[1]), AttentionBlock(ch[1]),
            conv(ch[1], ch[2]), *units(ch[2]),
            conv(ch[2], ch[3]), AttentionBlock(ch[3]),
        )


class _Synthesis(nn.Module):
    def __init__(self, bands: int, ch: Sequence[int], blocks: int) -> None:
        super().__init__()
        units = lambda n: [ResidualUnit(n) for _ in range(blocks)]  # noqa: E731
        self.transforms = nn.Sequential(
            AttentionBlock(ch[3]), deconv(ch[3], ch[2]), *units(ch[2]),
            deconv(ch[2], ch[1]), AttentionBlock(ch[1]), *units(ch[1]),
            deconv(ch[1], ch[0]), *units(ch[0]),
            deconv(ch[0], bands),
        )


class Transform(nn.Module):
    """Holder that gives the transforms TerraCodec v1's key prefixes."""

    def __init__(self, bands: int, ch: Sequence[int], blocks: int) -> None:
        super().__init__()
        self.analysis_transform = _Analysis(bands, ch, blocks)
        self.synthesis_transform = _Synthesis(bands, ch, blocks)


class PadToken(nn.Module):
    """Learned per-channel constant latent that stands in before the first frame."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(1, channels, 1, 1))


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.conv2(self.act(self.conv1(x))))


class Dequantizer(nn.Module):
    """`y_hat + f(features)`: the entropy model's features refine the quantised latent."""

    def __init__(self, channels: int, d_model: int) -> None:
        super().__init__()
        self.process_conv = nn.Sequential(
            nn.Conv2d(d_model, channels, 1), nn.LeakyReLU(0.01), _ResidualBlock(channels)
        )

    def forward(self, y_hat: Tensor, features: Tensor) -> Tensor:
        return y_hat + self.process_conv(features)


__all__ = ["Dequantizer", "PadToken", "Transform"]
