"""Exact integer CDF tables for the rANS coder.

Table layout (CompressAI's, the rANS contract in docs/DESIGN.md §1): row `r` of an int32
`[K, Lmax + 2]` tensor holds `cdf_lengths[r] = pmf_length + 2` entries `0 = c_0 < c_1 < ... <
c_{len-1} = 2**16`; symbol `s` has frequency `c_{s+1} - c_s`; symbol `len - 2` is the escape
(the tail mass outside the table); entries past `len` are 0.

Recipe (`quantize_pmf`), chosen so that a table is a pure function of the float64 pmf values and
is identical on every machine, thread count and device:

1. Each probability `p` (pmf entries, then the tail mass as the last symbol) is clamped to
   [0, 1] (NaN -> 0), the row is scaled by the power of two that brings its largest entry into
   [1/2, 1), and each value becomes a 46-bit fixed-point integer `w = floor(p * 2**46)`.
   Multiplying by powers of two and flooring are exact, so this is the only place floats
   enter. (A row whose weights are all 0 becomes uniform.)
2. Integers only from here. With `W = sum(w)` and `T = 2**16`: `f = floor(w * T / W)`, and the
   `T - sum(f)` missing units go one each to the symbols with the largest remainders
   `w * T mod W` (ties: lower symbol first), the largest-remainder (Hamilton) rounding, so
   `sum(f) == T` and every `f` is within 1 of its exact share.
3. Every frequency 0 becomes 1 (the coder needs it: values never seen in training must stay
   codable, the escape included). The excess is taken back one unit at a time from the largest
   frequencies (ties: lower symbol first), which costs the least expected code length; this
   repeats until `sum(f) == T`.
4. `cdf = [0, cumsum(f)]`.

Pmfs are evaluated in float64 on the CPU by the callers (`update()`), whatever device the module
lives on. Elementwise float64 functions may differ from one libm to another in the last ulp;
step 1 keeps 46 bits of a value with 53, so such a difference changes a table only with a
probability of order 2**-30 per entry: in practice tables are reproducible, and the hash
(`table_hash`), which streams record, catches the rare machine on which they are not.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import Tensor

from terracodec.entropy.rans_format import ESCAPE_FROM_END, PRECISION

_FIXED_BITS = 46  # w * 2**16 must fit in int64: 46 + 16 = 62 bits.


def quantize_pmf(
    pmf: Tensor, pmf_lengths: Tensor, tail_mass: Tensor, precision: int = PRECISION
) -> Tensor:
    """Integer CDF table (int32 `[K, max(pmf_lengths) + 2]`) from float pmfs.

    `pmf` is `[K, L]` (row `r` valid up to `pmf_lengths[r] <= L`), `tail_mass` is `[K]` or
    `[K, 1]`: the probability of the escape symbol.
    """
    if precision != PRECISION:
        raise ValueError(f"only {PRECISION}-bit tables are supported (rANS contract)")
    pmf = pmf.detach().to("cpu", torch.float64)
    lengths = pmf_lengths.detach().to("cpu", torch.int64).reshape(-1)
    tail = tail_mass.detach().to("cpu", torch.float64).reshape(-1)
    rows = lengths.numel()
    if pmf.dim() != 2 or pmf.shape[0] != rows or tail.numel() != rows:
        raise ValueError("pmf [K, L], pmf_lengths [K] and tail_mass [K] do not agree")
    if rows == 0:
        return torch.zeros((0, 2), dtype=torch.int32)
    if int(lengths.min()) < 1:
        raise ValueError("every pmf needs at least one symbol")
    max_length = int(lengths.max())
    if max_length > pmf.shape[1]:
        raise ValueError("pmf_lengths exceed the pmf width")
    total = 1 << precision
    if max_length + 1 > total:
        raise ValueError(f"a pmf of {max_length} symbols does not fit {precision}-bit tables")

    symbols = max_length + 1  # pmf entries, then the escape
    position = torch.arange(symbols)
    valid = position[None, :] <= lengths[:, None]
    probs = torch.zeros((rows, symbols), dtype=torch.float64)
    probs[:, :max_length] = pmf[:, :max_length]
    probs = torch.where(position[None, :] < lengths[:, None], probs, 0.0)
    probs.scatter_(1, lengths[:, None], tail[:, None])
    probs = torch.nan_to_num(probs, nan=0.0).clamp(0.0, 1.0)
    exponent = torch.frexp(probs.max(dim=1, keepdim=True).values).exponent
    # Exact: multiplying by powers of two. Two factors, because 2**1074 (a subnormal maximum's
    # scale) is not a float64; each factor stays <= 2**1000.
    shift = (-exponent).to(torch.float64)
    first = shift.clamp(max=1000.0)
    probs = probs * torch.pow(2.0, first) * torch.pow(2.0, shift - first)

    weights = torch.floor(probs * float(2**_FIXED_BITS)).to(torch.int64)
    weights = torch.where(valid, weights, 0)
    empty = weights.sum(1) == 0
    weights[empty] = valid[empty].to(torch.int64)

    freq = _largest_remainder(weights, valid, total)
    freq = _fill_zeros(freq, valid)

    cdf = torch.zeros((rows, symbols + 1), dtype=torch.int64)
    cdf[:, 1:] = torch.cumsum(freq, dim=1)
    cdf = torch.where(torch.arange(symbols + 1)[None, :] <= lengths[:, None] + 1, cdf, 0)
    return cdf.to(torch.int32)


def _rank(key: Tensor) -> Tensor:
    """Position of every entry when each row is sorted by `key` ascending, ties by column."""
    order = torch.sort(key, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(key.shape[1]).expand_as(order).contiguous())
    return rank


def _largest_remainder(weights: Tensor, valid: Tensor, total: int) -> Tensor:
    scaled = weights * total
    weight_sum = weights.sum(1, keepdim=True)
    freq = torch.div(scaled, weight_sum, rounding_mode="floor")
    remainder = scaled - freq * weight_sum
    missing = total - freq.sum(1, keepdim=True)
    key = torch.where(valid, -remainder, 1)  # valid first, largest remainder first
    return freq + (_rank(key) < missing).to(torch.int64)


def _fill_zeros(freq: Tensor, valid: Tensor) -> Tensor:
    zeros = valid & (freq == 0)
    excess = zeros.sum(1, keepdim=True)
    freq = torch.where(zeros, 1, freq)
    while bool((excess > 0).any()):
        donors = valid & (freq >= 2)
        key = torch.where(donors, -freq, 1)  # donors first, largest frequency first
        take = (_rank(key) < torch.minimum(excess, donors.sum(1, keepdim=True))) & donors
        freq = freq - take.to(torch.int64)
        excess = excess - take.sum(1, keepdim=True)
    return freq


def table_hash(quantized_cdf: Tensor, cdf_length: Tensor, offset: Tensor) -> str:
    """sha256 (hex) of an integer table: shapes, then cdfs, lengths and offsets as int32 LE."""
    digest = hashlib.sha256()
    for tensor in (quantized_cdf, cdf_length, offset):
        array = np.ascontiguousarray(tensor.detach().cpu().numpy().astype("<i4"))
        digest.update(repr(tuple(array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def code_length_bits(
    symbols: Tensor, indexes: Tensor, quantized_cdf: Tensor, cdf_length: Tensor, offset: Tensor
) -> Tensor:
    """Ideal code length (bits, float64) of each symbol under the tables, escapes excluded.

    An out-of-range value is charged its escape symbol only; the rANS stream adds the raw value.
    Used to compare tables (ours vs CompressAI's) independently of any coder overhead.
    """
    idx = indexes.reshape(-1).long().cpu()
    cdf = quantized_cdf.cpu().long()
    length = cdf_length.cpu().long()[idx]
    value = symbols.reshape(-1).long().cpu() - offset.cpu().long()[idx]
    escape = length - ESCAPE_FROM_END
    value = torch.where((value < 0) | (value >= escape), escape, value)
    freq = cdf[idx, value + 1] - cdf[idx, value]
    return -torch.log2(freq.double() / (1 << PRECISION))
