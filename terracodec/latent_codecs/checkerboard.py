"""Checkerboard spatial context (He et al., CVPR 2021): code anchors, then the rest.

Latent positions are split like a checkerboard. Anchors (where `row + col` is even) are coded
first, with parameters from the side information only; non-anchors are then coded with a
masked convolution over the decoded anchors as extra context. Two passes instead of one per
pixel keep decoding parallel.

For coding, each half is packed into a `[B, C, h, w / 2]` tensor (`unembed`): the parameter
network is pointwise, so it runs on the half that is being coded. Everything that feeds the
decoder's parameters is evaluated with `exact_forward` (bit-reproducible, see
`terracodec.layers.fixedpoint`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from terracodec.latent_codecs.base import LatentCodec, quantize_ste
from terracodec.latent_codecs.gaussian_conditional import GaussianConditionalLatentCodec
from terracodec.layers.conv import CheckerboardMaskedConv2d
from terracodec.layers.fixedpoint import exact_forward


def unembed(y: Tensor) -> Tensor:
    """`[B, C, h, w]` -> `[2, B, C, h, w / 2]`: anchors (row + col even), then non-anchors."""
    b, c, h, w = y.shape
    out = y.new_zeros((2, b, c, h, w // 2))
    out[0, ..., 0::2, :] = y[..., 0::2, 0::2]
    out[0, ..., 1::2, :] = y[..., 1::2, 1::2]
    out[1, ..., 0::2, :] = y[..., 0::2, 1::2]
    out[1, ..., 1::2, :] = y[..., 1::2, 0::2]
    return out


def embed(halves: Tensor) -> Tensor:
    """Inverse of `unembed`."""
    _, b, c, h, half_w = halves.shape
    y = halves.new_zeros((b, c, h, 2 * half_w))
    y[..., 0::2, 0::2] = halves[0, ..., 0::2, :]
    y[..., 1::2, 1::2] = halves[0, ..., 1::2, :]
    y[..., 0::2, 1::2] = halves[1, ..., 0::2, :]
    y[..., 1::2, 0::2] = halves[1, ..., 1::2, :]
    return y


def _coded_halves(coded: Optional[Tensor]) -> Optional[Tensor]:
    """`[h, w]` bool -> `[2, h, w / 2]`: each pass's coded cells (None: all)."""
    return None if coded is None else unembed(coded[None, None])[:, 0, 0]


def anchor_mask(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """`[h, w]` bool, True at anchors."""
    rows = torch.arange(h, device=device)[:, None]
    cols = torch.arange(w, device=device)[None, :]
    return (rows + cols) % 2 == 0


class CheckerboardLatentCodec(LatentCodec):
    """Two-pass checkerboard codec around a Gaussian conditional `y` codec.

    `context_prediction` is a `CheckerboardMaskedConv2d` (anchor half -> context features);
    `entropy_parameters` is a pointwise network of `[context, side params] -> params`.
    """

    def __init__(
        self,
        y: GaussianConditionalLatentCodec,
        context_prediction: CheckerboardMaskedConv2d,
        entropy_parameters: nn.Module,
    ) -> None:
        super().__init__()
        self.y = y
        self.context_prediction = context_prediction
        self.entropy_parameters = entropy_parameters

    @property
    def num_streams(self) -> int:
        return 2

    def _params(self, ctx: Tensor, side: Tensor) -> Tensor:
        return self.entropy_parameters(torch.cat([ctx, side], dim=1))

    def forward(self, y: Tensor, side_params: Tensor) -> dict[str, Any]:
        """Training pass with the same two passes as decoding (CompressAI's "twopass")."""
        anchors = anchor_mask(y.shape[2], y.shape[3], y.device)
        ctx_channels = self.context_prediction.out_channels
        zero_ctx = y.new_zeros((y.shape[0], ctx_channels, *y.shape[2:]))
        params_a = self._params(zero_ctx, side_params)
        _, means_a = self.y.split(params_a)
        y_hat_a = torch.where(anchors, quantize_ste(y - means_a) + means_a, torch.zeros_like(y))
        params_n = self._params(self.context_prediction(y_hat_a), side_params)
        params = torch.where(anchors, params_a, params_n)
        _, means_n = self.y.split(params_n)
        y_hat_n = torch.where(anchors, torch.zeros_like(y), quantize_ste(y - means_n) + means_n)
        out = self.y(y, params)
        return {"y_hat": y_hat_a + y_hat_n, "likelihoods": out["likelihoods"]}

    def _half_params(self, i: int, halves: Tensor, side_halves: Tensor) -> Tensor:
        if i == 0:
            b, _, h, hw = side_halves[0].shape
            ctx = side_halves.new_zeros((b, self.context_prediction.out_channels, h, hw))
        else:
            ctx = unembed(exact_forward(self.context_prediction, embed(halves)))[1]
        return exact_forward(self.entropy_parameters, torch.cat([ctx, side_halves[i]], dim=1))

    def compress(self, y: Tensor, side_params: Tensor, coded: Optional[Tensor] = None) -> dict[str, Any]:
        """`coded`: the cells to code (`latent_codecs.padding`); the others cost nothing and
        decode to their predicted mean (`GaussianConditionalLatentCodec.compress`)."""
        y_halves = unembed(y.to(torch.float64))
        side_halves = unembed(side_params.to(torch.float64))
        coded_halves = _coded_halves(coded)
        halves = torch.zeros_like(y_halves)
        strings = []
        for i in range(2):
            out = self.y.compress(y_halves[i], self._half_params(i, halves, side_halves),
                                  None if coded_halves is None else coded_halves[i])
            halves[i] = out["y_hat"]
            strings.extend(out["strings"])
        return {"strings": strings, "y_hat": embed(halves)}

    def decompress(self, strings: list[list[bytes]], shape: Sequence[int], side_params: Tensor,
                   coded: Optional[Tensor] = None) -> dict[str, Any]:
        h, w = int(shape[0]), int(shape[1])
        side_halves = unembed(side_params.to(torch.float64))
        coded_halves = _coded_halves(coded)
        b = side_params.shape[0]
        c = self.context_prediction.in_channels
        halves = side_halves.new_zeros((2, b, c, h, w // 2))
        for i in range(2):
            out = self.y.decompress([strings[i]], (h, w // 2), self._half_params(i, halves, side_halves),
                                    None if coded_halves is None else coded_halves[i])
            halves[i] = out["y_hat"]
        return {"y_hat": embed(halves)}
