"""Compiled CPU back-end of the rANS coder (numba): the fast default on CPU.

Same algorithm and bytes as the torch reference (`rans_torch.py`); the stream format is in
`rans_stream.py`, its numbers in `rans_format.py`. This module holds the Python wrappers
(`encode`, `decode`: buffers, thread choice, status codes -> errors); the compiled loops are in
`rans_numba_encoder.py` and `rans_numba_decoder.py`, each with its own tricks.

Chunks are independent and run in parallel (`prange`); a single chunk or a small stream runs
serially: a parallel region costs more than it saves there, and on a busy machine it can stall
for a scheduler time slice waiting for its second thread. Inside a chunk the symbols are visited
in stream order with a rotating lane counter, which keeps the `lanes` independent states in
flight together (instruction-level parallelism) without reshaping anything.

numba does not bounds-check array accesses, so everything that indexes memory is checked
explicitly in the kernels: table rows (`indexes`), every chunk's word pointer, and the escape
buffers (a chunk has at most one escape and one word per symbol). Errors come back as a
per-chunk status code (`rans_format.STATUS_*`, 0 = fine) and are raised here.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit

from terracodec.entropy.rans_format import CORRUPT_MESSAGES, PRECISION, STATUS_BAD_INDEX
from terracodec.entropy.rans_numba_decoder import _bucket_table, _decode_parallel, _decode_serial
from terracodec.entropy.rans_numba_encoder import (_RECIPROCALS, _encode_parallel, _encode_serial,
                                                   _row_table)
from terracodec.errors import CorruptStreamError

_PARALLEL_MIN_SYMBOLS = 1 << 17
_LUT_ENTRIES = 1 << 16  # the decoder's bucket tables, all rows together (not the precision)


@njit(cache=True, nogil=True)
def _gather(src, starts, ends, dst_offsets, dst):  # pragma: no cover
    """Concatenate src[starts[c]:ends[c]] for every chunk c into dst."""
    for c in range(starts.shape[0]):
        o = dst_offsets[c] - starts[c]
        for k in range(starts[c], ends[c]):
            dst[o + k] = src[k]


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
    while buckets > 1 and buckets * n_rows > _LUT_ENTRIES:
        buckets //= 2
    return PRECISION + 1 - buckets.bit_length()


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
        if code == STATUS_BAD_INDEX:
            raise ValueError(f"indexes must be in [0, {lengths.numel()})")
        raise CorruptStreamError(f"rANS stream is corrupt ({CORRUPT_MESSAGES[code]}: "
                                 f"chunk {int(bad[0])})")
    begins = np.arange(n_chunks, dtype=np.int64) * chunk
    escapes = _concat(esc, begins, esc_end, np.int64)
    return torch.from_numpy(out), torch.from_numpy(escapes)


def _concat(src: np.ndarray, starts: np.ndarray, ends: np.ndarray, dtype) -> np.ndarray:
    sizes = ends - starts
    dst = np.empty(int(sizes.sum()), dtype)
    if dst.size:
        _gather(src, starts, ends, np.cumsum(sizes) - sizes, dst)
    return dst
