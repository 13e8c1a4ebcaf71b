"""Byte layout of rANS streams: header, varints, escape section; parsing with every check.

Why a module of its own: the back-ends produce and consume the same arrays (words, per-chunk
word counts, per-lane states, escape positions); turning those into bytes and back, and
refusing any stream whose layout does not add up, is one job, apart from the API's input
checks and back-end choice (`rans.py`). The numbers come from `rans_format.py`.

Headered layout (`header="full"`, version 1); `varint` is unsigned LEB128, canonical, at most
9 bytes:

    u8       version (= 1)
    varint   N, the number of symbols (must equal len(indexes) at decode time)
    varint   lanes            (1 .. 256)
    varint   chunk_symbols    (1 .. 2**30)
    varint   escape-section length in bytes
    varint   word count of each chunk          x n_chunks = ceil(N / chunk_symbols)
    varint   final state - L of each lane      x n_chunks * lanes (chunk-major)
    u32 LE   the words of chunk 0, chunk 1, ... each chunk in decode order
    bytes    escape section: one varint per escaped symbol, in symbol order; for a table value v
             of a row whose escape symbol is m: 2 * (v - m) when v >= m, -2 * v - 1 when v < 0

Headerless layout (`header="none"`): the same bytes from the escape-section length on, without
the version byte, N, lanes and chunk_symbols, which the decoder is given instead (N is
len(indexes)). For callers that store many short streams whose layout they know (TEC-TT's
autoregressive steps: 4 to 6 bytes less per stream).

The parser checks the whole layout against the byte length before anyone touches the words (a
chunk holds at most one word per symbol; the sections must add up to the exact length), and
raises `CorruptStreamError` for any truncation, trailing bytes, malformed varint or impossible
field, in either mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from terracodec.entropy.rans_format import (ESCAPE_FROM_END, FORMAT_VERSION, HEADER_FIELDS,
                                            HEADERLESS_OMITS, MAX_CHUNK_SYMBOLS, MAX_LANES,
                                            MAX_VARINT_BYTES, RANS_L, SYMBOL_MAX, SYMBOL_MIN,
                                            WORD_BYTES, WORD_DTYPE)
from terracodec.errors import CorruptStreamError

_STATE_MAX = (1 << 63) - 1 - RANS_L  # largest stored state - L whose state fits int64


# --------------------------------------------------------------------------- header


def stream_head(n: int, lanes: int, chunk: int, escape_bytes: int, counts: np.ndarray,
                states: np.ndarray, headerless: bool) -> bytes:
    """Everything before the words: header fields (headered only), word counts, lane states."""
    layout = [] if headerless else [n, lanes, chunk]
    fields = np.concatenate([np.array(layout + [escape_bytes], np.int64),
                             np.asarray(counts, np.int64).reshape(-1),
                             np.asarray(states, np.int64).reshape(-1) - RANS_L])
    return (b"" if headerless else bytes([FORMAT_VERSION])) + varint_encode(fields)


@dataclass
class Layout:
    """A parsed, validated stream: views into the caller's buffer, no copies."""

    n: int
    lanes: int = 1
    chunk: int = 1
    counts: np.ndarray | None = None  # int64 words per chunk
    states: np.ndarray | None = None  # int64 [chunks, lanes], the decoder's initial states
    words: np.ndarray | None = None  # uint32, every chunk's words in decode order
    escapes: np.ndarray | None = None  # uint8, the escape section


