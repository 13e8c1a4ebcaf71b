"""Autoregressive coding of one frame with TEC-TT's entropy model and a key/value cache.

A frame's latent is cut into windows of 16 tokens; token `t` of every window is coded at step
`t` (t = 0..15) with the Gaussian that the decoder predicts from tokens `< t` and the memory
(the joint encoder's output for this frame). Encoder and decoder run the *same* loop
(`_autoregress`): the memory is computed once per frame, the cross-attention keys/values once
per frame and layer, and each step feeds one new row per window through the decoder (KV cache)
and both heads. All windows of all tiles of the batch go through each step together.

Streams: each step of each tile is one rANS stream (`terracodec.entropy.rans`, 1 lane, 1 chunk),
so a tile's frame is 16 streams (`ImageCodec` payload). A step holds only a few hundred to a few
thousand symbols, so the stream header fields that the decoder knows anyway (format version,
symbol count, lanes, chunk size: 4 to 6 bytes) are dropped and rebuilt before decoding
(`compact_stream`, `expand_stream`); what remains is the escape-section length, the word count,
the final coder state, the words and the escapes. The coder gets a sub-table holding only the
rows that the step uses (a few hundred of the 25600), which keeps its per-call table checks
cheap; the coded bits are those of the full table.

Determinism (the decoder must rebuild the encoder's table rows bit for bit):

* Both sides evaluate the same operations on the same data in the same order: the decoded
  tokens equal the encoder's quantised ones, and the memory comes from previously decoded
  latents.
* Results must not depend on which other rows share a call (tiles batched differently at
  encode and decode) nor on the thread count. Every operation of the transformer is row-local
  (Linear, LayerNorm, GELU, softmax, batched attention per window); the CPU GEMM back-ends
  (oneDNN/MKL) compute a row identically whatever the other rows once a matrix has at least
  a few rows, but switch kernels (and summation order) for tiny ones, so the decoder's batch is
  padded to `MIN_ROWS` rows (`TemporalEntropyModel.start_decoding`).
  `tests/test_temporal_coding.py` checks 1 vs 2 threads and 1 vs 3 tiles per batch.
* The last step, parameters -> table row and integer centre, is exact integer/IEEE arithmetic
  (`LocationScaleGaussianConditional.quantize_parameters`).

Scope: this is bit-exactness on one platform (same CPU kind and BLAS). Float32 GEMMs on another
CPU family or a GPU sum in another order, so a stream coded there may not decode here; making
the 225 M-parameter transformer exact everywhere needs fixed-point evaluation (as
`terracodec.layers.fixedpoint` does for the image codecs' small parameter networks; float64
integer GEMMs, roughly twice the cost). Not done.

Speed: a step is ~100 small operations on a few rows; their parallel regions cost more than
they save, so steps with fewer than `SERIAL_ROWS` rows run on one intra-op thread (the results
do not depend on it). The context encoders, big GEMMs, use the caller's thread count.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from terracodec.entropy.location_scale import LocationScaleGaussianConditional
from terracodec.entropy.rans import rans_decode, rans_encode, varint_decode, varint_encode
from terracodec.errors import CorruptStreamError
from terracodec.temporal.entropy_model import TemporalEntropyModel
from terracodec.temporal.windows import current_windows, merge_windows

StepCoder = Callable[[int, Tensor, Tensor], Tensor]
RANS_VERSION = 1  # the rANS stream layout that compact_stream / expand_stream know
SERIAL_ROWS = 256  # decoder steps with fewer rows (windows) run on one CPU thread


def _subtable(
    model: LocationScaleGaussianConditional, rows: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(indexes into the sub-table, cdfs, lengths, offsets): only the rows in `rows`."""
    used, inverse = torch.unique(rows.reshape(-1).cpu(), return_inverse=True)
    on = used.to(model.quantized_cdf.device)  # the tables live with the model
    lengths = model.cdf_length[on].cpu()
    cdf = model.quantized_cdf[on, : int(lengths.max())].cpu()
    return inverse.to(torch.int32), cdf, lengths, model.offset[on].cpu()


def compact_stream(stream: bytes, n: int) -> bytes:
    """A 1-lane, 1-chunk rANS stream of `n` symbols without its version, count, lanes and chunk
    fields (the rANS header: `u8 version | varint n, lanes, chunk, escape bytes | ...`)."""
    buf = np.frombuffer(stream, np.uint8)
    fields, pos = varint_decode(buf, 1, 4, "header")
    if buf[0] != RANS_VERSION or fields[:3].tolist() != [n, 1, n]:
        raise ValueError("not a 1-lane, 1-chunk rANS stream of the expected length")
    return varint_encode(fields[3:]) + stream[pos:]


