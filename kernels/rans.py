"""Triton back-end of the rANS coder (`terracodec.entropy.rans`): CUDA tensors, one program per
chunk, the chunk's lanes vectorised inside the program.

Same algorithm and bytes as the torch reference (`terracodec/entropy/rans_torch.py`):

* encode: the host computes every symbol's (start, freq) with the reference's
  `symbol_intervals`; the kernel walks the steps backwards and writes each step's words at the
  back of the chunk's slice, lane-ordered through `tl.cumsum` of the emit mask, so the slice ends
  up in decode order. The host then keeps `[tail, size)` of every chunk.
* decode: binary search of the slot in each lane's CDF row, renormalisation words read at
  `read + cumsum(need) - 1`, with every read checked against the chunk's word count; the
  kernel reports a status code per chunk (`rans_format.STATUS_*`: it overran, left words, or
  ended a lane away from state L).

The format's numbers come from `terracodec/entropy/rans_format.py`, as `tl.constexpr` globals
(the only globals a kernel may read).

GPU parallelism is chunks x lanes. The default layout (4 lanes, 65536-symbol chunks) is chosen
for CPU speed and a small header, so a 10 M-symbol stream is only ~150 programs of 4 lanes; an
encoder that targets GPU decoding can choose more lanes and smaller chunks (recorded in the
header, so any back-end still decodes it), at a cost in header bytes.

Tests run it on CPU tensors with `TRITON_INTERPRET=1`, which triton reads when it is imported
(and when it decorates), so they run it in a fresh process with the variable set.
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from terracodec.entropy import rans_format as fmt
from terracodec.entropy.rans_torch import symbol_intervals
from terracodec.errors import CorruptStreamError

_PRECISION = tl.constexpr(fmt.PRECISION)
_SLOT_MASK = tl.constexpr(fmt.SLOT_MASK)
_L_BITS = tl.constexpr(fmt.RANS_L_BITS)
_WORD_BITS = tl.constexpr(fmt.WORD_BITS)
_EMIT_SHIFT = tl.constexpr(fmt.EMIT_SHIFT)
_MIN_CDF_LENGTH = tl.constexpr(fmt.MIN_CDF_LENGTH)
_OK = tl.constexpr(fmt.STATUS_OK)
_WORDS_OVERRUN = tl.constexpr(fmt.STATUS_WORDS_OVERRUN)
_WORDS_LEFT = tl.constexpr(fmt.STATUS_WORDS_LEFT)
_BAD_FINAL_STATE = tl.constexpr(fmt.STATUS_BAD_FINAL_STATE)


@triton.jit
def _encode_kernel(start_ptr, freq_ptr, words_ptr, tails_ptr, states_ptr, n, chunk, lanes, steps,
                   LP: tl.constexpr):
    c = tl.program_id(0).to(tl.int64)
    lane = tl.arange(0, LP)
    begin = c * chunk
    size = tl.minimum(n - begin, chunk)  # symbols in this chunk
    x = tl.full([LP], 1, tl.int64) << _L_BITS  # every lane starts at L
    tail = size  # words of steps already coded occupy [tail, size) of the chunk's slice
    for t in range(steps):
        j = (steps - 1 - t) * lanes + lane
        act = (lane < lanes) & (j < size)
        st = tl.load(start_ptr + begin + j, mask=act, other=0).to(tl.int64)
        fr = tl.load(freq_ptr + begin + j, mask=act, other=1).to(tl.int64)
        emit = act & ((x >> _EMIT_SHIFT) >= fr)  # x >= fr << EMIT_SHIFT, without overflow
        e = emit.to(tl.int32)
        m = tl.sum(e, axis=0)
        pos = tail - m + tl.cumsum(e, axis=0) - 1
        low = x - ((x >> _WORD_BITS) << _WORD_BITS)
        tl.store(words_ptr + begin + pos, low.to(tl.int32), mask=emit)
        tail = tail - m
        x = tl.where(emit, x >> _WORD_BITS, x)
        q = x // fr
        x = tl.where(act, (q << _PRECISION) + (x - q * fr) + st, x)
    tl.store(tails_ptr + c, tail)
    tl.store(states_ptr + c * lanes + lane, x, mask=lane < lanes)


@triton.jit
def _decode_kernel(words_ptr, base_ptr, counts_ptr, states_ptr, idx_ptr, cdf_ptr, len_ptr,
                   out_ptr, err_ptr, n, chunk, lanes, steps, row_stride, LP: tl.constexpr,
                   SEARCH_STEPS: tl.constexpr):
    c = tl.program_id(0).to(tl.int64)
    lane = tl.arange(0, LP)
    lane_ok = lane < lanes
    begin = c * chunk
    size = tl.minimum(n - begin, chunk)
    rans_l = tl.full([LP], 1, tl.int64) << _L_BITS
    x = tl.load(states_ptr + c * lanes + lane, mask=lane_ok, other=0)
    x = tl.where(lane_ok, x, rans_l)
    base = tl.load(base_ptr + c)
    count = tl.load(counts_ptr + c)
    read = count * 0
    overrun = tl.sum(lane * 0, axis=0)
    for s in range(steps):
        j = s * lanes + lane
        act = lane_ok & (j < size)
        r = tl.load(idx_ptr + begin + j, mask=act, other=0)
        row = cdf_ptr + r.to(tl.int64) * row_stride
        slot = x & _SLOT_MASK
        lo = lane * 0
        hi = tl.load(len_ptr + r, mask=act, other=_MIN_CDF_LENGTH) - 1
        for _ in tl.static_range(SEARCH_STEPS):  # largest v with cdf[v] <= slot
            mid = (lo + hi) >> 1
            go = tl.load(row + mid, mask=act, other=0).to(tl.int64) <= slot
            lo = tl.where(go, mid, lo)
            hi = tl.where(go, hi, mid)
        st = tl.load(row + lo, mask=act, other=0).to(tl.int64)
        fr = tl.load(row + lo + 1, mask=act, other=1).to(tl.int64) - st
        y = fr * (x >> _PRECISION) + slot - st
        need = act & ((y >> _L_BITS) == 0)
        e = need.to(tl.int32)
        pos = read + tl.cumsum(e, axis=0) - 1
        inside = pos < count
        overrun = overrun | tl.max((need & (pos >= count)).to(tl.int32), axis=0)
        w = tl.load(words_ptr + base + pos, mask=need & inside, other=0)
        w = w.to(tl.uint32).to(tl.int64)
        y = tl.where(need, (y << _WORD_BITS) | w, y)
        x = tl.where(act, y, x)
        read = read + tl.sum(e, axis=0)
        tl.store(out_ptr + begin + j, lo, mask=act)
    wrong_state = tl.max((lane_ok & (x != rans_l)).to(tl.int32), axis=0)
    status = tl.where(wrong_state != 0, _BAD_FINAL_STATE, _OK)
    status = tl.where(read != count, _WORDS_LEFT, status)
    status = tl.where(overrun != 0, _WORDS_OVERRUN, status)
    tl.store(err_ptr + c, status)


def _lanes_block(lanes: int) -> int:
    """The lane vector's block size: a power of two, at least 2 (blocks of 1 are fragile)."""
    return max(2, triton.next_power_of_2(lanes))


