"""Compiled encoder kernels of the numba rANS back-end (wrapped by `rans_numba.encode`).

Why a module of its own: the encoder's hot loop is a different program from the decoder's (a
reciprocal multiply instead of a division, lane states in registers), with its own tables and
proofs. `rans_numba.py` holds the Python wrappers of both.

Encoding divides every state by its symbol's frequency; a 64-bit division is the slowest
integer instruction, so the encoder multiplies by a precomputed reciprocal instead
(`_quotient`, exact for every state below 2**63: see `_reciprocal_table`). The table depends on
the frequency only (1 .. 2**16), so it is built once, not per CDF table. With the default 4 lanes
the encoder keeps the lane states in registers (`_encode_chunk4`) instead of an array.

numba does not bounds-check: every table row (`indexes`) is checked here, a chunk has at most
one escape and one word per symbol, and a bad index is reported as `STATUS_BAD_INDEX`.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from terracodec.entropy.rans_format import (EMIT_SHIFT, ESCAPE_FROM_END, PRECISION, PROB_SCALE,
                                            RANS_L, STATUS_BAD_INDEX, WORD_BITS, WORD_MASK)

# Frequencies index the reciprocal table through this mask: a valid table (every frequency in
# [1, 2**16], checked by `rans._check_tables`) never needs it, but it keeps any table in bounds.
_FREQ_MASK = (1 << (PRECISION + 1)) - 1
_ROW_FIELDS = 4  # see _row_table

# ----------------------------------------------------------------------------- compiled kernels
# (excluded from coverage: numba runs compiled code, not the Python lines)


def _reciprocal_table() -> np.ndarray:
    """Flat [rcp, shift] pairs, entry 2d and 2d+1 for frequency d: floor(x/d) = _quotient(x, ...).

    shift = ceil(log2 d) and rcp = ceil(2**(63 + shift) / d) < 2**64 (stored as int64 bits).
    Exact for 0 <= x < 2**63: with rcp = (2**(63+shift) + e) / d, 0 <= e < d,
    x * rcp / 2**(63+shift) = x / d + x * e / (d * 2**(63+shift)), and the second term is below
    e / (d * 2**shift) < 1 / d; x / d = q + r / d with r <= d - 1, so the sum stays in
    [q, q + 1). d = 1 gives shift 0 and rcp = 2**63 (x * 2**63 >> 63 = x); d = 2**k gives
    rcp = 2**63. Frequencies 0 and above 2**16 never occur in a valid table (see _FREQ_MASK).
    Flat (not [d, 2]) so that the kernel's index is a shift, not a multiply by a row stride.
    """
    d = np.arange(1, PROB_SCALE + 1, dtype=np.uint64)
    shift = np.searchsorted(np.uint64(1) << np.arange(PRECISION + 1, dtype=np.uint64), d)
    shift = shift.astype(np.uint64)
    # ceil(2**(63+shift) / d) = floor((hi * 2**32 + d - 1) / d) with hi = 2**(31+shift) < 2**48,
    # as a two-step long division that stays inside uint64.
    hi = np.uint64(1) << (np.uint64(31) + shift)
    high, rest = hi // d, hi % d
    low = ((rest << np.uint64(32)) + d - np.uint64(1)) // d
    table = np.zeros((_FREQ_MASK + 1, 2), np.int64)
    table[1:d.size + 1, 0] = ((high << np.uint64(32)) + low).view(np.int64)
    table[1:d.size + 1, 1] = shift.view(np.int64)
    return table.reshape(-1)


_RECIPROCALS = _reciprocal_table()


@intrinsic
def _quotient(typingctx, x, rcp, shift):  # pragma: no cover
    """floor(x * rcp / 2**(63 + shift)), rcp read as unsigned: one 64x64->128 multiply."""
    sig = types.int64(types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        high = builder.trunc(builder.lshr(product, ir.Constant(wide, 63)), ir.IntType(64))
        return builder.lshr(high, args[2])

    return sig, codegen


def _row_table(lengths: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Flat [offset, escape symbol, start of the row in the flattened cdfs, 0] of every row.

    One small array instead of three keeps the encoder's hot loop within the registers.
    """
    rows = np.zeros((lengths.size, _ROW_FIELDS), np.int64)
    rows[:, 0] = offsets
    rows[:, 1] = lengths - ESCAPE_FROM_END
    rows[:, 2] = np.arange(lengths.size, dtype=np.int64) * width
    return rows.reshape(-1)


