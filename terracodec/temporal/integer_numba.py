"""CPU kernels (numba) of the integer entropy path's elementwise steps, fused: one pass over
memory instead of the ~15 that the torch formulation makes (`integer_layers`), each the same
IEEE operations in the same order, so both give the same bits (tests/test_integer_tt.py).
numba compiles without fast-math, so no multiply-add is contracted into an FMA.

    mlp_hidden       int32 fc1 sums -> * row scale * channel scale + bias -> GELU table
                     -> int8 per row (scale amax/127): fc2's input
    quantise_rows    activations -> int8 per row (scale amax/127), in float32
    requantise       int32 sums -> * row scale * channel scale + bias (float64)
    row_mantissas    `exact_math.row_quantise`: mantissas and power-of-two exponents per row
    layer_norm       `exact_layers.ExactLayerNorm`: 14-bit row mantissas, int64 statistics
    softmax_weights  float32 scores -> integer weights from the table of exp(-d) on a 2^-10
                     grid of d = top - score, and their row sums

The torch references (`terracodec.kernels.integer`, with the Triton kernels for GPUs, and
`integer_layers` for the simple steps) run wherever these do not.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit
from torch import Tensor


@njit(cache=True, nogil=True)
def _mlp_hidden(acc, rs, cs, bias, table, right, shift, step, q, scale):  # pragma: no cover - compiled
    m, n = acc.shape
    last = table.shape[0] - 1
    g = np.empty(n, np.float32)
    for i in range(m):
        for j in range(n):
            y = (np.float32(acc[i, j]) * rs[i]) * cs[j] + bias[j]
            if y >= right:
                v = y
            else:
                t = np.rint((y + shift) * step)
                if t < 0:
                    t = np.float32(0.0)
                if t > last:
                    t = np.float32(last)
                v = table[np.int64(t)]
            g[j] = v
        _int8_row(g, q[i], scale, i)


@njit(cache=True, nogil=True)
def _softmax_weights(scores, table, step, out, total):  # pragma: no cover - compiled
    r, n = scores.shape
    last = table.shape[0] - 1
    for i in range(r):
        top = scores[i, 0]
        for j in range(1, n):
            if scores[i, j] > top:
                top = scores[i, j]
        s = 0.0
        for j in range(n):
            t = np.rint((top - scores[i, j]) * step)
            if t > last:
                t = np.float32(last)
            if t < 0:
                t = np.float32(0.0)
            w = table[np.int64(t)]
            out[i, j] = w
            s += w
        total[i] = s


@njit(cache=True, nogil=True)
def _int8_row(g, q, scale, i):  # pragma: no cover - compiled
    """q = round(g * (127 / amax)) in [-127, 127], scale[i] = amax / 127 (float32 `g`)."""
    amax = np.float32(0.0)
    for j in range(g.shape[0]):
        a = abs(g[j])
        if a > amax:
            amax = a
    if not amax > 0:
        amax = np.float32(1.0)
    inv = np.float32(127.0) / amax
    scale[i] = amax / np.float32(127.0)
    for j in range(g.shape[0]):
        r = np.rint(g[j] * inv)
        if r > 127:
            r = np.float32(127.0)
        if r < -127:
            r = np.float32(-127.0)
        q[j] = np.int8(r)


@njit(cache=True, nogil=True)
def _quantise_rows(x, q, scale):  # pragma: no cover - compiled
    m, n = x.shape
    g = np.empty(n, np.float32)
    for i in range(m):
        for j in range(n):
            g[j] = np.float32(x[i, j])
        _int8_row(g, q[i], scale, i)


@njit(cache=True, nogil=True)
def _requantise(acc, rs, cs, bias, out):  # pragma: no cover - compiled
    m, n = acc.shape
    for i in range(m):
        r = np.float64(rs[i])
        for j in range(n):
            out[i, j] = (np.float64(acc[i, j]) * r) * cs[j] + bias[j]


@njit(cache=True, nogil=True)
def _row_exponent(row, bits):  # pragma: no cover - compiled
    """(e, 2^-e) of `exact_math.row_quantise`: frexp's exponent of the row's largest magnitude
    less `bits`; 2^-e clamped as `exact_math.pow2` clamps."""
    amax = 0.0
    for j in range(row.shape[0]):
        a = abs(row[j])
        if a > amax:
            amax = a
    e = math.frexp(amax)[1] - bits
    return e, math.ldexp(1.0, min(max(-e, -1022), 1023))


@njit(cache=True, nogil=True)
def _row_mantissas(x, bits, m, e):  # pragma: no cover - compiled
    rows, n = x.shape
    for i in range(rows):
        e[i], p = _row_exponent(x[i], bits)
        for j in range(n):
            m[i, j] = np.rint(x[i, j] * p)


@njit(cache=True, nogil=True)
def _layer_norm(x, weight, bias, eps_d3, sqrt_d, bits, out):  # pragma: no cover - compiled
    rows, n = x.shape
    mi = np.empty(n, np.int64)
    for i in range(rows):
        e, p = _row_exponent(x[i], bits)
        total = 0
        for j in range(n):
            mi[j] = np.int64(np.rint(x[i, j] * p))
            total += mi[j]
        variance = 0
        for j in range(n):
            dev = n * mi[j] - total
            variance += dev * dev
        den = math.sqrt(np.float64(variance) + eps_d3 * math.ldexp(1.0, min(max(-2 * e, -1022), 1023)))
        for j in range(n):
            out[i, j] = ((np.float64(n * mi[j] - total) * sqrt_d) / den) * weight[j] + bias[j]


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float, bits: int) -> Tensor:
    """`exact_layers.ExactLayerNorm` of float64 `x [.., d]` (int64 statistics), fused."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    out = np.empty(tuple(flat.shape), np.float64)
    d = flat.shape[-1]
    _layer_norm(flat.numpy(), weight.numpy(), bias.numpy(), eps * float(d) ** 3, math.sqrt(d), bits, out)
    return torch.from_numpy(out).reshape(x.shape)


