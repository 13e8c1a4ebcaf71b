"""Differentiable bounds used by entropy models and GDN.

Both modules keep CompressAI's buffer names (`bound`, `pedestal`, `lower_bound.bound`) so that
CompressAI and TerraCodec v1 state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _LowerBoundFn(torch.autograd.Function):
    """`max(x, bound)` whose gradient still flows when it would move `x` up towards the bound.

    A plain `max` kills the gradient of every clamped element, which can freeze a scale or a
    likelihood at the bound for good. Here the gradient passes where `x >= bound` or where the
    optimiser wants to increase `x` (a negative gradient of the loss).
    """

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound.to(x.dtype))

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # type: ignore[override]
        x, bound = ctx.saved_tensors
        passes = (x >= bound.to(x.dtype)) | (grad_output < 0)
        return grad_output * passes, None


def lower_bound(x: Tensor, bound: Tensor) -> Tensor:
    """Functional form of `LowerBound` (the bound is a 1-element tensor)."""
    return _LowerBoundFn.apply(x, bound)


class LowerBound(nn.Module):
    """`max(x, bound)` with the pass-through gradient rule of `_LowerBoundFn`."""

    bound: Tensor

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)], dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return lower_bound(x, self.bound)


class NonNegativeParametrizer(nn.Module):
    """Stores a non-negative quantity `v` as `p` with `v = max(p, sqrt(min + o^2))^2 - o^2`.

    Optimising `p` instead of `v` keeps gradients well-scaled near zero (Ballé et al., GDN);
    `o = reparam_offset` is the pedestal that keeps the square root differentiable at 0.
    """

    pedestal: Tensor

    def __init__(self, minimum: float = 0.0, reparam_offset: float = 2**-18) -> None:
        super().__init__()
        self.minimum = float(minimum)
        self.reparam_offset = float(reparam_offset)
        self.register_buffer(
            "pedestal", torch.tensor([self.reparam_offset**2], dtype=torch.float32)
        )
        self.lower_bound = LowerBound((self.minimum + self.reparam_offset**2) ** 0.5)

    def init(self, value: Tensor) -> Tensor:
        """The parameter `p` that represents `value` (inverse of `forward`)."""
        return torch.sqrt(torch.max(value + self.pedestal, self.pedestal))

    def forward(self, p: Tensor) -> Tensor:
        return self.lower_bound(p) ** 2 - self.pedestal
