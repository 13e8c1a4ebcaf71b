"""Compiled CPU back-end of the rANS coder (numba): the fast default on CPU.

Same algorithm and bytes as the torch reference (`rans_torch.py`); the stream format is in
`rans.py`. Chunks are independent and run in parallel (`prange`); a single chunk or a small
stream runs serially: a parallel region costs more than it saves there, and on a busy machine
it can stall for a scheduler time slice waiting for its second thread. Inside a chunk the
symbols are visited in stream order with a rotating lane counter, which keeps the `lanes`
independent states in flight together (instruction-level parallelism) without reshaping
anything.

Encoding divides every state by its symbol's frequency; a 64-bit division is the slowest
integer instruction, so the encoder multiplies by a precomputed reciprocal instead
(`_quotient`, exact for every state below 2**63: see `_reciprocal_table`). The table depends on
the frequency only (1 .. 2**16), so it is built once, not per CDF table. With the default 4 lanes
the encoder keeps the lane states in registers (`_encode_chunk4`) instead of an array.

Decoding looks the slot up in a small per-row bucket table (`_bucket_table`) that narrows the
search to the one or two symbols overlapping the slot's bucket, instead of a full binary search.

numba does not bounds-check array accesses, so everything that indexes memory is checked here
explicitly: table rows (`indexes`), every chunk's word pointer, and the escape buffers (a chunk
has at most one escape and one word per symbol). Errors come back as a per-chunk status code
(0 = fine) and are raised by the Python wrappers.
"""

from __future__ import annotations

import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from terracodec.errors import CorruptStreamError

RANS_L = 1 << 31  # lower bound of the state interval [L, L << 32)

_PARALLEL_MIN_SYMBOLS = 1 << 17
_PRECISION = 16
# Frequencies index the reciprocal table through this mask: a valid table (every frequency in
# [1, 2**16], checked by `rans._check_tables`) never needs it, but it keeps any table in bounds.
_FREQ_MASK = (1 << (_PRECISION + 1)) - 1
_ROW_FIELDS = 4  # see _row_table

# Per-chunk status codes.
_OK = 0
_BAD_INDEX = 1
_WORDS_OVERRUN = 2
_WORDS_LEFT = 3
_BAD_FINAL_STATE = 4
_MESSAGES = {
    _WORDS_OVERRUN: "it needs more words than it holds",
    _WORDS_LEFT: "words left over",
    _BAD_FINAL_STATE: "a lane did not end in the initial state",
}

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
    d = np.arange(1, (1 << _PRECISION) + 1, dtype=np.uint64)
    shift = np.searchsorted(np.uint64(1) << np.arange(_PRECISION + 1, dtype=np.uint64), d)
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
    rows[:, 1] = lengths - 2
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
    words[np.uintp(wpos - 1)] = np.uint32(s & 0xFFFFFFFF)
    out = np.int64((s >> 47) >= freq)  # s >= freq << 47 without overflowing at freq = 1 << 16
    s >>= out << 5
    f = freq & _FREQ_MASK
    q = _quotient(s, rcp[np.uintp(2 * f)], rcp[np.uintp(2 * f + 1)])
    # (q << 16) + (s - q * freq) + start, with one multiply
    return s + start + q * ((1 << _PRECISION) - freq), wpos - out


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
                status[c] = _BAD_INDEX
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
        status[c] = _BAD_INDEX
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


@njit(cache=True, nogil=True)
def _decode_chunk(c, words, word_base, counts, states, indexes, cdfs, lengths, offsets, lut,
                  shift, lanes, chunk, out, esc_pos, esc_end, status):  # pragma: no cover
    """Decode chunk `c`; escaped symbols are listed in esc_pos[begin:esc_end[c]]."""
    n = out.shape[0]
    n_rows = lengths.shape[0]
    begin = c * chunk
    end = min(begin + chunk, n)
    x = np.empty(lanes, np.int64)
    for k in range(lanes):
        x[k] = states[c, k]
    ptr = word_base[c]
    stop = ptr + counts[c]
    epos = begin
    esc_end[c] = epos
    lane = 0
    for i in range(begin, end):
        r = indexes[i]
        if r < 0 or r >= n_rows:
            status[c] = _BAD_INDEX
            return
        s = x[lane]
        slot = s & 0xFFFF
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
        s = freq * (s >> 16) + slot - start
        if s < RANS_L:
            if ptr >= stop:
                status[c] = _WORDS_OVERRUN
                return
            s = (s << 32) | np.int64(words[ptr])
            ptr += 1
        x[lane] = s
        if lo == lengths[r] - 2:
            esc_pos[epos] = i
            epos += 1
        out[i] = lo + offsets[r]
        lane += 1
        if lane == lanes:
            lane = 0
    esc_end[c] = epos
    if ptr != stop:
        status[c] = _WORDS_LEFT
        return
    for k in range(lanes):
        if x[k] != RANS_L:
            status[c] = _BAD_FINAL_STATE


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
    n_buckets = (1 << 16) >> shift
    lut = np.empty((n_rows, n_buckets + 1), np.int32)
    for r in range(n_rows):
        last = lengths[r] - 2
        v = 0
        for b in range(n_buckets):
            target = b << shift
            while v < last and cdfs[r, v + 1] <= target:
                v += 1
            lut[r, b] = v
        lut[r, n_buckets] = last
    return lut