@njit(cache=True, nogil=True)
def _table_entry(i, symbols, indexes, cdfs, rows):  # pragma: no cover
    """(start, freq, escaped) of symbol i; escaped = -1 flags a bad index.

    Indexes are cast to unsigned (np.uintp): numba then skips its negative-index wrap-around,
    a sizeable share of this tight loop; every index is in range by the checks here.
    """
    r = np.int64(indexes[np.uintp(i)])
    if np.uintp(r) >= np.uintp(rows.shape[0] // _ROW_FIELDS):
        return 0, 0, -1
    at = r * _ROW_FIELDS
    v = np.int64(symbols[np.uintp(i)]) - rows[np.uintp(at)]
    m = rows[np.uintp(at + 1)]
    escaped = 0
    if np.uintp(v) >= np.uintp(m):  # v < 0 or v >= m: the escape symbol
        v = m
        escaped = 1
    at = rows[np.uintp(at + 2)] + v  # in the flattened cdfs; v + 1 < lengths[r] <= width
    start = np.int64(cdfs[np.uintp(at)])
    return start, np.int64(cdfs[np.uintp(at + 1)]) - start, escaped


@njit(cache=True, nogil=True)
def _escape(escaped, i, esc_pos, epos):  # pragma: no cover
    """Record escaped symbol i -> the new escape pointer.

    A bad index (escaped < 0) gives -1, which sticks: nothing more is written.
    """
    if escaped < 0 or epos < 0:
        return -1
    epos -= 1
    esc_pos[np.uintp(epos)] = i
    return epos


@njit(cache=True, nogil=True)
def _put(s, start, freq, rcp, words, wpos):  # pragma: no cover
    """Code one symbol into state s -> (new state, new word pointer); branch-free renorm.

    The low word is always stored at words[wpos - 1] (>= the symbol's own position, so inside
    the chunk) and kept only if the state must shrink: a data-dependent branch here would be
    mispredicted on about one symbol in ten.
    """
    words[np.uintp(wpos - 1)] = np.uint32(s & WORD_MASK)
    out = np.int64((s >> EMIT_SHIFT) >= freq)  # s >= freq << EMIT_SHIFT, see rans_format
    s >>= out * WORD_BITS
    f = freq & _FREQ_MASK
    q = _quotient(s, rcp[np.uintp(2 * f)], rcp[np.uintp(2 * f + 1)])
    # (q << PRECISION) + (s - q * freq) + start, with one multiply
    return s + start + q * (PROB_SCALE - freq), wpos - out


@njit(cache=True, nogil=True)
def _encode_chunk(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk, words,
                  word_start, states, esc_pos, esc_start, status):  # pragma: no cover
    """Code chunk `c` backwards; its words fill words[word_start[c]:end] in decode order."""
    n = symbols.shape[0]
    begin = c * chunk
    end = min(begin + chunk, n)
    x = np.full(lanes, RANS_L, np.int64)
    wpos = end
    epos = end  # escape positions fill esc_pos[epos:end], ascending
    lane = (end - 1 - begin) % lanes
    for i in range(end - 1, begin - 1, -1):
        start, freq, escaped = _table_entry(i, symbols, indexes, cdfs, rows)
        if escaped:
            epos = _escape(escaped, i, esc_pos, epos)
            if epos < 0:
                status[c] = STATUS_BAD_INDEX
                return
        x[np.uintp(lane)], wpos = _put(x[np.uintp(lane)], start, freq, rcp, words, wpos)
        lane -= 1
        if lane < 0:
            lane = lanes - 1
    for k in range(lanes):
        states[c, k] = x[k]
    word_start[c] = wpos
    esc_start[c] = epos


@njit(cache=True, nogil=True)
def _encode_chunk4(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk, words, word_start,
                   states, esc_pos, esc_start, status):  # pragma: no cover
    """`_encode_chunk` for 4 lanes: the states live in registers, the loop is unrolled by 4.

    The chunk's last, partial group of (end - begin) % 4 symbols goes first, lane by lane; then
    every full group codes lanes 3, 2, 1, 0. A bad index is reported once, at the end: its
    symbol codes as frequency 0 (harmless garbage, still one word at most) and `_escape` stops
    recording.
    """
    n = symbols.shape[0]
    begin = c * chunk
    end = min(begin + chunk, n)
    x0 = x1 = x2 = x3 = np.int64(RANS_L)
    wpos = end
    epos = end
    full = begin + (end - begin) // 4 * 4
    for i in range(end - 1, full - 1, -1):  # the tail: lanes 2, 1, 0 at most
        start, freq, escaped = _table_entry(i, symbols, indexes, cdfs, rows)
        if escaped:
            epos = _escape(escaped, i, esc_pos, epos)
        k = i - full
        if k == 2:
            x2, wpos = _put(x2, start, freq, rcp, words, wpos)
        elif k == 1:
            x1, wpos = _put(x1, start, freq, rcp, words, wpos)
        else:
            x0, wpos = _put(x0, start, freq, rcp, words, wpos)
    for g in range(full - 4, begin - 1, -4):
        start, freq, escaped = _table_entry(g + 3, symbols, indexes, cdfs, rows)
        if escaped:
            epos = _escape(escaped, g + 3, esc_pos, epos)
        x3, wpos = _put(x3, start, freq, rcp, words, wpos)
        start, freq, escaped = _table_entry(g + 2, symbols, indexes, cdfs, rows)
        if escaped:
            epos = _escape(escaped, g + 2, esc_pos, epos)
        x2, wpos = _put(x2, start, freq, rcp, words, wpos)
        start, freq, escaped = _table_entry(g + 1, symbols, indexes, cdfs, rows)
        if escaped:
            epos = _escape(escaped, g + 1, esc_pos, epos)
        x1, wpos = _put(x1, start, freq, rcp, words, wpos)
        start, freq, escaped = _table_entry(g, symbols, indexes, cdfs, rows)
        if escaped:
            epos = _escape(escaped, g, esc_pos, epos)
        x0, wpos = _put(x0, start, freq, rcp, words, wpos)
    if epos < 0:
        status[c] = STATUS_BAD_INDEX
        return
    states[c, 0] = x0
    states[c, 1] = x1
    states[c, 2] = x2
    states[c, 3] = x3
    word_start[c] = wpos
    esc_start[c] = epos


@njit(cache=True, nogil=True)
def _encode_one(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk, words,
                word_start, states, esc_pos, esc_start, status):  # pragma: no cover
    if lanes == 4:
        _encode_chunk4(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk,
                       words, word_start, states, esc_pos, esc_start, status)
    else:
        _encode_chunk(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk,
                      words, word_start, states, esc_pos, esc_start, status)


@njit(cache=True, parallel=True, nogil=True)
def _encode_parallel(symbols, indexes, cdfs, rows, rcp, lanes, chunk, words,
                     word_start, states, esc_pos, esc_start, status):  # pragma: no cover
    for c in prange(word_start.shape[0]):
        _encode_one(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk, words,
                    word_start, states, esc_pos, esc_start, status)


@njit(cache=True, nogil=True)
def _encode_serial(symbols, indexes, cdfs, rows, rcp, lanes, chunk, words,
                   word_start, states, esc_pos, esc_start, status):  # pragma: no cover
    for c in range(word_start.shape[0]):
        _encode_one(c, symbols, indexes, cdfs, rows, rcp, lanes, chunk, words,
                    word_start, states, esc_pos, esc_start, status)
