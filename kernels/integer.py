"""The fused elementwise steps of TEC-TT's integer entropy path (`terracodec.temporal.
integer_layers`, streams `int8-v2`) as Triton kernels, each beside its torch reference.

* `mlp_hidden`: an int32 GEMM's sums -> `(acc * row scale) * channel scale + bias` (float32)
  -> GELU by one lookup in a table on a 2^-10 grid (the input itself at or beyond `right`)
  -> int8 per row (`round(g * (127 / amax))`, scale `amax / 127`): the MLP's requantisation
  between its two integer GEMMs, one program per row.
* `layer_norm`: TEC-TT's exact LayerNorm (`terracodec.temporal.exact_layers.ExactLayerNorm`,
  float64): row mantissas of `bits` bits (the exponent of the row's largest magnitude, read from
  its bits), int64 sum and sum of squared deviations, one IEEE square root and division.
* `softmax_integers`: float32 attention scores -> integer weights `table[round((top - s) *
  2^10)]` (clamped to the table; -inf scores get its last entry, 0) and their row sums.

Both are the same correctly rounded IEEE operations in the same order on every device: the
kernels are launched with FMA contraction disabled, divide with `div_rn` and round half to even
with exact operations (`quantize._rint`), so their results equal the references bit for bit
(tests/test_kernels_integer.py, under `TRITON_INTERPRET=1` on the CPU; on a GPU when one is
lent). Rows of up to `MAX_ROW` elements (the published TT's 3072-wide hidden layer fits).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._dispatch import triton_available, use_triton

MAX_ROW = 8192


def quantise_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 `q`, scale `[M, 1]` in x's dtype): `x ~= q * scale`, `q = round(x * (127 / amax))`
    per row of `x [M, K]` (scale amax / 127; 1 / 127 for a zero row)."""
    amax = x.abs().amax(dim=-1, keepdim=True)
    amax = torch.where(amax > 0, amax, torch.ones_like(amax))
    q = torch.round(x * (127.0 / amax)).clamp_(-127, 127).to(torch.int8)  # <= 127 up to one rounding
    return q, amax / 127.0


def mlp_hidden_reference(acc: Tensor, row_scale: Tensor, channel_scale: Tensor, bias: Tensor, table: Tensor,
                         right: float, shift: float, step: float) -> tuple[Tensor, Tensor]:
    """(int8 `[M, N]`, float32 row scales `[M, 1]`) of int32 `acc [M, N]` (module docstring)."""
    y = (acc.to(torch.float32) * row_scale.reshape(-1, 1)) * channel_scale + bias
    i = torch.round((y + shift) * step).clamp_(0, table.numel() - 1)
    return quantise_rows(torch.where(y >= right, y, table[i.to(torch.int64)]))


def softmax_integers_reference(scores: Tensor, table: Tensor, step: float) -> tuple[Tensor, Tensor]:
    """(integer weights in `table`'s dtype, like `scores [.., L]`, their sums `[.., 1]`)."""
    top = scores.amax(dim=-1, keepdim=True)
    i = torch.round((top - scores) * step).clamp_(0, table.numel() - 1)
    weights = table[i.to(torch.int64)]
    return weights, weights.sum(dim=-1, keepdim=True)  # integers: exact in any order


def layer_norm_reference(x: Tensor, weight: Tensor, bias: Tensor, eps: float, bits: int) -> Tensor:
    """float64 LayerNorm of `x [.., d]` with integer statistics (module docstring)."""
    from terracodec.temporal.exact_math import pow2, row_quantise

    d = x.shape[-1]
    m, e = row_quantise(x, bits)
    mi = m.to(torch.int64)
    deviation = d * mi - mi.sum(dim=-1, keepdim=True)  # d * (m - mean), exact
    variance = (deviation * deviation).sum(dim=-1, keepdim=True)  # d^3 * var, exact
    den = torch.sqrt(variance.to(torch.float64) + (eps * float(d) ** 3) * pow2(-2 * e))
    return ((deviation.to(torch.float64) * math.sqrt(d)) / den) * weight + bias


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float, bits: int, backend: str | None = None) -> Tensor:
    """`layer_norm_reference`, by the Triton kernel on CUDA tensors (see `_dispatch`)."""
    if x.shape[-1] <= MAX_ROW and use_triton(x, weight, backend=backend):
        return _layer_norm_triton(x, weight, bias, eps, bits)
    return layer_norm_reference(x, weight, bias, eps, bits)