@njit(cache=True, nogil=True)
def _gather(src, starts, ends, dst_offsets, dst):  # pragma: no cover
    """Concatenate src[starts[c]:ends[c]] for every chunk c into dst."""
    for c in range(starts.shape[0]):
        o = dst_offsets[c] - starts[c]
        for k in range(starts[c], ends[c]):
            dst[o + k] = src[k]


# ----------------------------------------------------------------------------- Python wrappers


def _worth_threads(n: int, n_chunks: int) -> bool:
    """Threads pay off for several chunks of real work (a parallel region costs ~10-100 us).
    Never inside a task of `terracodec.parallel` (tiles coded side by side): its threads are
    busy, and numba's fallback threading layer (workqueue) must not be entered from several
    threads at once."""
    from terracodec.parallel import in_task

    return n_chunks > 1 and n >= _PARALLEL_MIN_SYMBOLS and not in_task()


def _bucket_shift(n_rows: int) -> int:
    """Bucket width 2**shift slots: at most 1024 buckets a row and ~64 Ki entries in all."""
    buckets = 1024
    while buckets > 1 and buckets * n_rows > (1 << 16):
        buckets //= 2
    return 17 - buckets.bit_length()


def encode(symbols: torch.Tensor, indexes: torch.Tensor, cdfs: torch.Tensor,
           lengths: torch.Tensor, offsets: torch.Tensor, lanes: int, chunk: int):
    """Code int32 CPU `symbols` -> (words, counts, states, escape positions).

    words: uint32, every chunk's words in decode order, chunk after chunk; counts: int64 words
    per chunk; states: int64 [chunks, lanes] final encoder states; escape positions: int64
    tensor, ascending.
    """
    sym = symbols.numpy()
    n = sym.shape[0]
    n_chunks = -(-n // chunk)
    words = np.empty(n, np.uint32)
    esc = np.empty(n, np.int64)
    word_start = np.empty(n_chunks, np.int64)
    esc_start = np.empty(n_chunks, np.int64)
    states = np.empty((n_chunks, lanes), np.int64)
    status = np.zeros(n_chunks, np.int32)
    table = cdfs.numpy()
    rows = _row_table(lengths.numpy().astype(np.int64), offsets.numpy().astype(np.int64),
                      table.shape[1])
    run = _encode_parallel if _worth_threads(n, n_chunks) else _encode_serial
    run(sym, indexes.numpy(), table.reshape(-1), rows, _RECIPROCALS, lanes, chunk, words,
        word_start, states, esc, esc_start, status)
    if status.any():
        raise ValueError(f"indexes must be in [0, {lengths.numel()})")
    ends = np.minimum(np.arange(1, n_chunks + 1, dtype=np.int64) * chunk, n)
    counts = ends - word_start
    packed = _concat(words, word_start, ends, np.uint32)
    escapes = _concat(esc, esc_start, ends, np.int64)
    return packed, counts, states, torch.from_numpy(escapes)


def decode(words: np.ndarray, counts: np.ndarray, states: np.ndarray, indexes: torch.Tensor,
           cdfs: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor, lanes: int,
           chunk: int):
    """Inverse of `encode`: -> (int32 symbols, escape positions); escaped entries are unset."""
    idx = indexes.numpy()
    n = idx.shape[0]
    n_chunks = counts.shape[0]
    if not words.flags.aligned:  # a view into the stream at an odd offset
        words = words.copy()
    word_base = np.cumsum(counts) - counts
    lens = lengths.numpy().astype(np.int64)
    table = cdfs.numpy()
    shift = _bucket_shift(lens.shape[0])
    lut = _bucket_table(table, lens, shift)
    out = np.empty(n, np.int32)
    esc = np.empty(n, np.int64)
    esc_end = np.empty(n_chunks, np.int64)
    status = np.zeros(n_chunks, np.int32)
    run = _decode_parallel if _worth_threads(n, n_chunks) else _decode_serial
    run(words, word_base, counts, np.ascontiguousarray(states, np.int64), idx, table, lens,
        offsets.numpy().astype(np.int64), lut, shift, lanes, chunk, out, esc, esc_end, status)
    bad = np.flatnonzero(status)
    if bad.size:
        code = int(status[bad[0]])
        if code == _BAD_INDEX:
            raise ValueError(f"indexes must be in [0, {lengths.numel()})")
        raise CorruptStreamError(f"rANS stream is corrupt (chunk {int(bad[0])}: "
                                 f"{_MESSAGES[code]})")
    begins = np.arange(n_chunks, dtype=np.int64) * chunk
    escapes = _concat(esc, begins, esc_end, np.int64)
    return torch.from_numpy(out), torch.from_numpy(escapes)


def _concat(src: np.ndarray, starts: np.ndarray, ends: np.ndarray, dtype) -> np.ndarray:
    sizes = ends - starts
    dst = np.empty(int(sizes.sum()), dtype)
    if dst.size:
        _gather(src, starts, ends, np.cumsum(sizes) - sizes, dst)
    return dst
