"""Gaussian conditional of Ballé et al. 2018 (scale hyperprior), CompressAI layout.

Each latent element has its own predicted scale (and optionally mean). For coding, scales are
mapped to the nearest-from-above entry of a fixed `scale_table` (`build_indexes`); one integer
table per entry, centred on 0, covering `+-ceil(scale * Phi^-1(1 - tail_mass / 2))`.
Buffers: `scale_table`, `scale_bound`, `likelihood_lower_bound.bound`, `lower_bound_scale.bound`
and the tables, as in CompressAI 1.2.8.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

from terracodec.entropy.base import EntropyModel
from terracodec.entropy.cdf import quantize_pmf
from terracodec.errors import InputError
from terracodec.kernels.likelihood import gaussian_likelihood
from terracodec.kernels.quantize import gaussian_indexes, gaussian_quantize
from terracodec.layers.bounds import LowerBound


def default_scale_table(minimum: float = 0.11, maximum: float = 256.0, levels: int = 64) -> list:
    """CompressAI's `get_scale_table`: `levels` log-spaced scales from `minimum` to `maximum`."""
    return torch.exp(torch.linspace(math.log(minimum), math.log(maximum), levels)).tolist()


class GaussianConditional(EntropyModel):
    """Conditional Gaussian entropy model: likelihoods in training, table coding after update()."""

    scale_table: Tensor
    scale_bound: Tensor
    _resizable_buffers = EntropyModel._resizable_buffers + ("scale_table",)

    def __init__(
        self,
        scale_table: Optional[Sequence[float]],
        *,
        scale_bound: Optional[float] = 0.11,
        tail_mass: float = 1e-9,
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__(likelihood_bound=likelihood_bound)
        if scale_table is not None:
            if not isinstance(scale_table, (list, tuple)):
                raise ValueError(f"invalid type for scale_table: {type(scale_table)}")
            table = [float(s) for s in scale_table]
            if not table or table != sorted(table) or any(s <= 0 for s in table):
                raise ValueError("scale_table must be a non-empty, sorted list of positive scales")
        else:
            table = []
        if scale_bound is None:
            if not table:
                raise ValueError("scale_bound is required without a scale_table")
            scale_bound = table[0]
        if scale_bound <= 0:
            raise ValueError("scale_bound must be positive")
        self.tail_mass = float(tail_mass)
        self.lower_bound_scale = LowerBound(scale_bound)
        self.register_buffer("scale_table", torch.tensor(table, dtype=torch.float32))
        self.register_buffer("scale_bound", torch.tensor([float(scale_bound)]))

    # ----------------------------------------------------------------- training
    def _likelihood(
        self, inputs: Tensor, scales: Tensor, means: Optional[Tensor] = None
    ) -> Tensor:
        return gaussian_likelihood(inputs, scales, means, self.lower_bound_scale.bound)

    def forward(
        self,
        inputs: Tensor,
        scales: Tensor,
        means: Optional[Tensor] = None,
        training: Optional[bool] = None,
    ) -> tuple[Tensor, Tensor]:
        """(noisy or rounded `inputs`, likelihoods); rounding is around `means`."""
        if training is None:
            training = self.training
        outputs = self.quantize(inputs, "noise" if training else "dequantize", means)
        bound = self.likelihood_lower_bound.bound if self.use_likelihood_bound else None
        likelihood = gaussian_likelihood(outputs, scales, means, self.lower_bound_scale.bound, bound)
        return outputs, likelihood

    # ----------------------------------------------------------------- tables
    def update_scale_table(self, scale_table: Sequence[float], force: bool = False) -> bool:
        """Replace the scale table and rebuild; False when tables exist and not `force`."""
        if self.has_tables() and not force:
            return False
        table = [float(s) for s in scale_table]
        if not table or table != sorted(table) or any(s <= 0 for s in table):
            raise ValueError("scale_table must be a non-empty, sorted list of positive scales")
        self.scale_table = torch.tensor(table, dtype=torch.float32, device=self.scale_table.device)
        return self.update(force=True)

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Build the integer tables; False when they exist and not `force`.

        Row extents follow CompressAI (float32 `ceil(scale * Phi^-1(1 - tail_mass / 2))`); the
        pmf `Phi((1/2 - |k|) / s) - Phi((-1/2 - |k|) / s)` and the tail `2 Phi((-1/2 - c) / s)`
        are evaluated in float64 on the CPU and quantised by `quantize_pmf`.
        """
        if self.has_tables() and not force:
            return False
        if self.scale_table.numel() == 0:
            raise ValueError("GaussianConditional has no scale_table to build tables from")
        table = self.scale_table.detach().to("cpu", torch.float32)
        multiplier = -float(torch.special.ndtri(torch.tensor(self.tail_mass / 2, dtype=torch.float64)))
        center = torch.ceil(table * multiplier).to(torch.int32)
        pmf_length = 2 * center + 1
        max_length = int(pmf_length.max())

        scales = table.to(torch.float64)[:, None]
        samples = torch.abs(
            torch.arange(max_length, dtype=torch.float64)[None, :] - center.to(torch.float64)[:, None]
        )
        upper = 0.5 * torch.erfc(-(2**-0.5) * ((0.5 - samples) / scales))
        lower = 0.5 * torch.erfc(-(2**-0.5) * ((-0.5 - samples) / scales))
        tail = 2 * lower[:, 0]
        self._set_tables(quantize_pmf(upper - lower, pmf_length, tail), pmf_length + 2, -center)
        return True

    def build_indexes(self, scales: Tensor) -> Tensor:
        """int32 table row of each scale: the first table entry >= max(scale, scale_bound)."""
        if self.scale_table.numel() == 0:
            raise ValueError("GaussianConditional has no scale_table")
        return gaussian_indexes(scales, self.scale_table, self.lower_bound_scale.bound)

    def quantize_and_index(
        self, inputs: Tensor, scales: Tensor, means: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """(int32 symbols `round(inputs - means)`, int32 rows `build_indexes(scales)`) in one
        fused pass (Triton on CUDA); feed them to `compress_symbols`."""
        if self.scale_table.numel() == 0:
            raise ValueError("GaussianConditional has no scale_table")
        return gaussian_quantize(
            inputs.detach(),
            scales.detach(),
            means.detach() if means is not None else None,
            self.scale_table,
            self.lower_bound_scale.bound,
        )

    # ----------------------------------------------------------------- coding
    def compress(  # type: ignore[override]
        self, inputs: Tensor, indexes: Tensor, means: Optional[Tensor] = None
    ) -> bytes:
        """One rANS stream for `round(inputs - means)`, rows `indexes` (see `build_indexes`)."""
        if means is not None and means.shape != inputs.shape:
            try:
                means = means.expand(inputs.shape)
            except RuntimeError as exc:
                raise InputError(f"means {tuple(means.shape)} do not fit {tuple(inputs.shape)}") from exc
        return super().compress(inputs, indexes, means)