def encode(symbols: torch.Tensor, indexes: torch.Tensor, cdfs: torch.Tensor,
           lengths: torch.Tensor, offsets: torch.Tensor, lanes: int, chunk: int):
    """Same contract as `rans_numba.encode` (inputs on the kernel's device)."""
    device = symbols.device
    n = symbols.numel()
    n_chunks = -(-n // chunk)
    steps = -(-min(chunk, n) // lanes)
    start, freq, escaped = symbol_intervals(symbols, indexes, cdfs, lengths, offsets)
    start, freq = start.to(torch.int32), freq.to(torch.int32)
    words = torch.empty(n, dtype=torch.int32, device=device)
    tails = torch.empty(n_chunks, dtype=torch.int64, device=device)
    states = torch.empty((n_chunks, lanes), dtype=torch.int64, device=device)
    _encode_kernel[(n_chunks,)](
        start, freq, words, tails, states, n, chunk, lanes, steps, LP=_lanes_block(lanes),
        num_warps=1)
    begins = torch.arange(n_chunks, dtype=torch.int64, device=device) * chunk
    sizes = torch.clamp(n - begins, max=chunk)
    position = torch.arange(n, dtype=torch.int64, device=device)
    keep = (position % chunk) >= tails[position // chunk]
    packed = words[keep].cpu().numpy().view(np.uint32)
    return (packed, (sizes - tails).cpu().numpy(), states.cpu().numpy(),
            escaped.nonzero().squeeze(1))


def decode(words: np.ndarray, counts: np.ndarray, states: np.ndarray, indexes: torch.Tensor,
           cdfs: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor, lanes: int,
           chunk: int):
    """Same contract as `rans_numba.decode` (`indexes` and tables on the kernel's device)."""
    device = indexes.device
    n = indexes.numel()
    n_chunks = counts.shape[0]
    steps = -(-min(chunk, n) // lanes)
    stream = torch.from_numpy(np.concatenate([words.astype(np.uint32).view(np.int32),
                                              np.zeros(1, np.int32)])).to(device)
    count = torch.from_numpy(np.asarray(counts, np.int64)).to(device)
    base = torch.cumsum(count, 0) - count
    state = torch.from_numpy(np.ascontiguousarray(states, np.int64)).to(device)
    out = torch.empty(n, dtype=torch.int32, device=device)
    err = torch.zeros(n_chunks, dtype=torch.int32, device=device)
    cdfs = cdfs.contiguous()
    search_steps = max(1, (cdfs.shape[1] - 1).bit_length())
    _decode_kernel[(n_chunks,)](
        stream, base, count, state, indexes, cdfs, lengths, out, err, n, chunk, lanes, steps,
        cdfs.shape[1], LP=_lanes_block(lanes), SEARCH_STEPS=search_steps, num_warps=1)
    bad = torch.nonzero(err).reshape(-1)
    if bad.numel():
        chunk_at = int(bad[0])
        raise CorruptStreamError(f"rANS stream is corrupt "
                                 f"({fmt.CORRUPT_MESSAGES[int(err[chunk_at])]}: chunk {chunk_at})")
    rows = indexes.long()
    escaped = out.long() == lengths.long()[rows] - fmt.ESCAPE_FROM_END
    return (out.long() + offsets.long()[rows]).to(torch.int32), escaped.nonzero().squeeze(1)