def parse(buf: np.ndarray, expected_n: int, known: tuple[int, int] | None = None) -> Layout:
    """Parse a headered stream (`known` None) or a headerless one of layout `known` = (lanes,
    chunk_symbols), holding `expected_n` symbols."""
    if known is None:
        if buf.size == 0:
            raise CorruptStreamError("rANS stream is empty")
        if int(buf[0]) != FORMAT_VERSION:
            raise CorruptStreamError(f"unsupported rANS stream version {int(buf[0])} "
                                     f"(expected {FORMAT_VERSION})")
        fields, pos = varint_decode(buf, 1, len(HEADER_FIELDS), "header")
        n, lanes, chunk, escape_bytes = (int(f) for f in fields)
        if n != expected_n:
            raise CorruptStreamError(f"rANS stream holds {n} symbols but {expected_n} indexes "
                                     "were given")
        if not 1 <= lanes <= MAX_LANES or not 1 <= chunk <= MAX_CHUNK_SYMBOLS:
            raise CorruptStreamError(f"rANS stream header is corrupt (lanes={lanes}, "
                                     f"chunk_symbols={chunk})")
    else:
        (lanes, chunk), n = known, expected_n
        fields, pos = varint_decode(buf, 0, len(HEADER_FIELDS) - len(HEADERLESS_OMITS), "header")
        escape_bytes = int(fields[-1])
    n_chunks = -(-n // chunk)
    # Every remaining varint is at least one byte: bound the counts before reading them.
    if pos + n_chunks * (1 + lanes) + escape_bytes > buf.size:
        raise CorruptStreamError("rANS stream is truncated (header)")
    if n == 0:
        if pos != buf.size:
            raise CorruptStreamError("rANS stream has trailing bytes")
        return Layout(0)
    counts, pos = varint_decode(buf, pos, n_chunks, "chunk word counts")
    states, pos = varint_decode(buf, pos, n_chunks * lanes, "lane states")
    sizes = np.minimum(chunk, n - np.arange(n_chunks, dtype=np.int64) * chunk)
    if bool((counts > sizes).any()):
        raise CorruptStreamError("rANS stream header is corrupt (a chunk has more words than "
                                 "symbols)")
    if bool((states > _STATE_MAX).any()):
        raise CorruptStreamError("rANS stream header is corrupt (lane state out of range)")
    total_words = int(counts.sum())
    end = pos + WORD_BYTES * total_words + escape_bytes
    if end != buf.size:
        kind = "truncated" if end > buf.size else "followed by trailing bytes"
        raise CorruptStreamError(f"rANS stream is {kind} (expected {end} bytes, got {buf.size})")
    words = buf[pos:pos + WORD_BYTES * total_words].view(WORD_DTYPE)
    escapes = buf[pos + WORD_BYTES * total_words:end]
    return Layout(n, lanes, chunk, counts, (states + RANS_L).reshape(n_chunks, lanes), words,
                  escapes)


# --------------------------------------------------------------------------- escapes


def escape_section(symbols: torch.Tensor, indexes: torch.Tensor, lengths: torch.Tensor,
                   offsets: torch.Tensor, positions: torch.Tensor) -> bytes:
    """The exact values of the escaped symbols at `positions`, as varints."""
    if positions.numel() == 0:
        return b""
    pos = positions.to(symbols.device)
    rows = indexes[pos].long()
    v = symbols[pos].long() - offsets[rows].long()
    m = lengths[rows].long() - ESCAPE_FROM_END
    raw = torch.where(v < 0, -2 * v - 1, 2 * (v - m))
    return varint_encode(raw.cpu().numpy())


def fill_escapes(symbols: torch.Tensor, indexes: torch.Tensor, lengths: torch.Tensor,
                 offsets: torch.Tensor, positions: torch.Tensor, section: np.ndarray) -> None:
    """Write the exact values of the escaped symbols in place."""
    n_esc = positions.numel()
    raw = varint_decode_all(section, "escape section")
    if raw.size != n_esc:
        raise CorruptStreamError(f"rANS stream is corrupt: {n_esc} escaped symbols but the "
                                 f"escape section holds {raw.size} values")
    apply_escapes(symbols, indexes, lengths, offsets, positions, raw)


def apply_escapes(symbols: torch.Tensor, indexes: torch.Tensor, lengths: torch.Tensor,
                  offsets: torch.Tensor, positions: torch.Tensor, raw: np.ndarray) -> None:
    """Write the escaped symbols at `positions` in place from their decoded varints `raw`
    (one each, in order): the inverse of `escape_section`."""
    if positions.numel() == 0:
        return
    pos = positions.to(symbols.device)
    rows = indexes[pos].long()
    m = lengths[rows].long() - ESCAPE_FROM_END
    r = torch.from_numpy(raw).to(symbols.device)
    v = torch.where(r % 2 == 1, -(r + 1) // 2, m + r // 2)
    value = v + offsets[rows].long()
    if int(value.min()) < SYMBOL_MIN or int(value.max()) > SYMBOL_MAX:
        raise CorruptStreamError("rANS stream is corrupt: an escaped value is outside int32")
    symbols[pos] = value.to(torch.int32)


# --------------------------------------------------------------------------- varints


def varint_encode(values: np.ndarray) -> bytes:
    """Unsigned LEB128 of non-negative values below 2**63, vectorised."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if v.size == 0:
        return b""
    if int(v.min()) < 0:
        raise ValueError("varints hold non-negative values only")
    nbytes = np.ones(v.shape, np.int64)
    for k in range(1, MAX_VARINT_BYTES):
        nbytes += (v >> (7 * k)) > 0
    owner = np.repeat(np.arange(v.size), nbytes)
    first = np.repeat(np.cumsum(nbytes) - nbytes, nbytes)
    pos = np.arange(owner.size) - first
    out = (v[owner] >> (7 * pos)) & 0x7F
    out |= (pos < nbytes[owner] - 1).astype(np.int64) << 7
    return out.astype(np.uint8).tobytes()


def varint_decode(buf: np.ndarray, offset: int, count: int, what: str) -> tuple[np.ndarray, int]:
    """Read `count` varints from `buf[offset:]` -> (int64 values, offset after them)."""
    if count == 0:
        return np.zeros(0, np.int64), offset
    window = buf[offset:offset + MAX_VARINT_BYTES * count]
    ends = np.flatnonzero(window < 0x80)[:count]
    if ends.size < count:
        raise CorruptStreamError(f"rANS stream is truncated (in the {what})")
    return _varints_in(window[:int(ends[-1]) + 1], ends, what), offset + int(ends[-1]) + 1


def varint_decode_all(section: np.ndarray, what: str) -> np.ndarray:
    """Every varint of `section`, which must end exactly at a varint's last byte."""
    if section.size == 0:
        return np.zeros(0, np.int64)
    ends = np.flatnonzero(section < 0x80)
    if ends.size == 0 or int(ends[-1]) != section.size - 1:
        raise CorruptStreamError(f"rANS stream is corrupt: the {what} ends inside a value")
    return _varints_in(section, ends, what)


def _varints_in(seg: np.ndarray, ends: np.ndarray, what: str) -> np.ndarray:
    starts = np.concatenate([[0], ends[:-1] + 1])
    sizes = ends - starts + 1
    if int(sizes.max()) > MAX_VARINT_BYTES or bool(((sizes > 1) & (seg[ends] == 0)).any()):
        raise CorruptStreamError(f"rANS stream is corrupt: malformed number in the {what}")
    pos = np.arange(seg.size) - np.repeat(starts, sizes)
    parts = (seg.astype(np.int64) & 0x7F) << (7 * pos)
    return np.bitwise_or.reduceat(parts, starts)
