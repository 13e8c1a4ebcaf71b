"""Residual building blocks of TEC-ELIC's transforms (He et al., ELIC, CVPR 2022).

Module and attribute names follow CompressAI's `ResidualBottleneckBlock` and
`AttentionBlock`, because the state-dict keys of TerraCodec v1 checkpoints are derived from them
(`g_a.1.conv1.weight`, `g_a.8.conv_a.0.conv.2.weight`, ...).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from terracodec.layers.conv import conv1x1, conv3x3


class ResidualBottleneckBlock(nn.Module):
    """`x + conv1x1(relu(conv3x3(relu(conv1x1(x)))))` with a half-width bottleneck.

    Squeezing to `min(in, out) // 2` channels around the 3x3 convolution costs about a third of
    the parameters of a plain residual block of the same width.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid_ch = min(in_ch, out_ch) // 2
        self.conv1 = conv1x1(in_ch, mid_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(mid_ch, mid_ch)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = conv1x1(mid_ch, out_ch)
        self.skip: nn.Module = conv1x1(in_ch, out_ch) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.conv1(x))
        out = self.relu2(self.conv2(out))
        return self.conv3(out) + self.skip(x)


class ResidualUnit(nn.Module):
    """`relu(x + conv1x1(relu(conv3x3(relu(conv1x1(x))))))`, the unit of `AttentionBlock`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv = nn.Sequential(
            conv1x1(channels, half),
            nn.ReLU(inplace=True),
            conv3x3(half, half),
            nn.ReLU(inplace=True),
            conv1x1(half, channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x) + x)


class AttentionBlock(nn.Module):
    """Simplified attention of Cheng et al. (CVPR 2020): `x + a(x) * sigmoid(b(x))`.

    The sigmoid branch acts as a learned, spatially varying gate, which lets the transform spend
    its capacity on complex regions (edges, texture) at almost no extra cost.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(*(ResidualUnit(channels) for _ in range(3)))
        self.conv_b = nn.Sequential(
            *(ResidualUnit(channels) for _ in range(3)), conv1x1(channels, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv_a(x) * torch.sigmoid(self.conv_b(x))
