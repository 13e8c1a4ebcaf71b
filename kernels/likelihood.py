"""Likelihood of an integer bin under a Gaussian, CompressAI's formula:

    s = max(scale, scale_bound);  v = |x - mean|
    p = Phi((1/2 - v) / s) - Phi((-1/2 - v) / s),   Phi(z) = erfc(-z / sqrt(2)) / 2
    p = max(p, likelihood_bound)

Working with `|x - mean|` puts both terms on the left tail, where erfc keeps its relative
precision. `gaussian_likelihood` dispatches (see `_dispatch.py`); the torch reference keeps
CompressAI's operation order (so results agree bit for bit) and the LowerBound gradient rule.
The Triton kernel (inference only, float32 in and out) computes in float64 and has no erfc
(the interpreter lacks libdevice): in the centre, where both terms are close (large scales), it
takes the difference of two `erf`s, which avoids the cancellation; in the tails it uses a
Chebyshev fit of erfc (Numerical Recipes' `erfcc`, relative error < 1.2e-7, smooth, so that
the errors of two neighbouring terms cancel in their difference). Its results are closer to
the float64 truth than the float32 torch reference's in the ill-conditioned corner (large
scales, far tails), where the two may differ by ~1e-4 relative.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from terracodec.layers.bounds import lower_bound

from ._dispatch import triton_available, use_triton

_SQRT_HALF = 2**-0.5


def _cumulative(z: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-_SQRT_HALF * z)


def gaussian_likelihood_reference(
    inputs: Tensor,
    scales: Tensor,
    means: Optional[Tensor] = None,
    scale_bound: Optional[Tensor] = None,
    likelihood_bound: Optional[Tensor] = None,
) -> Tensor:
    values = inputs - means if means is not None else inputs
    if scale_bound is not None:
        scales = lower_bound(scales, scale_bound)
    values = torch.abs(values)
    likelihood = _cumulative((0.5 - values) / scales) - _cumulative((-0.5 - values) / scales)
    if likelihood_bound is not None:
        likelihood = lower_bound(likelihood, likelihood_bound)
    return likelihood


def gaussian_likelihood(
    inputs: Tensor,
    scales: Tensor,
    means: Optional[Tensor] = None,
    scale_bound: Optional[Tensor] = None,
    likelihood_bound: Optional[Tensor] = None,
    *,
    backend: Optional[str] = None,
) -> Tensor:
    """Bin likelihoods of `inputs` (broadcast with `scales` and `means`)."""
    if inputs.dtype == torch.float32 and use_triton(inputs, scales, means, backend=backend):
        return _likelihood_triton(inputs, scales, means, scale_bound, likelihood_bound)
    return gaussian_likelihood_reference(inputs, scales, means, scale_bound, likelihood_bound)


if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _erfc(z):
        # Numerical Recipes `erfcc`: relative error < 1.2e-7 for every z.
        a = tl.abs(z)
        t = 1.0 / (1.0 + 0.5 * a)
        poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
            -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
                -0.82215223 + t * 0.17087277))))))))
        r = t * tl.exp(-a * a + poly)
        return tl.where(z >= 0, r, 2.0 - r)

    @triton.jit
    def _likelihood_kernel(
        x_ptr, s_ptr, m_ptr, out_ptr, n, scale_bound, likelihood_bound,
        HAS_MEANS: tl.constexpr, BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        s = tl.load(s_ptr + offs, mask=mask, other=1.0)
        if HAS_MEANS:
            x = x - tl.load(m_ptr + offs, mask=mask, other=0.0)
        s = tl.maximum(s, scale_bound).to(tl.float64)
        v = tl.abs(x).to(tl.float64)
        zu = (0.5 - v) / s * 0.7071067811865476
        zl = (-0.5 - v) / s * 0.7071067811865476
        centre = 0.5 * (tl.math.erf(zu) - tl.math.erf(zl))
        tails = 0.5 * (_erfc(-zu) - _erfc(-zl))
        p = tl.where(zl > -1.5, centre, tails)
        p = tl.maximum(p.to(tl.float32), likelihood_bound)
        tl.store(out_ptr + offs, p, mask=mask)


def _likelihood_triton(
    inputs: Tensor,
    scales: Tensor,
    means: Optional[Tensor],
    scale_bound: Optional[Tensor],
    likelihood_bound: Optional[Tensor],
) -> Tensor:
    tensors = [inputs, scales] + ([means] if means is not None else [])
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    x, s = (t.expand(shape).to(torch.float32).contiguous() for t in (inputs, scales))
    m = means.expand(shape).to(torch.float32).contiguous() if means is not None else x
    out = torch.empty(shape, dtype=torch.float32, device=inputs.device)
    n = out.numel()
    if n == 0:
        return out
    s_bound = float(scale_bound) if scale_bound is not None else float("-inf")
    p_bound = float(likelihood_bound) if likelihood_bound is not None else float("-inf")
    block = 1024
    _likelihood_kernel[(triton.cdiv(n, block),)](
        x, s, m, out, n, s_bound, p_bound, HAS_MEANS=means is not None, BLOCK=block
    )
    return out