def mlp_hidden(acc: Tensor, row_scale: Tensor, channel_scale: Tensor, bias: Tensor, table: Tensor,
               right: float, shift: float, step: float, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """`mlp_hidden_reference`, by the Triton kernel on CUDA tensors (see `_dispatch`)."""
    if acc.shape[-1] <= MAX_ROW and use_triton(acc, row_scale, backend=backend):
        return _mlp_hidden_triton(acc, row_scale, channel_scale, bias, table, right, shift, step)
    return mlp_hidden_reference(acc, row_scale, channel_scale, bias, table, right, shift, step)


def softmax_integers(scores: Tensor, table: Tensor, step: float, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """`softmax_integers_reference`, by the Triton kernel on CUDA tensors (see `_dispatch`)."""
    if scores.shape[-1] <= MAX_ROW and use_triton(scores, backend=backend):
        return _softmax_triton(scores, table, step)
    return softmax_integers_reference(scores, table, step)


if triton_available():
    import triton
    import triton.language as tl

    from .quantize import _rint

    @triton.jit
    def _mlp_hidden_kernel(acc_ptr, rs_ptr, cs_ptr, b_ptr, table_ptr, q_ptr, scale_ptr, n, table_len,
                           right, shift, step, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        acc = tl.load(acc_ptr + row * n + offs, mask=mask, other=0)
        y = (acc.to(tl.float32) * tl.load(rs_ptr + row)) * tl.load(cs_ptr + offs, mask=mask, other=0.0)
        y = y + tl.load(b_ptr + offs, mask=mask, other=0.0)
        t = _rint((y + shift) * step)
        t = tl.minimum(tl.maximum(t, 0.0), (table_len - 1).to(tl.float32))
        g = tl.where(y >= right, y, tl.load(table_ptr + t.to(tl.int32), mask=mask, other=0.0))
        g = tl.where(mask, g, 0.0)
        amax = tl.max(tl.abs(g), axis=0)
        amax = tl.where(amax > 0.0, amax, 1.0)
        inv = tl.math.div_rn(tl.full([], 127.0, tl.float32), amax)
        r = _rint(g * inv)
        r = tl.minimum(tl.maximum(r, -127.0), 127.0)
        tl.store(q_ptr + row * n + offs, r.to(tl.int8), mask=mask)
        tl.store(scale_ptr + row, tl.math.div_rn(amax, tl.full([], 127.0, tl.float32)))

    @triton.jit
    def _softmax_kernel(s_ptr, table_ptr, w_ptr, total_ptr, n, table_len, step, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        s = tl.load(s_ptr + row * n + offs, mask=mask, other=float("-inf"))
        top = tl.max(s, axis=0)
        t = _rint((top - s) * step)
        t = tl.minimum(tl.maximum(t, 0.0), (table_len - 1).to(tl.float32))
        w = tl.load(table_ptr + t.to(tl.int32), mask=mask, other=0.0)
        w = tl.where(mask, w, 0.0)
        tl.store(w_ptr + row * n + offs, w, mask=mask)
        tl.store(total_ptr + row, tl.sum(w, axis=0))  # integers below 2^53: exact in any order

    @triton.jit
    def _pow2(k):
        """2^k (float64) for integer k in [-1022, 1023], built from its bits."""
        return ((k + 1023) << 52).to(tl.float64, bitcast=True)

    @triton.jit
    def _layer_norm_kernel(x_ptr, w_ptr, b_ptr, out_ptr, n, eps_d3, sqrt_d, bits, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        offs = tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + row * n + offs, mask=mask, other=0.0)
        amax = tl.max(tl.abs(x), axis=0)
        # frexp's exponent of amax from its bits (a subnormal is scaled by 2^64 first)
        sub = (amax > 0.0) & (amax < 2.2250738585072014e-308)
        scaled = tl.where(sub, amax * 18446744073709551616.0, amax)
        biased = (scaled.to(tl.int64, bitcast=True) >> 52) & 0x7FF
        exponent = tl.where(amax > 0.0, biased - 1022 - tl.where(sub, 64, 0), 0)
        e = exponent - bits
        p = _pow2(tl.minimum(tl.maximum(-e, -1022), 1023))
        mi = _rint(x * p).to(tl.int64)
        total = tl.sum(mi, axis=0)
        dev = tl.where(mask, n * mi - total, 0)
        variance = tl.sum(dev * dev, axis=0)
        eps = eps_d3 * _pow2(tl.minimum(tl.maximum(-2 * e, -1022), 1023))
        # float64: square root and division lower to sqrt.rn / div.rn (correctly rounded; the
        # approximate forms exist for float32 only, hence div_rn above)
        den = tl.sqrt(variance.to(tl.float64) + eps)
        normed = (dev.to(tl.float64) * sqrt_d) / den
        w = tl.load(w_ptr + offs, mask=mask, other=0.0)
        b = tl.load(b_ptr + offs, mask=mask, other=0.0)
        tl.store(out_ptr + row * n + offs, normed * w + b, mask=mask)

    def _layer_norm_triton(x, weight, bias, eps, bits):
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        r, n = flat.shape
        out = torch.empty_like(flat)
        _layer_norm_kernel[(r,)](flat, weight.contiguous(), bias.contiguous(), out, n, eps * float(n) ** 3,
                                 math.sqrt(n), bits, BLOCK=triton.next_power_of_2(n), enable_fp_fusion=False)
        return out.reshape(x.shape)

    def _mlp_hidden_triton(acc, row_scale, channel_scale, bias, table, right, shift, step):
        m, n = acc.shape
        acc = acc.contiguous()
        q = torch.empty((m, n), dtype=torch.int8, device=acc.device)
        scale = torch.empty((m, 1), dtype=torch.float32, device=acc.device)
        _mlp_hidden_kernel[(m,)](
            acc, row_scale.reshape(-1).contiguous(), channel_scale.contiguous(), bias.contiguous(),
            table.contiguous(), q, scale, n, table.numel(), float(right), float(shift), float(step),
            BLOCK=triton.next_power_of_2(n), enable_fp_fusion=False,
        )
        return q, scale

    def _softmax_triton(scores, table, step):
        flat = scores.reshape(-1, scores.shape[-1]).contiguous()
        r, n = flat.shape
        weights = torch.empty((r, n), dtype=table.dtype, device=scores.device)
        total = torch.empty((r,), dtype=table.dtype, device=scores.device)
        _softmax_kernel[(r,)](flat, table.contiguous(), weights, total, n, table.numel(), float(step),
                              BLOCK=triton.next_power_of_2(n), enable_fp_fusion=False)
        return weights.reshape(scores.shape), total.reshape(*scores.shape[:-1], 1)


__all__ = [
    "MAX_ROW", "layer_norm", "layer_norm_reference", "mlp_hidden", "mlp_hidden_reference", "quantise_rows",
    "softmax_integers", "softmax_integers_reference",
]