def quantise_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 `[M, K]`, float32 `[M, 1]`): `integer_layers.quantise_rows` of `x` as float32."""
    x = x.contiguous()
    q = np.empty(tuple(x.shape), np.int8)
    scale = np.empty(x.shape[0], np.float32)
    _quantise_rows(x.numpy(), q, scale)
    return torch.from_numpy(q), torch.from_numpy(scale).reshape(-1, 1)


def requantise(acc: Tensor, row_scale: Tensor, channel_scale: Tensor, bias: Tensor) -> Tensor:
    """float64 `(acc * row scale) * channel scale + bias`, each step rounded (as torch does)."""
    out = np.empty(tuple(acc.shape), np.float64)
    _requantise(acc.numpy(), row_scale.reshape(-1).numpy(), channel_scale.numpy(), bias.numpy(), out)
    return torch.from_numpy(out)


def row_mantissas(x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """`exact_math.row_quantise` of float64 `x [.., K]`: (mantissas, int64 exponents `[.., 1]`)."""
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    m = np.empty(tuple(flat.shape), np.float64)
    e = np.empty(flat.shape[0], np.int64)
    _row_mantissas(flat.numpy(), bits, m, e)
    return torch.from_numpy(m).reshape(x.shape), torch.from_numpy(e).reshape(*x.shape[:-1], 1)


def mlp_hidden(acc: Tensor, row_scale: Tensor, channel_scale: Tensor, bias: Tensor, table: Tensor,
               right: float, shift: float, step: float) -> tuple[Tensor, Tensor]:
    """(int8 `[M, N]`, float32 row scales `[M, 1]`) of int32 sums `acc [M, N]` (see above)."""
    m, n = acc.shape
    q = np.empty((m, n), np.int8)
    scale = np.empty(m, np.float32)
    _mlp_hidden(acc.numpy(), row_scale.reshape(-1).numpy(), channel_scale.numpy(), bias.numpy(), table.numpy(),
                np.float32(right), np.float32(shift), np.float32(step), q, scale)
    return torch.from_numpy(q), torch.from_numpy(scale).reshape(m, 1)


def softmax_weights(scores: Tensor, table: Tensor, step: float) -> tuple[Tensor, Tensor]:
    """(float64 integer weights like `scores [.., L]`, their sums `[.., 1]`) (see above)."""
    flat = scores.reshape(-1, scores.shape[-1]).contiguous()
    out = np.empty(flat.shape, np.float64)
    total = np.empty(flat.shape[0], np.float64)
    _softmax_weights(flat.numpy(), table.numpy(), np.float32(step), out, total)
    return torch.from_numpy(out).reshape(scores.shape), torch.from_numpy(total).reshape(*scores.shape[:-1], 1)


__all__ = ["layer_norm", "mlp_hidden", "quantise_rows", "requantise", "row_mantissas", "softmax_weights"]
