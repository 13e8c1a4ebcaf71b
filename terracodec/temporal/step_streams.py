"""A TEC-TT tile's coded steps <-> its payload: every step of a frame in one rANS stream.

A frame's windows are coded in `k` autoregressive steps (16, or a FlexTEC's quality k). The
encoder knows every step's symbols before it writes; the decoder learns step t's table rows
only after decoding steps < t. rANS is last-in first-out, so one encode of the steps'
concatenation decodes span by span (`entropy.rans_chain`):

    encoder  StepWriter.add(symbols, rows) for steps 0 .. k-1 (the windows that send the step)
             payload(k): all symbols in step order, one sub-table of the rows they use
    payload  version 4: u8 4 | u8 k | varint n | varint lanes (1) | one headerless rANS stream
             (just u8 4 | u8 k when nothing is sent: k = 0, or every token filled)
    decoder  step_reader(payload) -> (k, reader); reader.read(model, rows) once per step,
             in order, then reader.finish(): the stream ended exactly there

Why one stream: each stream ends with its coder's final state (a 63-bit varint) and two length
fields. Version 1 payloads (written before, still decoded: `SeparateSteps`) held one stream per
step, 16 per tile and frame: real bits were 1.5-2 % above the model's estimate on 256 px frames
and 9-11 % on 64 px chips (benchmarks/flextec.py); chained, a tile-frame pays one flush. One
lane: the image models' chains use up to 4 (`rans_chain.chain_lanes`) for the coder's
instruction-level parallelism, which a TT's decoding time (its transformer steps) does not
notice, while each lane's final state cost up to 0.6 % of a 256 px frame's bits.

The rows come from the integer entropy path on both sides; the sub-tables differ (the encoder's
holds every step's rows, the decoder's one step's) but hold the same CDF rows, and a symbol's
code depends only on its row's contents.
"""

from __future__ import annotations

from typing import Optional, Union

import torch
from torch import Tensor

from terracodec.entropy.location_scale import LocationScaleGaussianConditional
from terracodec.entropy.rans import _check_tables, rans_decode
from terracodec.entropy.rans_chain import ChainReader, Segment
from terracodec.errors import CorruptStreamError
from terracodec.models.payload import PAYLOAD_VERSION, STEPS_PAYLOAD_VERSION, pack_steps, unpack_steps

Table = LocationScaleGaussianConditional


def subtable(model: Table, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(indexes into the sub-table, cdfs, lengths, offsets): only the rows in `rows`, which keeps
    the coder's per-call table checks cheap (a step uses a few hundred of 25600 rows)."""
    used, inverse = torch.unique(rows.reshape(-1).cpu(), return_inverse=True)
    on = used.to(model.quantized_cdf.device)  # the tables live with the model
    lengths = model.cdf_length[on].cpu()
    cdf = model.quantized_cdf[on, : int(lengths.max())].cpu()
    return inverse.to(torch.int32), cdf, lengths, model.offset[on].cpu()


class StepWriter:
    """Collects one tile's steps (in order) and writes its version 4 payload."""

    def __init__(self, model: Table) -> None:
        self.model = model
        self.symbols: list[Tensor] = []
        self.rows: list[Tensor] = []

    def add(self, symbols: Tensor, rows: Tensor) -> None:
        """The next step's int32 `symbols`, coded with table rows `rows` (same shape)."""
        self.symbols.append(symbols.reshape(-1).cpu().to(torch.int32))
        self.rows.append(rows.reshape(-1).cpu())

    def payload(self, k: int) -> bytes:
        """`u8 4 | u8 k | chain` of every step added (k: the steps the frame sends)."""
        rows = torch.cat(self.rows) if self.rows else torch.zeros(0, dtype=torch.int64)
        if rows.numel() == 0:
            return pack_steps(k, [])
        index, cdf, lengths, offsets = subtable(self.model, rows)
        return pack_steps(k, [Segment(torch.cat(self.symbols), index, cdf, lengths, offsets)])


class ChainedSteps:
    """The steps of a version 4 payload, read in order from its one stream."""

    def __init__(self, reader: Optional[ChainReader]) -> None:
        self.reader = reader  # None: the payload sends nothing

    def read(self, model: Table, rows: Tensor) -> Tensor:
        """The next step's symbols (int32, shaped like `rows`, on the CPU)."""
        if rows.numel() == 0:
            return torch.zeros(rows.shape, dtype=torch.int32)
        if self.reader is None:
            raise CorruptStreamError("corrupt TEC-TT payload: no stream, but the model decodes symbols")
        index, *table = subtable(model, rows)
        cdf, lengths, offsets = _check_tables(*table, torch.device("cpu"))
        return self.reader.read(index, cdf, lengths, offsets).reshape(rows.shape)

    def finish(self) -> None:
        if self.reader is not None:
            self.reader.finish()


class SeparateSteps:
    """The steps of a version 1 payload: one headerless stream each (1 lane, 1 chunk; the
    decoder is given the symbol count), an empty one for a step whose windows are all filled."""

    def __init__(self, streams: list[bytes]) -> None:
        self.streams, self.step = streams, 0

    def read(self, model: Table, rows: Tensor) -> Tensor:
        data = self.streams[self.step]
        self.step += 1
        if rows.numel() == 0:
            if len(data):
                raise CorruptStreamError("corrupt TEC-TT payload: a step with no tokens to decode holds bytes")
            return torch.zeros(rows.shape, dtype=torch.int32)
        index, cdf, lengths, offsets = subtable(model, rows)
        layout = {"header": "none", "lanes": 1, "chunk_symbols": rows.numel()}
        return rans_decode(data, index, cdf, lengths, offsets, **layout).reshape(rows.shape)

    def finish(self) -> None:
        pass


StepReader = Union[ChainedSteps, SeparateSteps]


def step_reader(data: bytes) -> tuple[int, StepReader]:
    """(k, the reader of its steps) of a tile payload, version 4 or 1."""
    version, k, body = unpack_steps(data)
    if version == STEPS_PAYLOAD_VERSION:
        return k, ChainedSteps(ChainReader(body, single_lane=True) if len(body) else None)
    assert version == PAYLOAD_VERSION
    return k, SeparateSteps(body)


__all__ = ["ChainedSteps", "SeparateSteps", "StepReader", "StepWriter", "step_reader", "subtable"]
