"""Vectorised torch back-end of the rANS coder: the readable reference (any device).

The symbols are laid out on a grid `[chunks, steps, lanes]` (symbol `j` of chunk `c` sits at
step `j // lanes`, lane `j % lanes`; padding cells are inactive), and one Python loop walks the
steps, coding every lane of every chunk at once. Words are collected with boolean masks: the
grid in row-major order *is* the decode order, so `word[emitted]` lists each chunk's words in
the order the decoder reads them, chunk after chunk. The stream format lives in `rans_stream.py`
(its numbers in `rans_format.py`); the numba and triton back-ends must produce the same bytes.
"""

from __future__ import annotations

import numpy as np
import torch

from terracodec.entropy.rans_format import (CORRUPT_MESSAGES, EMIT_SHIFT, ESCAPE_FROM_END,
                                            PRECISION, RANS_L, SLOT_MASK, STATUS_BAD_FINAL_STATE,
                                            STATUS_WORDS_LEFT, STATUS_WORDS_OVERRUN, WORD_BITS,
                                            WORD_MASK)
from terracodec.errors import CorruptStreamError


def symbol_intervals(symbols: torch.Tensor, indexes: torch.Tensor, cdfs: torch.Tensor,
                     lengths: torch.Tensor, offsets: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(start, freq, escaped) of every symbol: CompressAI's table semantics, int64."""
    rows = indexes.long()
    v = symbols.long() - offsets.long()[rows]
    escape = lengths.long()[rows] - ESCAPE_FROM_END
    escaped = (v < 0) | (v >= escape)
    v = torch.where(escaped, escape, v)
    cdf = cdfs.long()
    start = cdf[rows, v]
    return start, cdf[rows, v + 1] - start, escaped


def _grid(n: int, lanes: int, chunk: int, device: torch.device) -> tuple[int, int, torch.Tensor]:
    """(chunks, steps, flat grid cell of every symbol)."""
    n_chunks = -(-n // chunk)
    steps = -(-min(chunk, n) // lanes)
    i = torch.arange(n, device=device)
    j = i % chunk
    cell = ((i // chunk) * steps + j // lanes) * lanes + j % lanes
    return n_chunks, steps, cell


def _on_grid(values: torch.Tensor, cell: torch.Tensor, shape: tuple[int, int, int],
             fill: int) -> torch.Tensor:
    out = torch.full((shape[0] * shape[1] * shape[2],), fill, dtype=values.dtype,
                     device=values.device)
    out[cell] = values
    return out.view(shape)


def encode(symbols: torch.Tensor, indexes: torch.Tensor, cdfs: torch.Tensor,
           lengths: torch.Tensor, offsets: torch.Tensor, lanes: int, chunk: int):
    """Same contract as `rans_numba.encode`."""
    n = symbols.numel()
    n_chunks, steps, cell = _grid(n, lanes, chunk, symbols.device)
    shape = (n_chunks, steps, lanes)
    start, freq, escaped = symbol_intervals(symbols, indexes, cdfs, lengths, offsets)
    start = _on_grid(start, cell, shape, 0)
    freq = _on_grid(freq, cell, shape, 1)
    active = _on_grid(torch.ones_like(escaped), cell, shape, False)

    x = torch.full((n_chunks, lanes), RANS_L, dtype=torch.int64, device=symbols.device)
    word = torch.zeros(shape, dtype=torch.int64, device=symbols.device)
    emitted = torch.zeros(shape, dtype=torch.bool, device=symbols.device)
    for s in reversed(range(steps)):  # the encoder runs the decode order backwards
        act, st, fr = active[:, s], start[:, s], freq[:, s]
        emit = act & ((x >> EMIT_SHIFT) >= fr)  # x >= fr << EMIT_SHIFT, without overflow
        word[:, s] = x & WORD_MASK
        emitted[:, s] = emit
        x = torch.where(emit, x >> WORD_BITS, x)
        x = torch.where(act, ((x // fr) << PRECISION) + x % fr + st, x)
    words = word[emitted].cpu().numpy().astype(np.uint32)
    counts = emitted.sum((1, 2)).cpu().numpy().astype(np.int64)
    return words, counts, x.cpu().numpy(), escaped.nonzero().squeeze(1)


def decode(words: np.ndarray, counts: np.ndarray, states: np.ndarray, indexes: torch.Tensor,
           cdfs: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor, lanes: int,
           chunk: int):
    """Same contract as `rans_numba.decode`."""
    device = indexes.device
    n = indexes.numel()
    n_chunks, steps, cell = _grid(n, lanes, chunk, device)
    shape = (n_chunks, steps, lanes)
    rows = _on_grid(indexes.long(), cell, shape, 0)
    active = _on_grid(torch.ones(n, dtype=torch.bool, device=device), cell, shape, False)
    stream = torch.from_numpy(np.concatenate([words.astype(np.int64), [0]])).to(device)
    count = torch.from_numpy(np.asarray(counts, np.int64)).to(device)
    base = torch.cumsum(count, 0) - count
    cdf, lens = cdfs.long(), lengths.long()
    search_steps = max(1, (cdf.shape[1] - 1).bit_length())

    x = torch.from_numpy(np.asarray(states, np.int64)).to(device)
    read = torch.zeros(n_chunks, dtype=torch.int64, device=device)
    overrun = torch.zeros(n_chunks, dtype=torch.bool, device=device)
    values = torch.zeros(shape, dtype=torch.int64, device=device)
    for s in range(steps):
        act, r = active[:, s], rows[:, s]
        slot = x & SLOT_MASK
        # Binary search for the largest v with cdf[r, v] <= slot, v in [0, len-2].
        lo, hi = torch.zeros_like(r), lens[r] - 1
        for _ in range(search_steps):
            mid = (lo + hi) // 2
            go = cdf[r, mid] <= slot
            lo, hi = torch.where(go, mid, lo), torch.where(go, hi, mid)
        st = cdf[r, lo]
        y = (cdf[r, lo + 1] - st) * (x >> PRECISION) + slot - st
        need = act & (y < RANS_L)
        pos = read[:, None] + torch.cumsum(need, 1) - need.long()  # this step's words, lane order
        overrun |= (need & (pos >= count[:, None])).any(1)
        at = torch.where(need & (pos < count[:, None]), base[:, None] + pos, -1)
        y = torch.where(need, (y << WORD_BITS) | stream[at], y)
        x = torch.where(act, y, x)
        read += need.sum(1)
        values[:, s] = lo
    for status, bad in ((STATUS_WORDS_OVERRUN, overrun), (STATUS_WORDS_LEFT, read != count),
                        (STATUS_BAD_FINAL_STATE, x != RANS_L)):
        if bool(bad.any()):
            raise CorruptStreamError(f"rANS stream is corrupt ({CORRUPT_MESSAGES[status]})")
    v = values.reshape(-1)[cell]
    rows = indexes.long()
    escaped = v == lens[rows] - ESCAPE_FROM_END
    return (v + offsets.long()[rows]).to(torch.int32), escaped.nonzero().squeeze(1)
