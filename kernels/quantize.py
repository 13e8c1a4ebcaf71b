"""Quantisation + table index, fused: the step between predicted parameters and the coder.

Two rules, each with a torch reference, a Triton kernel and a dispatcher (`_dispatch.py`):

* `gaussian_quantize` (GaussianConditional, CompressAI semantics): symbol `round(x - mean)`
  (round half to even, in the inputs' dtype); row `(T - 1) - #{t in table[:-1]: s <= t}` with
  `s = max(scale, scale_bound)`, i.e. the first table entry >= s (a NaN scale gets `T - 1`).
* `location_scale_quantize` (LocationScaleGaussianConditional, float64 arithmetic): the mean
  is snapped to the lattice `c + j / N - h` (integer centre `c`, offset row `0 <= j < N`,
  `h = mean_shift`, 1/2 for the usual offsets in [-1/2, 1/2)): `u = mean + h`,
  `c0 = floor(u)`, `k = round(u * N)`, `j = k - c0 N` (0 <= j <= N; j = N means
  `c = c0 + 1, j = 0`, else `c = c0`); symbol `round(x - c)`; scale row
  `#{thresholds < scale}`; table row `j * S + scale row`; the integer centre `c` is returned.

Every step is a correctly rounded IEEE operation (add, subtract, multiply, floor, compare,
round half to even) or an integer one, so indexes and symbols are bit-identical on every device;
no transcendental function is evaluated (scale thresholds are precomputed by the entropy model)
and the Triton kernels are launched with FMA contraction disabled, for the same reason.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from terracodec.errors import InputError

from ._dispatch import triton_available, use_triton


def _check_symbols(rounded: Tensor) -> None:
    if rounded.numel() and not bool(
        (torch.isfinite(rounded) & (rounded >= -(2**31)) & (rounded < 2**31)).all()
    ):
        raise InputError("latent values are not finite or do not fit in int32")


def _fits_int32(inputs: Tensor, means: Optional[Tensor]) -> bool:
    """Cheap sufficient test that every symbol fits int32 (False for NaN/inf too)."""
    if inputs.numel() == 0:
        return True
    bound = float(inputs.abs().amax())
    if means is not None:
        bound += float(means.abs().amax())
    return bound + 2.0 < 2.0**31


def gaussian_indexes(scales: Tensor, scale_table: Tensor, scale_bound: Tensor) -> Tensor:
    """Table row of each scale (CompressAI's `build_indexes`), int32."""
    table = scale_table.to(device=scales.device, dtype=scales.dtype)
    bounded = torch.maximum(scales, scale_bound.to(device=scales.device, dtype=scales.dtype))
    below = torch.searchsorted(table[:-1].contiguous(), bounded.contiguous())  # #{t < s}
    below = torch.where(torch.isnan(bounded), table.numel() - 1, below)
    return below.to(torch.int32)


def gaussian_quantize_reference(
    inputs: Tensor, scales: Tensor, means: Optional[Tensor], scale_table: Tensor, scale_bound: Tensor
) -> tuple[Tensor, Tensor]:
    rounded = torch.round(inputs - means if means is not None else inputs)
    _check_symbols(rounded)
    return rounded.to(torch.int32), gaussian_indexes(scales, scale_table, scale_bound)


def gaussian_quantize(
    inputs: Tensor,
    scales: Tensor,
    means: Optional[Tensor],
    scale_table: Tensor,
    scale_bound: Tensor,
    *,
    backend: Optional[str] = None,
) -> tuple[Tensor, Tensor]:
    """(int32 symbols, int32 table rows) for a GaussianConditional, shaped like `inputs`."""
    if inputs.dtype == torch.float32 and use_triton(inputs, scales, means, backend=backend):
        return _gaussian_triton(inputs, scales, means, scale_table, scale_bound)
    return gaussian_quantize_reference(inputs, scales, means, scale_table, scale_bound)


def _mean_split(means: Tensor, num_means: int, mean_shift: float) -> tuple[Tensor, Tensor]:
    u = means.to(torch.float64) + mean_shift
    c0 = torch.floor(u)
    j = torch.round(u * num_means) - c0 * num_means
    wrap = j == num_means
    return c0 + wrap.to(torch.float64), torch.where(wrap, 0.0, j)


def location_scale_quantize_reference(
    inputs: Optional[Tensor],
    means: Tensor,
    scales: Tensor,
    thresholds: Tensor,
    num_means: int,
    mean_shift: float = 0.5,
) -> tuple[Tensor, Tensor, Tensor]:
    if not bool(torch.isfinite(means).all()) or bool(torch.isnan(scales).any()):
        raise InputError("means must be finite and scales must not be NaN")
    centers, j = _mean_split(means, num_means, mean_shift)
    if not bool((centers.abs() < 2**31).all()):
        raise InputError("means do not fit in int32")
    symbols = None
    if inputs is not None:
        rounded = torch.round(inputs.to(torch.float64) - centers)
        _check_symbols(rounded)
        symbols = rounded.to(torch.int32)
    thr = thresholds.to(device=scales.device, dtype=torch.float64).contiguous()
    scale_row = torch.searchsorted(thr, scales.to(torch.float64).contiguous())  # #{thr < s}
    index = j.to(torch.int64) * (thr.numel() + 1) + scale_row
    return symbols, index.to(torch.int32), centers.to(torch.int32)


def location_scale_quantize(
    inputs: Optional[Tensor],
    means: Tensor,
    scales: Tensor,
    thresholds: Tensor,
    num_means: int,
    mean_shift: float = 0.5,
    *,
    backend: Optional[str] = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(int32 symbols, int32 table rows, int32 centres), broadcast shape (see docstring).

    Without `inputs` (decoding) the symbols are None. `thresholds` (float64, ascending,
    S - 1 entries) are the raw-scale boundaries between consecutive scale rows.
    """
    shapes = [means.shape, scales.shape] + ([inputs.shape] if inputs is not None else [])
    shape = torch.broadcast_shapes(*shapes)
    means, scales = means.expand(shape), scales.expand(shape)
    inputs = inputs.expand(shape) if inputs is not None else None
    if use_triton(inputs, means, scales, backend=backend):
        return _location_scale_triton(inputs, means, scales, thresholds, num_means, mean_shift)
    return location_scale_quantize_reference(
        inputs, means, scales, thresholds, num_means, mean_shift
    )


if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _rint(v):
        # round half to even with exact operations only (no libdevice in the interpreter)
        f = tl.floor(v)
        d = v - f
        half = f * 0.5
        odd = (half - tl.floor(half)) != 0.0
        up = (d > 0.5) | ((d == 0.5) & odd)
        return tl.where(up, f + 1.0, f)

    @triton.jit
    def _gaussian_kernel(
        x_ptr, m_ptr, s_ptr, table_ptr, sym_ptr, idx_ptr, n, table_len, scale_bound,
        HAS_MEANS: tl.constexpr, BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0)
        if HAS_MEANS:
            x = x - tl.load(m_ptr + offs, mask=mask, other=0.0)
        s = tl.load(s_ptr + offs, mask=mask, other=1.0)
        s = tl.where(s != s, s, tl.maximum(s, scale_bound))  # keep NaN as torch.maximum does
        count = tl.zeros([BLOCK], dtype=tl.int32)
        for t in range(table_len - 1):
            count += (s <= tl.load(table_ptr + t)).to(tl.int32)
        tl.store(sym_ptr + offs, _rint(x).to(tl.int32), mask=mask)
        tl.store(idx_ptr + offs, (table_len - 1 - count).to(tl.int32), mask=mask)

    @triton.jit
    def _location_scale_kernel(
        x_ptr, m_ptr, s_ptr, thr_ptr, sym_ptr, idx_ptr, ctr_ptr, n, num_thr, num_means, shift,
        HAS_INPUTS: tl.constexpr, SEARCH_STEPS: tl.constexpr, BLOCK: tl.constexpr,
    ):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        m = tl.load(m_ptr + offs, mask=mask, other=0.0).to(tl.float64)
        s = tl.load(s_ptr + offs, mask=mask, other=1.0).to(tl.float64)
        u = m + shift
        c0 = tl.floor(u)
        j = _rint(u * num_means) - c0 * num_means
        wrap = j == num_means
        c = tl.where(wrap, c0 + 1.0, c0)
        j = tl.where(wrap, 0.0, j)
        # #{thresholds < s} by binary search over the ascending thresholds
        lo = tl.zeros([BLOCK], dtype=tl.int32)
        hi = tl.zeros([BLOCK], dtype=tl.int32) + num_thr
        for _ in range(SEARCH_STEPS):
            active = lo < hi
            mid = (lo + hi) // 2
            t = tl.load(thr_ptr + mid, mask=active & mask, other=0.0)
            go_right = active & (t < s)
            lo = tl.where(go_right, mid + 1, lo)
            hi = tl.where(active & ~go_right, mid, hi)
        index = j.to(tl.int32) * (num_thr + 1) + lo
        if HAS_INPUTS:
            x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float64)
            tl.store(sym_ptr + offs, _rint(x - c).to(tl.int32), mask=mask)
        tl.store(idx_ptr + offs, index, mask=mask)
        tl.store(ctr_ptr + offs, c.to(tl.int32), mask=mask)


_BLOCK = 512


def _gaussian_triton(
    inputs: Tensor, scales: Tensor, means: Optional[Tensor], scale_table: Tensor, scale_bound: Tensor
) -> tuple[Tensor, Tensor]:
    tensors = [inputs, scales] + ([means] if means is not None else [])
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    x = inputs.expand(shape).contiguous()
    s = scales.expand(shape).to(torch.float32).contiguous()
    m = means.expand(shape).to(torch.float32).contiguous() if means is not None else x
    if not _fits_int32(x, m if means is not None else None):
        _check_symbols(torch.round(x - m) if means is not None else torch.round(x))
    table = scale_table.to(device=x.device, dtype=torch.float32).contiguous()
    symbols = torch.empty(shape, dtype=torch.int32, device=x.device)
    indexes = torch.empty(shape, dtype=torch.int32, device=x.device)
    n = x.numel()
    if n:
        _gaussian_kernel[(triton.cdiv(n, _BLOCK),)](
            x, m, s, table, symbols, indexes, n, table.numel(), float(scale_bound),
            HAS_MEANS=means is not None, BLOCK=_BLOCK, enable_fp_fusion=False,
        )
    return symbols, indexes


def _location_scale_triton(
    inputs: Optional[Tensor],
    means: Tensor,
    scales: Tensor,
    thresholds: Tensor,
    num_means: int,
    mean_shift: float,
) -> tuple[Tensor, Tensor, Tensor]:
    m, s = means.contiguous(), scales.contiguous()
    x = inputs.contiguous() if inputs is not None else None
    if not _fits_int32(x if x is not None else m, m) or bool(torch.isnan(s).any()):
        return location_scale_quantize_reference(x, m, s, thresholds, num_means, mean_shift)
    thr = thresholds.to(device=m.device, dtype=torch.float64).contiguous()
    outs = [torch.empty(m.shape, dtype=torch.int32, device=m.device) for _ in range(3)]
    n = m.numel()
    if n:
        steps = max(1, int(thr.numel()).bit_length())
        _location_scale_kernel[(triton.cdiv(n, _BLOCK),)](
            x if x is not None else m, m, s, thr, *outs, n, thr.numel(), int(num_means),
            float(mean_shift), HAS_INPUTS=x is not None, SEARCH_STEPS=steps, BLOCK=_BLOCK,
            enable_fp_fusion=False,
        )
    return (outs[0] if x is not None else None), outs[1], outs[2]
