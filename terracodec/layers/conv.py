"""Convolution helpers with CompressAI's shapes and padding.

The analysis/synthesis transforms of TerraCodec v1 are built from these; keeping CompressAI's
padding rules (`k // 2`, `output_padding = stride - 1`) makes a stride-`s` layer map `H` to
exactly `H / s` (and back), and keeping plain `nn.Conv2d` modules keeps the state-dict keys
(`weight`, `bias`) that published checkpoints use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv(in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2) -> nn.Conv2d:
    """Strided 'same' convolution: `[N, Ci, H, W] -> [N, Co, H / stride, W / stride]`."""
    return nn.Conv2d(
        in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2
    )


def deconv(
    in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 2
) -> nn.ConvTranspose2d:
    """Transposed convolution that undoes `conv`: `[N, Ci, H, W] -> [N, Co, H * stride, W * stride]`."""
    return nn.ConvTranspose2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        output_padding=stride - 1,
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """Pointwise convolution (a per-pixel linear map over channels)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with 'same' padding."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)


class CheckerboardMaskedConv2d(nn.Conv2d):
    """Convolution that only sees the anchor half of a checkerboard (He et al., CVPR 2021).

    The kernel taps at (even, even) and (odd, odd) offsets from the top-left corner are masked
    out, so that, centred on a non-anchor pixel, the kernel reads only its anchor neighbours.
    The mask is a buffer named `mask` (as in CompressAI) so that checkpoints that carry it
    load unchanged. Unlike CompressAI we never write the masked weights back into `weight`:
    the product is formed on the fly, which gives the same numbers.
    """

    mask: Tensor

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        mask = torch.ones_like(self.weight.data)
        mask[:, :, 0::2, 0::2] = 0
        mask[:, :, 1::2, 1::2] = 0
        self.register_buffer("mask", mask)

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, self.stride, self.padding)
