"""Generalized Divisive Normalization (Ballé, Laparra, Simoncelli 2016).

`y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`; the inverse (IGDN, used in synthesis
transforms) multiplies by the square root instead. Parameters and buffers have CompressAI's
names and shapes (`beta` [C], `gamma` [C, C], `beta_reparam.*`, `gamma_reparam.*`), so that
CompressAI and TerraCodec v1 GDN weights load with `strict=True`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from terracodec.kernels.gdn import gdn
from terracodec.layers.bounds import NonNegativeParametrizer


class GDN(nn.Module):
    """GDN over the channel axis of `[N, C, ...]` tensors (IGDN with `inverse=True`)."""

    def __init__(
        self,
        in_channels: int,
        inverse: bool = False,
        beta_min: float = 1e-6,
        gamma_init: float = 0.1,
    ) -> None:
        super().__init__()
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=float(beta_min))
        self.gamma_reparam = NonNegativeParametrizer()
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(in_channels)))
        self.gamma = nn.Parameter(
            self.gamma_reparam.init(float(gamma_init) * torch.eye(in_channels))
        )

    def effective_parameters(self) -> tuple[Tensor, Tensor]:
        """(beta, gamma) after the non-negative re-parametrisation."""
        return self.beta_reparam(self.beta), self.gamma_reparam(self.gamma)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 2 or x.shape[1] != self.beta.shape[0]:
            raise ValueError(
                f"GDN({self.beta.shape[0]}) expects [N, {self.beta.shape[0]}, ...] input, "
                f"got shape {tuple(x.shape)}"
            )
        beta, gamma = self.effective_parameters()
        return gdn(x, beta, gamma, self.inverse)

    def extra_repr(self) -> str:
        return f"{self.beta.shape[0]}, inverse={self.inverse}"
