"""Factorised (non-parametric) entropy bottleneck of Ballé et al. 2018, CompressAI layout.

Each channel has its own density, defined through a learned monotone cumulative
`c(x) = sigmoid(f(x))`, `f` a small per-channel MLP with softplus'd matrices and tanh gates.
The probability of an integer bin is `c(x + 1/2) - c(x - 1/2)`. `quantiles` [C, 1, 3] track the
`tail_mass / 2`, median and `1 - tail_mass / 2` points of each density (learned through
`loss()`, the auxiliary loss); symbols are coded relative to the medians.

Parameters, buffers and their shapes are CompressAI 1.2.8's (`quantiles`, `target`,
`matrices.N`, `biases.N`, `factors.N`, `likelihood_lower_bound.bound`, tables).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terracodec.entropy.base import EntropyModel
from terracodec.entropy.cdf import quantize_pmf
from terracodec.errors import InputError


class EntropyBottleneck(EntropyModel):
    """Per-channel learned density for latents `[N, C, ...]`."""

    quantiles: nn.Parameter
    target: Tensor

    def __init__(
        self,
        channels: int,
        *,
        tail_mass: float = 1e-9,
        init_scale: float = 10,
        filters: Sequence[int] = (3, 3, 3, 3),
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__(likelihood_bound=likelihood_bound)
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        self.init_scale = float(init_scale)
        self.tail_mass = float(tail_mass)

        widths = (1,) + self.filters + (1,)
        scale = self.init_scale ** (1 / (len(self.filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(self.filters) + 1):
            # softplus(init) = 1 / (scale * fan_out): the initial density spans ~init_scale.
            init = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(
                nn.Parameter(torch.full((self.channels, widths[i + 1], widths[i]), init))
            )
            self.biases.append(
                nn.Parameter(torch.empty(self.channels, widths[i + 1], 1).uniform_(-0.5, 0.5))
            )
            if i < len(self.filters):
                self.factors.append(nn.Parameter(torch.zeros(self.channels, widths[i + 1], 1)))

        self.quantiles = nn.Parameter(
            torch.tensor([-self.init_scale, 0.0, self.init_scale]).repeat(self.channels, 1, 1)
        )
        target = math.log(2 / self.tail_mass - 1)
        self.register_buffer("target", torch.tensor([-target, 0.0, target]))

    # ----------------------------------------------------------------- density
    def _get_medians(self) -> Tensor:
        return self.quantiles[:, :, 1:2]

    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        """`f(inputs)` for inputs [C, 1, n]: logits of the cumulative, shape [C, 1, n]."""
        logits = inputs
        for i in range(len(self.filters) + 1):
            matrix, bias = self.matrices[i], self.biases[i]
            if stop_gradient:
                matrix, bias = matrix.detach(), bias.detach()
            logits = torch.matmul(F.softplus(matrix), logits) + bias
            if i < len(self.filters):
                factor = self.factors[i].detach() if stop_gradient else self.factors[i]
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    def _likelihood(
        self, inputs: Tensor, stop_gradient: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient=stop_gradient)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient=stop_gradient)
        return torch.sigmoid(upper) - torch.sigmoid(lower), lower, upper

    def forward(self, x: Tensor, training: Optional[bool] = None) -> tuple[Tensor, Tensor]:
        """(noisy or rounded `x`, likelihoods), both shaped like `x` [N, C, ...]."""
        if training is None:
            training = self.training
        if x.dim() < 2 or x.shape[1] != self.channels:
            raise InputError(
                f"EntropyBottleneck({self.channels}) expects [N, {self.channels}, ...], "
                f"got {tuple(x.shape)}"
            )
        perm = (1, 0, *range(2, x.dim()))  # channels first: one density per row
        values = x.permute(*perm).contiguous()
        shape = values.shape
        values = values.reshape(self.channels, 1, -1)
        outputs = self.quantize(values, "noise" if training else "dequantize", self._get_medians())
        likelihood, _, _ = self._likelihood(outputs)
        likelihood = self._bound_likelihood(likelihood)
        outputs = outputs.reshape(shape).permute(*perm).contiguous()
        likelihood = likelihood.reshape(shape).permute(*perm).contiguous()
        return outputs, likelihood

    def loss(self) -> Tensor:
        """Auxiliary loss that moves `quantiles` to the target cumulative logits."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()

    # ----------------------------------------------------------------- tables
    def _logits_cumulative_exact(self, inputs: Tensor) -> Tensor:
        """`_logits_cumulative` in float64 on the CPU with the channel mixing written out as
        explicit products and sums (no BLAS): the result does not depend on thread counts."""
        logits = inputs.to("cpu", torch.float64)
        for i in range(len(self.filters) + 1):
            matrix = F.softplus(self.matrices[i].detach().to("cpu", torch.float64))
            bias = self.biases[i].detach().to("cpu", torch.float64)
            mixed = matrix[:, :, 0:1] * logits[:, 0:1, :]
            for k in range(1, matrix.shape[2]):
                mixed = mixed + matrix[:, :, k : k + 1] * logits[:, k : k + 1, :]
            logits = mixed + bias
            if i < len(self.filters):
                factor = self.factors[i].detach().to("cpu", torch.float64)
                logits = logits + torch.tanh(factor) * torch.tanh(logits)
        return logits

    @torch.no_grad()
    def update(self, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the integer tables (see `cdf.py`); False when they exist and not `force`.

        Table extents come from `quantiles` exactly as in CompressAI (float32 arithmetic, so
        the layout matches); the pmf is evaluated in float64 on the CPU. The escape symbol gets
        the mass below the first bin plus the mass above the last bin of *each* row.
        """
        if self.has_tables() and not force:
            return False
        if update_quantiles:
            self._update_quantiles()
        quantiles = self.quantiles.detach().to("cpu")
        medians = quantiles[:, 0, 1]
        minima = torch.clamp(torch.ceil(medians - quantiles[:, 0, 0]).to(torch.int32), min=0)
        maxima = torch.clamp(torch.ceil(quantiles[:, 0, 2] - medians).to(torch.int32), min=0)
        pmf_length = maxima + minima + 1
        max_length = int(pmf_length.max())

        start = medians.to(torch.float64) - minima.to(torch.float64)
        samples = torch.arange(max_length, dtype=torch.float64)[None, None, :] + start[:, None, None]
        lower = self._logits_cumulative_exact(samples - 0.5)[:, 0, :]
        upper = self._logits_cumulative_exact(samples + 0.5)[:, 0, :]
        # sigmoid(u) - sigmoid(l) computed on the side where both are small (no cancellation).
        sign = -torch.sign(lower + upper)
        pmf = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        last = (pmf_length.long() - 1)[:, None]
        tail = torch.sigmoid(lower[:, 0]) + torch.sigmoid(-upper.gather(1, last)[:, 0])

        self._set_tables(quantize_pmf(pmf, pmf_length, tail), pmf_length + 2, -minima)
        return True

    @torch.no_grad()
    def _update_quantiles(self, search_radius: float = 1e5, rtol: float = 1e-4, atol: float = 1e-3):
        """Set `quantiles` by bisection on the cumulative (faster and more precise than the
        auxiliary loss)."""
        shape = (self.channels, 1, 1)
        device, dtype = self.quantiles.device, self.quantiles.dtype
        for i in range(3):
            target = self.target[i]
            low = torch.full(shape, -search_radius, device=device, dtype=dtype)
            high = torch.full(shape, search_radius, device=device, dtype=dtype)
            for _ in range(200):
                if bool(torch.isclose(low, high, rtol=rtol, atol=atol).all()):
                    break
                mid = (low + high) / 2
                below = self._logits_cumulative(mid, stop_gradient=True) <= target
                low = torch.where(below, mid, low)
                high = torch.where(below, high, mid)
            self.quantiles.data[:, :, i] = ((low + high) / 2)[:, :, 0]

    # ----------------------------------------------------------------- coding
    def _indexes_and_medians(self, shape: Sequence[int], device: torch.device):
        if len(shape) < 2 or shape[1] != self.channels:
            raise InputError(
                f"EntropyBottleneck({self.channels}) codes [N, {self.channels}, ...] tensors, "
                f"got shape {tuple(shape)}"
            )
        view = (1, self.channels) + (1,) * (len(shape) - 2)
        indexes = torch.arange(self.channels, device=device, dtype=torch.int32).reshape(view)
        medians = self._get_medians().detach().reshape(view)
        return indexes.expand(*shape), medians.expand(*shape)

    def compress(self, x: Tensor) -> bytes:  # type: ignore[override]
        """One rANS stream for the whole tensor `x` [N, C, ...] (rounded around the medians)."""
        indexes, medians = self._indexes_and_medians(x.shape, x.device)
        return super().compress(x, indexes, medians.to(x.dtype))

    def decompress(self, data: bytes, shape: Sequence[int]) -> Tensor:  # type: ignore[override]
        """Tensor of full `shape` [N, C, ...] decoded from `compress`'s bytes."""
        indexes, medians = self._indexes_and_medians(tuple(shape), self.quantiles.device)
        return super().decompress(data, indexes, medians)