def expand_stream(data: bytes, n: int) -> bytes:
    """Inverse of `compact_stream`: the full rANS stream (checked by `rans_decode`)."""
    return bytes([RANS_VERSION]) + varint_encode(np.array([n, 1, n], np.int64)) + bytes(data)


def encode_symbols(model: LocationScaleGaussianConditional, symbols: Tensor, rows: Tensor) -> bytes:
    """Compact rANS stream of int32 `symbols` (at least one) coded with table rows `rows`."""
    index, cdf, lengths, offsets = _subtable(model, rows)
    n = symbols.numel()
    stream = rans_encode(symbols.reshape(-1).cpu(), index, cdf, lengths, offsets, lanes=1, chunk_symbols=n)
    return compact_stream(stream, n)


def decode_symbols(model: LocationScaleGaussianConditional, data: bytes, rows: Tensor) -> Tensor:
    """Inverse of `encode_symbols` (int32, shaped like `rows`, on the CPU)."""
    index, cdf, lengths, offsets = _subtable(model, rows)
    return rans_decode(expand_stream(data, rows.numel()), index, cdf, lengths, offsets).reshape(rows.shape)


@contextmanager
def _threads_for_rows(rows: int) -> Iterator[None]:
    """One intra-op thread while the steps are small (fewer than `SERIAL_ROWS` rows): each step is
    ~100 small operations whose parallel regions cost more than they save (and, on a busy
    machine, wait for a time slice per region: 10x slower measured on a shared 2-core host).
    Results do not depend on the thread count (tested), so this only changes speed."""
    old = torch.get_num_threads()
    if rows >= SERIAL_ROWS or old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _autoregress(
    model: TemporalEntropyModel, memory: Tensor, windows: int, code: StepCoder
) -> tuple[Tensor, Tensor]:
    """Run the 16 steps; `code(t, means, scales)` returns token t `[windows, C]` quantised.
    Returns (tokens `[windows, 16, C]`, features `[windows, 16, d]`)."""
    cache = model.start_decoding(memory, windows)
    token, tokens, features = None, [], []
    with _threads_for_rows(windows if memory.device.type == "cpu" else SERIAL_ROWS):
        for t in range(model.seq_len_dec):
            means, scales, feats = model.step(token, cache)
            token = code(t, means[:windows], scales[:windows])
            tokens.append(token)
            features.append(feats[:windows])
    return torch.stack(tokens, 1), torch.stack(features, 1)


def encode_frame(
    model: TemporalEntropyModel, y: Tensor, memory: Tensor
) -> tuple[list[list[bytes]], Tensor, Tensor]:
    """Code latents `y [B, C, h, w]` -> (streams `[step][tile]`, y_hat, features `[B, d, h, w]`)."""
    model.bottleneck.update()
    b, _, h, w = y.shape
    windows = current_windows(y, model.window_current)
    per_tile = windows.shape[0] // b
    streams: list[list[bytes]] = []

    def code(t: int, means: Tensor, scales: Tensor) -> Tensor:
        symbols, rows, centres = model.bottleneck.quantize_parameters(windows[:, t], scales, means)
        tiles = [slice(i * per_tile, (i + 1) * per_tile) for i in range(b)]
        streams.append([encode_symbols(model.bottleneck, symbols[s], rows[s]) for s in tiles])
        return (symbols.to(torch.int64) + centres.to(torch.int64)).to(y.dtype)

    tokens, features = _autoregress(model, memory, windows.shape[0], code)
    size = model.window_current
    return streams, merge_windows(tokens, h, w, size), merge_windows(features, h, w, size)


def decode_frame(
    model: TemporalEntropyModel, streams: Sequence[Sequence[bytes]], memory: Tensor,
    shape: tuple[int, int, int, int],
) -> tuple[Tensor, Tensor]:
    """Inverse of `encode_frame`: (y_hat `[B, C, h, w]`, features `[B, d, h, w]`)."""
    model.bottleneck.update()
    b, c, h, w = shape
    size = model.window_current
    per_tile = -(-h // size) * -(-w // size)
    if len(streams) != model.seq_len_dec or any(len(s) != b for s in streams):
        raise CorruptStreamError("corrupt TEC-TT payload: wrong number of streams")

    def code(t: int, means: Tensor, scales: Tensor) -> Tensor:
        _, rows, centres = model.bottleneck.quantize_parameters(None, scales, means)
        tiles = [slice(i * per_tile, (i + 1) * per_tile) for i in range(b)]
        symbols = torch.cat(
            [decode_symbols(model.bottleneck, streams[t][i], rows[s]) for i, s in enumerate(tiles)]
        ).to(centres.device)
        return (symbols.to(torch.int64) + centres.to(torch.int64)).to(memory.dtype)

    tokens, features = _autoregress(model, memory, b * per_tile, code)
    return merge_windows(tokens, h, w, size), merge_windows(features, h, w, size)
