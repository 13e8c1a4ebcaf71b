"""Compiled decoder kernels of the numba rANS back-end (wrapped by `rans_numba.decode`).

Why a module of its own: the decoder's hot loop (slot lookup, renormalisation, the end-of-chunk
checks that catch corrupt streams) shares no code with the encoder's. `rans_numba.py` holds
the Python wrappers of both.

Decoding looks the slot up in a small per-row bucket table (`_bucket_table`) that narrows the
search to the one or two symbols overlapping the slot's bucket, instead of a full binary search.
numba does not bounds-check: table rows (`indexes`) and every chunk's word pointer are checked
here, and failures come back as per-chunk status codes (`rans_format.STATUS_*`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from terracodec.entropy.rans_format import (ESCAPE_FROM_END, PRECISION, PROB_SCALE, RANS_L,
                                            SLOT_MASK, STATUS_BAD_FINAL_STATE, STATUS_BAD_INDEX,
                                            STATUS_WORDS_LEFT, STATUS_WORDS_OVERRUN, WORD_BITS)


@njit(cache=True, nogil=True)
def _decode_span(words, ptr, stop, x, lane, lanes, begin, end, indexes, cdfs, lengths, offsets,
                 lut, shift, out, esc_pos, epos):  # pragma: no cover
    """Decode symbols begin..end-1 (into `out`, rows `indexes`) from lane states `x` (updated in
    place, lane `lane` next) and words[ptr:stop]. Returns (ptr, lane, epos, status): a chunk is
    one span; a chained stream (`rans_chain`) is decoded span by span."""
    n_rows = lengths.shape[0]
    for i in range(begin, end):
        r = indexes[i]
        if r < 0 or r >= n_rows:
            return ptr, lane, epos, STATUS_BAD_INDEX
        s = x[lane]
        slot = s & SLOT_MASK
        # Largest v in [0, len-2] with cdf[v] <= slot; the answer lies in [lut[b], lut[b+1]].
        b = slot >> shift
        lo = np.int64(lut[r, b])
        hi = np.int64(lut[r, b + 1]) + 1
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if cdfs[r, mid] <= slot:
                lo = mid
            else:
                hi = mid
        start = np.int64(cdfs[r, lo])
        freq = np.int64(cdfs[r, lo + 1]) - start
        s = freq * (s >> PRECISION) + slot - start
        if s < RANS_L:
            if ptr >= stop:
                return ptr, lane, epos, STATUS_WORDS_OVERRUN
            s = (s << WORD_BITS) | np.int64(words[ptr])
            ptr += 1
        x[lane] = s
        if lo == lengths[r] - ESCAPE_FROM_END:
            esc_pos[epos] = i
            epos += 1
        out[i] = lo + offsets[r]
        lane += 1
        if lane == lanes:
            lane = 0
    return ptr, lane, epos, 0


@njit(cache=True, nogil=True)
def _decode_chunk(c, words, word_base, counts, states, indexes, cdfs, lengths, offsets, lut,
                  shift, lanes, chunk, out, esc_pos, esc_end, status):  # pragma: no cover
    """Decode chunk `c`; escaped symbols are listed in esc_pos[begin:esc_end[c]]."""
    n = out.shape[0]
    begin = c * chunk
    end = min(begin + chunk, n)
    x = np.empty(lanes, np.int64)
    for k in range(lanes):
        x[k] = states[c, k]
    stop = word_base[c] + counts[c]
    ptr, _, epos, code = _decode_span(words, word_base[c], stop, x, 0, lanes, begin, end, indexes,
                                      cdfs, lengths, offsets, lut, shift, out, esc_pos, begin)
    esc_end[c] = epos
    if code != 0:
        status[c] = code
        return
    if ptr != stop:
        status[c] = STATUS_WORDS_LEFT
        return
    for k in range(lanes):
        if x[k] != RANS_L:
            status[c] = STATUS_BAD_FINAL_STATE


@njit(cache=True, parallel=True, nogil=True)
def _decode_parallel(words, word_base, counts, states, indexes, cdfs, lengths, offsets, lut,
                     shift, lanes, chunk, out, esc_pos, esc_end, status):  # pragma: no cover
    for c in prange(counts.shape[0]):
        _decode_chunk(c, words, word_base, counts, states, indexes, cdfs, lengths, offsets, lut,
                      shift, lanes, chunk, out, esc_pos, esc_end, status)


@njit(cache=True, nogil=True)
def _decode_serial(words, word_base, counts, states, indexes, cdfs, lengths, offsets, lut,
                   shift, lanes, chunk, out, esc_pos, esc_end, status):  # pragma: no cover
    for c in range(counts.shape[0]):
        _decode_chunk(c, words, word_base, counts, states, indexes, cdfs, lengths, offsets, lut,
                      shift, lanes, chunk, out, esc_pos, esc_end, status)


@njit(cache=True, nogil=True)
def _bucket_table(cdfs, lengths, shift):  # pragma: no cover
    """lut[r, b] = the symbol of row r holding slot b << shift; lut[r, -1] = the escape."""
    n_rows = lengths.shape[0]
    n_buckets = PROB_SCALE >> shift
    lut = np.empty((n_rows, n_buckets + 1), np.int32)
    for r in range(n_rows):
        last = lengths[r] - ESCAPE_FROM_END
        v = 0
        for b in range(n_buckets):
            target = b << shift
            while v < last and cdfs[r, v + 1] <= target:
                v += 1
            lut[r, b] = v
        lut[r, n_buckets] = last
    return lut
