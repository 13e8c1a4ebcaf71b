"""Arithmetic whose result is the same bits on every machine: the building blocks of TEC-TT's
exact entropy-parameter path (`terracodec.temporal.exact_layers`).

Three rules make a float64 computation reproducible on any IEEE-754 device (x86 with any vector
width, ARM, a GPU), whatever the BLAS, the thread count or the batch:

1. **Reductions only over integers.** A sum of integer-valued float64 terms whose partial sums
   stay below 2^53 is exact in any order, so a GEMM of integer mantissas is an integer GEMM
   (`row_quantise` makes them: a power-of-two exponent per row, a mantissa of `bits` bits).
   Every bound is stated where the GEMM is made.
2. **Elementwise steps are single IEEE operations** (+, -, *, /, sqrt, round, comparisons), each
   correctly rounded everywhere; no fused multiply-add (each step is its own torch kernel).
3. **No library transcendentals** (their last bit differs between libm, SLEEF and CUDA):
   `det_exp` and `det_erf` are fixed sequences of basic operations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: ln 2 split in two (fdlibm): k * LN2_HI is exact for |k| < 2^11.
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e00
#: 1 / n! for the Taylor series of exp on |r| <= ln2 / 2 (degree 13: error below 1e-17).
_INV_FACTORIALS = [1.0 / math.factorial(n) for n in range(14)]
#: Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): erf(x) = 1 - poly(t) exp(-x^2), t = 1/(1 + p x).
_AS_P = 0.3275911
_AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def pow2(k: Tensor) -> Tensor:
    """2^k as float64, exactly, for integer `k` in [-1022, 1023] (built from its bits)."""
    k = k.to(torch.int64).clamp(-1022, 1023)
    return ((k + 1023) << 52).view(torch.float64)


def row_quantise(x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """(mantissas, exponents): `x ~= m * 2^e` per row (last dimension), |m| <= 2^bits,
    m integer-valued float64, e int64 of shape [..., 1]. Exact operations only."""
    x = x.to(torch.float64)
    amax = x.abs().amax(dim=-1, keepdim=True)
    _, exponent = torch.frexp(amax)  # amax = f * 2^exponent, f in [0.5, 1)
    e = exponent.to(torch.int64) - bits
    return torch.round(x * pow2(-e)), e


def det_exp(z: Tensor, degree: int = 13) -> Tensor:
    """exp(z) (float64), the same bits everywhere; relative error ~1e-16 at the default degree,
    below 0.347^(degree+1) / (degree+1)! otherwise (degree 7: 6e-9)."""
    z = z.to(torch.float64).clamp(-700.0, 700.0)
    k = torch.round(z * INV_LN2)
    r = (z - k * LN2_HI) - k * LN2_LO
    p = torch.full_like(r, _INV_FACTORIALS[degree])
    for c in reversed(_INV_FACTORIALS[:degree]):
        p = p * r
        p = p + c
    return p * pow2(k)


def det_erf(x: Tensor) -> Tensor:
    """erf(x) to 1.5e-7 (float64), the same bits everywhere."""
    x = x.to(torch.float64)
    a = x.abs()
    t = 1.0 / (1.0 + _AS_P * a)
    poly = torch.full_like(t, _AS_A[4])
    for c in reversed(_AS_A[:4]):
        poly = poly * t
        poly = poly + c
    poly = poly * t
    y = 1.0 - poly * det_exp(-(a * a))
    return torch.where(x < 0, -y, y)


def det_gelu(x: Tensor) -> Tensor:
    """GELU(x) = x/2 (1 + erf(x / sqrt 2)) with `det_erf` (reference; `table_gelu` is faster)."""
    x = x.to(torch.float64)
    return (0.5 * x) * (1.0 + det_erf(x * (1.0 / math.sqrt(2.0))))


#: `table_gelu`'s grid: [-GELU_RANGE, GELU_RANGE] in steps of 2^-GELU_STEP_BITS.
GELU_RANGE, GELU_STEP_BITS = 10, 10
_GELU_TABLE: dict[str, Tensor] = {}


def gelu_grid() -> Tensor:
    """`det_gelu` at -GELU_RANGE + i 2^-GELU_STEP_BITS, i = 0 .. 2 GELU_RANGE 2^GELU_STEP_BITS
    (float64, built once): `table_gelu`'s points, and `integer_layers`' GELU table."""
    return _gelu_table()[0]


def _gelu_table() -> tuple[Tensor, Tensor]:
    if not _GELU_TABLE:
        n = 2 * GELU_RANGE * 2**GELU_STEP_BITS
        grid = torch.arange(n + 2, dtype=torch.float64) * 2.0**-GELU_STEP_BITS - GELU_RANGE
        values = det_gelu(grid)
        _GELU_TABLE["values"], _GELU_TABLE["slopes"] = values[:-1].contiguous(), (values[1:] - values[:-1]).contiguous()
    return _GELU_TABLE["values"], _GELU_TABLE["slopes"]


def table_gelu(x: Tensor) -> Tensor:
    """GELU by linear interpolation in a table of `det_gelu` (error < 1e-7), the same bits
    everywhere; GELU(x) = x beyond the table's right end, ~0 beyond its left end."""
    values, slopes = _gelu_table()
    x = x.to(torch.float64)
    pos = (x + float(GELU_RANGE)) * float(2**GELU_STEP_BITS)
    idx = torch.floor(pos).clamp_(0, values.numel() - 2)
    frac = pos - idx
    i = idx.to(torch.int64)
    out = values[i] + slopes[i] * frac  # left of the table: values[0] ~ -8e-23, slope ~0
    return torch.where(x >= GELU_RANGE, x, out)


__all__ = ["det_erf", "det_exp", "det_gelu", "gelu_grid", "pow2", "row_quantise", "table_gelu"]
