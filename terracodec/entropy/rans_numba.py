"""Compiled CPU back-end of the rANS coder (numba): the fast default on CPU.

Same algorithm and bytes as the torch reference (`rans_torch.py`); the stream format is in
`rans.py`. Chunks are independent and run in parallel (`prange`); a single chunk or a small
stream runs serially: a parallel region costs more than it saves there, and on a busy machine
it can stall for a scheduler time slice waiting for its second thread. Inside a chunk the
symbols are visited in stream order with a rotating lane counter, which keeps the `lanes`
independent states in flight together (instruction-level parallelism) without reshaping
anything.

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
from numba import njit, prange

from terracodec.errors import CorruptStreamError

RANS_L = 1 << 31  # lower bound of the state interval [L, L << 32)

_PARALLEL_MIN_SYMBOLS = 1 << 17

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


@njit(cache=True, nogil=True)
def _encode_chunk(c, symbols, indexes, cdfs, lengths, offsets, lanes, chunk, words, word_start,
                  states, esc_pos, esc_start, status):  # pragma: no cover
    """Code chunk `c` backwards; its words fill words[word_start[c]:end] in decode order."""
    n = symbols.shape[0]
    n_rows = lengths.shape[0]
    begin = c * chunk
    end = min(begin + chunk, n)
    x = np.full(lanes, RANS_L, np.int64)
    wpos = end
    epos = end  # escape positions fill esc_pos[epos:end], ascending
    lane = (end - 1 - begin) % lanes
    for i in range(end - 1, begin - 1, -1):
        r = indexes[i]
        if r < 0 or r >= n_rows:
            status[c] = _BAD_INDEX
            return
        v = np.int64(symbols[i]) - offsets[r]
        m = lengths[r] - 2
        if v < 0 or v >= m:
            v = m
            epos -= 1
            esc_pos[epos] = i
        start = np.int64(cdfs[r, v])
        freq = np.int64(cdfs[r, v + 1]) - start
        s = x[lane]
        if (s >> 47) >= freq:  # s >= freq << 47 without overflowing at freq = 1 << 16
            wpos -= 1
            words[wpos] = np.uint32(s & 0xFFFFFFFF)
            s >>= 32
        q = s // freq
        x[lane] = (q << 16) + (s - q * freq) + start
        lane -= 1
        if lane < 0:
            lane = lanes - 1
    for k in range(lanes):
        states[c, k] = x[k]
    word_start[c] = wpos
    esc_start[c] = epos


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
def _encode_parallel(symbols, indexes, cdfs, lengths, offsets, lanes, chunk, words, word_start,
                     states, esc_pos, esc_start, status):  # pragma: no cover
    for c in prange(word_start.shape[0]):
        _encode_chunk(c, symbols, indexes, cdfs, lengths, offsets, lanes, chunk, words,
                      word_start, states, esc_pos, esc_start, status)


@njit(cache=True, nogil=True)
def _encode_serial(symbols, indexes, cdfs, lengths, offsets, lanes, chunk, words, word_start,
                   states, esc_pos, esc_start, status):  # pragma: no cover
    for c in range(word_start.shape[0]):
        _encode_chunk(c, symbols, indexes, cdfs, lengths, offsets, lanes, chunk, words,
                      word_start, states, esc_pos, esc_start, status)


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
    """Threads pay off for several chunks of real work (a parallel region costs ~10-100 us)."""
    return n_chunks > 1 and n >= _PARALLEL_MIN_SYMBOLS


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
    run = _encode_parallel if _worth_threads(n, n_chunks) else _encode_serial
    run(sym, indexes.numpy(), cdfs.numpy(), lengths.numpy().astype(np.int64),
        offsets.numpy().astype(np.int64), lanes, chunk, words, word_start, states, esc,
        esc_start, status)
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
