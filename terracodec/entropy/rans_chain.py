"""One rANS stream for all the symbol segments of a tile (tile payload version 2).

A latent codec codes a tile as several segments, each decodable only after the previous ones
(ELIC: the hyper latent, then 5 channel groups x 2 checkerboard halves). Coded as separate
streams, every segment pays its own flush: a final lane state, a header and a length, about
15 bytes, which is 40 % of an ELIC payload on a 64 x 64 chip. Chained, they pay it once:

    encoder   segments s1 .. sK (decode order) --concatenated, one merged table-->
              rans_encode, one chunk, headerless
    stream    varint n (all symbols) | varint lanes | the headerless one-chunk rANS stream
    decoder   ChainReader.read(rows of s1, table of s1) ... read(rows of sK, table of sK),
              then finish(): every symbol, word and escape used, lanes back at the start state

rANS is last-in first-out, so one encode of the concatenation is exactly the chain; decoding
resumes the same lane states span by span (`rans_numba_decoder._decode_span`, the loop every
chunk decode runs). The rows that select a segment's CDFs come from integers (the entropy
models' exact parameter paths), so the chain decodes wherever the segments do.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from terracodec.entropy.rans_format import (CORRUPT_MESSAGES, DEFAULT_LANES, MAX_CHUNK_SYMBOLS, MAX_LANES,
                                            RANS_L, STATUS_BAD_FINAL_STATE, STATUS_BAD_INDEX, STATUS_WORDS_LEFT,
                                            SYMBOLS_PER_LANE)
from terracodec.entropy.rans_stream import apply_escapes, parse, varint_decode, varint_decode_all, varint_encode
from terracodec.errors import CorruptStreamError


@dataclass
class Segment:
    """Symbols waiting to be chained: int32 `symbols` coded with rows `indexes` of a table."""

    symbols: torch.Tensor
    indexes: torch.Tensor
    cdfs: torch.Tensor
    lengths: torch.Tensor
    offsets: torch.Tensor


_DEFERRING: ContextVar[bool] = ContextVar("terracodec_deferring", default=False)


@contextmanager
def deferred_coding() -> Iterator[None]:
    """Inside, entropy models' `compress_symbols` return `Segment`s instead of bytes, for the
    caller to chain (`ImageCodec.encode_tiles`). Per thread and per task, as contextvars are."""
    token = _DEFERRING.set(True)
    try:
        yield
    finally:
        _DEFERRING.reset(token)


def deferring() -> bool:
    return _DEFERRING.get()


def chain_lanes(n: int) -> int:
    """Lanes of a chain of `n` symbols: `rans_encode`'s default rule."""
    return max(1, min(DEFAULT_LANES, n // SYMBOLS_PER_LANE))


def _merged_tables(segments: list[Segment]) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each segment's row base in one table holding every distinct table once."""
    distinct: list[Segment] = []
    bases, base_of = [], []
    for seg in segments:
        for k, other in enumerate(distinct):
            if other.cdfs is seg.cdfs and other.lengths is seg.lengths and other.offsets is seg.offsets:
                base_of.append(bases[k])
                break
        else:
            bases.append(sum(int(d.cdfs.shape[0]) for d in distinct))
            distinct.append(seg)
            base_of.append(bases[-1])
    width = max(int(d.cdfs.shape[1]) for d in distinct)
    cdfs = torch.cat([torch.nn.functional.pad(d.cdfs.cpu().to(torch.int32), (0, width - d.cdfs.shape[1]),
                                              value=1 << 16) for d in distinct])
    lengths = torch.cat([d.lengths.cpu().reshape(-1).to(torch.int32) for d in distinct])
    offsets = torch.cat([d.offsets.cpu().reshape(-1).to(torch.int32) for d in distinct])
    return base_of, cdfs, lengths, offsets


def chain_encode(segments: list[Segment], single_lane: bool = False) -> bytes:
    """One stream for `segments` (in the order the decoder reads them). `single_lane`: one lane
    whatever the length (each lane ends with its own final state, up to 9 bytes; for callers whose
    decoding time is not the coder's, e.g. TEC-TT's transformer steps); the reader must be told."""
    from terracodec.entropy.rans import rans_encode

    n = sum(int(s.symbols.numel()) for s in segments)
    if n > MAX_CHUNK_SYMBOLS:
        raise ValueError(f"a chain holds at most {MAX_CHUNK_SYMBOLS} symbols")
    lanes = 1 if single_lane else chain_lanes(n)
    head = varint_encode(np.array([n, lanes]))
    if n == 0:
        return head + varint_encode(np.array([0]))  # escape bytes 0, no chunk
    bases, cdfs, lengths, offsets = _merged_tables(segments)
    symbols = torch.cat([s.symbols.reshape(-1).cpu().to(torch.int32) for s in segments])
    indexes = torch.cat([s.indexes.reshape(-1).cpu().to(torch.int32) + b for s, b in zip(segments, bases)])
    return head + rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes, chunk_symbols=n,
                              header="none")


class ChainReader:
    """Decodes a chained stream segment by segment (`read`), then checks it ends (`finish`)."""

    def __init__(self, data: bytes, single_lane: bool = False) -> None:
        buf = np.frombuffer(memoryview(data), dtype=np.uint8)
        (n, lanes), pos = varint_decode(buf, 0, 2, "chain header")
        self.n, self.lanes = int(n), int(lanes)
        expected = 1 if single_lane else chain_lanes(self.n)
        if self.n > MAX_CHUNK_SYMBOLS or not 1 <= self.lanes <= MAX_LANES or self.lanes != expected:
            raise CorruptStreamError("corrupt tile payload: bad chained-stream header")
        layout = parse(buf[pos:], self.n, (self.lanes, max(self.n, 1)))
        self.words = layout.words.astype(np.uint32) if self.n else np.zeros(0, np.uint32)
        self.x = np.array(layout.states[0] if self.n else [RANS_L] * self.lanes, np.int64)
        self.escapes = varint_decode_all(layout.escapes, "escape section") if self.n else np.zeros(0, np.int64)
        self.done = self.ptr = self.lane = self.escaped = 0
        self._tables: dict[int, tuple] = {}  # id(cdfs) -> its arrays and bucket table, for this tile

    def _decoder_tables(self, cdfs: torch.Tensor, lengths: torch.Tensor, offsets: torch.Tensor) -> tuple:
        """The numba decoder's arrays of a table, built once per tile (ELIC reads 10 segments
        with the same table); the entry keeps `cdfs` alive, so its id stays its own."""
        from terracodec.entropy.rans_numba import _bucket_shift
        from terracodec.entropy.rans_numba_decoder import _bucket_table

        hit = self._tables.get(id(cdfs))
        if hit is None or hit[0] is not cdfs or hit[1] is not lengths or hit[2] is not offsets:
            table, lens = cdfs.cpu().numpy(), lengths.cpu().numpy().astype(np.int64)
            shift = _bucket_shift(lens.shape[0])
            hit = (cdfs, lengths, offsets, table, lens, offsets.cpu().numpy().astype(np.int64), shift,
                   _bucket_table(table, lens, shift))
            self._tables[id(cdfs)] = hit
        return hit[3:]

    def read(self, indexes: torch.Tensor, cdfs: torch.Tensor, lengths: torch.Tensor,
             offsets: torch.Tensor) -> torch.Tensor:
        """The next `indexes.numel()` symbols (int32, on `indexes`' device), rows `indexes` of
        the (validated, int32) table `cdfs` / `lengths` / `offsets`."""
        from terracodec.entropy.rans_numba_decoder import _decode_span

        k = int(indexes.numel())
        if self.done + k > self.n:
            raise CorruptStreamError("corrupt tile payload: the chained stream holds fewer symbols "
                                     "than the model decodes")
        idx = indexes.reshape(-1).cpu().to(torch.int32).numpy()
        table, lens, offs, shift, lut = self._decoder_tables(cdfs, lengths, offsets)
        out, esc = np.empty(k, np.int32), np.empty(k, np.int64)
        self.ptr, self.lane, n_esc, code = _decode_span(
            self.words, self.ptr, self.words.shape[0], self.x, self.lane, self.lanes, 0, k, idx, table,
            lens, offs, lut, shift, out, esc, 0)
        if code == STATUS_BAD_INDEX:
            raise ValueError(f"indexes must be in [0, {lens.shape[0]})")
        if code:
            raise CorruptStreamError(f"rANS stream is corrupt ({CORRUPT_MESSAGES[code]})")
        raw = self.escapes[self.escaped:self.escaped + n_esc]
        if raw.size != n_esc:
            raise CorruptStreamError("rANS stream is corrupt: the escape section is too short")
        self.escaped += n_esc
        symbols = torch.from_numpy(out)
        apply_escapes(symbols, torch.from_numpy(idx), lengths.cpu(), offsets.cpu(), torch.from_numpy(esc[:n_esc]), raw)
        self.done += k
        return symbols.to(indexes.device)

    def finish(self) -> None:
        """CorruptStreamError unless the stream ended exactly where the model stopped reading."""
        if self.done != self.n:
            raise CorruptStreamError("corrupt tile payload: the chained stream holds more symbols than "
                                     "the model decodes")
        if self.ptr != self.words.shape[0] or self.escaped != self.escapes.size:
            raise CorruptStreamError(f"rANS stream is corrupt ({CORRUPT_MESSAGES[STATUS_WORDS_LEFT]})")
        if bool((self.x != RANS_L).any()):
            raise CorruptStreamError(f"rANS stream is corrupt ({CORRUPT_MESSAGES[STATUS_BAD_FINAL_STATE]})")


__all__ = ["ChainReader", "Segment", "chain_encode", "chain_lanes", "deferred_coding", "deferring"]
