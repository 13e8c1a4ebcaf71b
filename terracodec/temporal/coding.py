"""Autoregressive coding of one frame with TEC-TT's entropy model and a key/value cache.

A frame's latent is cut into windows of 16 tokens; token `t` of every window is coded at step
`t` (t = 0..15) with the Gaussian that the decoder predicts from tokens `< t` and the memory
(the joint encoder's output for this frame).

Context (`context_tasks`): the per-frame encoding of the newest latent, the joint encoder and
the memory's keys/values for every decoder layer, computed once per frame in chunks of
`CONTEXT_WINDOWS` windows (windows are independent) on `terracodec.parallel`'s
threads; the encoder runs its analysis transform beside them.

Decoder (`decode_frame`): 16 steps; each feeds one new row per window through the decoder (KV
cache) and both heads, all windows of all tiles of the batch together, then decodes the step's
symbols, which are the next step's input.

Encoder (`encode_frame`): the tokens are known, so all 16 go through the decoder at once
(`TemporalEntropyModel.predict_cached`: one GEMM per weight instead of 16, chunks of windows in
parallel), fed with the rounded latent. The decoder will feed the coded values `round(y - c) +
c` (`c`: the integer centre of the predicted mean) instead, which equal `round(y)` except at
exact ties with an odd centre; the encoder checks that they are equal and otherwise codes the
frame step by step as the decoder decodes it (`_encode_steps`).

Streams: a tile's frame is one payload whose rANS stream holds every step it sends
(`step_streams`: the encoder's `StepWriter`, the decoder's `step_reader`; payloads written
before it, one stream per step, still decode).

Determinism (the decoder must rebuild the encoder's table rows bit for bit):

* Both sides evaluate the same operations on the same data: the decoded tokens equal the
  encoder's quantised ones, and the memory comes from previously decoded latents.
* Results must not depend on which other rows share a call (tiles batched differently at
  encode and decode, windows chunked, 16 tokens of a window at once at the encoder and one at
  a time at the decoder) nor on the thread count. Every operation of the transformer is
  row-local (Linear, LayerNorm, GELU, softmax, attention one token at a time per window and
  head); a single-threaded CPU GEMM (oneDNN/MKL) computes a row identically whatever the other
  rows once a matrix has at least a few rows, but switches kernels (and summation order) for
  tiny ones, so the decoder's one-token batch is padded to `MIN_ROWS` rows
  (`TemporalEntropyModel.start_cache`). A multi-threaded GEMM may split the reduction between
  threads, so every transformer GEMM of the coding path runs on one intra-op thread, inside a
  task of `parallel.run_tasks` (chunks of windows). Elementwise kernels (GELU) vectorise in
  blocks of 16 floats; widths that are multiples of 16 keep every row in the vector path.
  `tests/test_temporal_coding.py` checks 1 vs 2 threads, 1 vs 3 tiles per batch, and the
  encoder's one-pass predictions against 16 decoder steps.
* The last step, parameters -> table row and integer centre, is exact integer/IEEE arithmetic
  (`LocationScaleGaussianConditional.quantize_parameters`).

Scope: streams are coded with a portable twin of the entropy model (`entropy_paths`: `int8-v2`
now, `exact-v1` before), whose every result is the same bits on every machine; the row-locality,
padding and one-thread rules above then only matter for streams written before them (float32
path, recorded with the platform that coded them: `coder_platform()`), which decode bit-exactly
only there. A portable twin's decoder steps need no padding and share a step's windows among
all threads (`_autoregress`).

Speed: a decoder step is ~100 small operations on a few rows; it runs as chunks of
`STEP_WINDOWS` windows on `parallel.run_tasks`' threads, as does everything else.
"""

from __future__ import annotations

import platform
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Optional, Sequence

import torch
from torch import Tensor

from terracodec.errors import CorruptStreamError
from terracodec.temporal.entropy_model import TemporalEntropyModel
from terracodec.parallel import budget, chunks, run_tasks
from terracodec.temporal.step_streams import StepReader, StepWriter

StepCoder = Callable[[int, Tensor, Tensor], Tensor]
SERIAL_ROWS = 256  # quantising steps' parameters: fewer rows run on one CPU thread
STEP_WINDOWS = 32  # windows per task of a decoder step (rows per GEMM: at most this many)
CONTEXT_WINDOWS = 4  # windows per context task (256 tokens per GEMM in the per-frame encoder)
DECODER_WINDOWS = 8  # windows per task of the encoder's one-pass prediction (128 rows per GEMM)


def coder_platform() -> str:
    """What the TT's float32 entropy parameters depend on besides the weights: the CPU's vendor
    and vector instruction set (the kernels the BLAS runs) and the torch build (its BLAS). Streams
    decode bit-exactly where this is the same; measured: streams coded on an AMD EPYC (AVX2,
    torch 2.13) did not decode on an Intel Xeon (AVX512, torch 2.11), docs/DESIGN.md section 5."""
    vendor = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            vendor = next((line.split(":", 1)[1].strip() for line in f if line.startswith("vendor_id")), vendor)
    except OSError:
        pass
    return f"{platform.machine()} {vendor} {torch.backends.cpu.get_cpu_capability()} torch {torch.__version__}"


@contextmanager
def _threads_for_rows(rows: int) -> Iterator[None]:
    """One intra-op thread while the encoder's parameter quantisation is small (fewer than
    `SERIAL_ROWS` windows): its many small elementwise operations' parallel regions cost more than
    they save (and, on a busy machine, wait for a time slice per region: 10x slower measured on a
    shared 2-core host). That arithmetic is exact, so this only changes speed."""
    old = torch.get_num_threads()
    if rows >= SERIAL_ROWS or old == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class FrameContext:
    """A frame's memory keys/values for every decoder layer, `[windows, h, Lm, d/h]`, or one
    window's `[1, h, Lm, d/h]` shared by all (the first frame's constant context)."""

    keys_values: list[tuple[Tensor, Tensor]]

    def rows(self, s: slice) -> list[tuple[Tensor, Tensor]]:
        """The keys/values of windows `s` (the shared window as it is)."""
        if self.keys_values[0][0].shape[0] == 1:
            return self.keys_values
        return [(k[s], v[s]) for k, v in self.keys_values]


ContextTasks = tuple[list[Callable[[], tuple]], Callable[[list], tuple[Optional[Tensor], FrameContext]]]


def context_tasks(model: TemporalEntropyModel, encoded: Sequence[Tensor], windows: Optional[Tensor]) -> ContextTasks:
    """Tasks for a frame's context, and the function that assembles their results into (the new
    per-frame encoding of `windows` or None, the `FrameContext`). `encoded`: the previous
    per-frame encodings `[n, 64, d]` (oldest first); `windows`: the context windows of the
    newest latent, to encode (or None)."""
    n = windows.shape[0] if windows is not None else encoded[0].shape[0]

    def task(s: slice) -> tuple[Optional[Tensor], list[tuple[Tensor, Tensor]]]:
        seqs = [e[s] for e in encoded]
        new = model.encode_windows(windows[s]) if windows is not None else None
        if new is not None:
            seqs.append(new)
        return new, model.memory_keys_values(model.joint_context(seqs[-model.context_len :]))

    def finish(results: list) -> tuple[Optional[Tensor], FrameContext]:
        new = torch.cat([r[0] for r in results]) if windows is not None else None
        layers = len(results[0][1])
        kv = [tuple(torch.cat([r[1][i][j] for r in results]) for j in (0, 1)) for i in range(layers)]
        return new, FrameContext(kv)  # type: ignore[arg-type]

    return [partial(task, s) for s in chunks(n, CONTEXT_WINDOWS)], finish


def _autoregress(model: TemporalEntropyModel, context: FrameContext, windows: int, code: StepCoder) -> Tensor:
    """Run the 16 steps; `code(t, means, scales)` returns token t `[windows, C]` quantised.
    Returns the features `[windows, 16, d]` (the tokens are `code`'s business).

    Each step runs chunks of `STEP_WINDOWS` windows as tasks on `parallel.run_tasks` (one
    intra-op thread each), never one multi-threaded GEMM over all windows: a BLAS may split a
    GEMM's reduction between threads, and then a row's sums depend on the thread count
    (measured on a 16-core host: a 1024x1024 frame of the published model, decoded with 16
    threads, did not match its single-threaded encoder)."""
    portable = bool(getattr(model, "portable_path", ""))
    # A portable twin's rows are exact whatever the kernel: no padding, and the windows are
    # shared among the threads at every size (a float model's chunks must not depend on them).
    size = -(-windows // budget()) if portable else STEP_WINDOWS
    parts = chunks(windows, size)
    caches = [model.start_cache(context.rows(s), s.stop - s.start, pad=not portable) for s in parts]
    token, features = None, []
    for t in range(model.seq_len_dec):
        outs = run_tasks([
            partial(model.step, None if token is None else token[s], cache) for s, cache in zip(parts, caches)
        ])
        means, scales, feats = (torch.cat([o[i][: s.stop - s.start] for o, s in zip(outs, parts)]) for i in range(3))
        token = code(t, means, scales)
        features.append(feats)
    return torch.stack(features, 1)


def _predict_window_chunks(
    model: TemporalEntropyModel, tokens: Tensor, context: FrameContext
) -> tuple[Tensor, Tensor, Tensor]:
    """(means, raw scales, features) `[n, 16, .]` of known quantised windows, chunks in parallel."""

    def task(s: slice) -> tuple[Tensor, Tensor, Tensor]:
        cache = model.start_cache(context.rows(s), s.stop - s.start, pad=False)
        return model.predict_cached(tokens[s], cache)

    parts = run_tasks([partial(task, s) for s in chunks(tokens.shape[0], DECODER_WINDOWS)])
    means, scales, features = (torch.cat(p) for p in zip(*parts))
    return means, scales, features


def predicted_token(means: Tensor) -> Tensor:
    """A token that is not sent (step >= k of a repacked stream, or filled under a cloud):
    round(mean), on both sides."""
    return torch.round(means) + 0.0  # + 0.0: no negative zeros


def _sent_windows(filled: Optional[Tensor], t: int, s: slice) -> Optional[Tensor]:
    """Which windows of tile slice `s` send their token at step `t` (None: all)."""
    return None if filled is None else ~filled[s, t]


def _encode_steps(
    model: TemporalEntropyModel, windows: Tensor, context: FrameContext, tiles: list[slice], k: int = 16,
    filled: Optional[Tensor] = None,
) -> tuple[list[bytes], Tensor, Tensor]:
    """Step-by-step encoding, as the decoder decodes: (each tile's payload of steps < k, tokens,
    features). `filled` `[windows, 16]` bool: tokens predicted instead of sent (cloud-aware
    coding)."""
    writers = [StepWriter(model.bottleneck) for _ in tiles]
    tokens: list[Tensor] = []
    n = windows.shape[0]

    def code(t: int, means: Tensor, scales: Tensor) -> Tensor:
        predicted = predicted_token(means).to(windows.dtype)
        if t >= k:
            tokens.append(predicted)
            return tokens[-1]
        symbols, rows, centres = model.bottleneck.quantize_parameters(windows[:, t], scales, means)
        for writer, s in zip(writers, tiles):
            sent = _sent_windows(filled, t, s)
            writer.add(symbols[s] if sent is None else symbols[s][sent], rows[s] if sent is None else rows[s][sent])
        coded = (symbols.to(torch.int64) + centres.to(torch.int64)).to(windows.dtype)
        tokens.append(coded if filled is None else torch.where(filled[:, t, None], predicted, coded))
        return tokens[-1]

    features = _autoregress(model, context, n, code)
    return [w.payload(k) for w in writers], torch.stack(tokens, 1), features


def encode_frame(
    model: TemporalEntropyModel, y: Tensor, context: FrameContext, k: Optional[int] = None,
    filled: Optional[Tensor] = None,
) -> tuple[list[bytes], Tensor, Tensor]:
    """Code latents `y [B, C, h, w]` -> (each tile's payload, y_hat, features `[B, d, h, w]`).
    `k` (repacked models): steps sent; the others are `predicted_token`s, coded as 0 bits.
    `filled` `[B * windows, 16]` bool: tokens predicted at any step (their windows send nothing
    in that step)."""
    model.bottleneck.update()
    b, _, h, w = y.shape
    windows = model.tokenizer.current(y)
    per_tile = windows.shape[0] // b
    tiles = [slice(i * per_tile, (i + 1) * per_tile) for i in range(b)]
    k = model.seq_len_dec if k is None else k
    if filled is not None and not bool(filled.any()):
        filled = None
    if k < model.seq_len_dec or filled is not None:  # predicted tokens depend on the ones before
        payloads, coded, features = _encode_steps(model, windows, context, tiles, k, filled)
        return payloads, model.tokenizer.merge(coded, h, w), model.tokenizer.merge(features, h, w)
    tokens = torch.round(windows) + 0.0  # + 0.0: no negative zeros (the decoder's are integers)
    means, scales, features = _predict_window_chunks(model, tokens, context)
    with _threads_for_rows(windows.shape[0]):  # the coder runs on the CPU (TemporalCodec._coder)
        symbols, rows, centres = model.bottleneck.quantize_parameters(windows, scales, means)
        coded = (symbols.to(torch.int64) + centres.to(torch.int64)).to(y.dtype)
        if torch.equal(coded, tokens):
            payloads = []
            for s in tiles:  # steps in order: [windows, 16, C] -> [16, windows, C]
                writer = StepWriter(model.bottleneck)
                writer.add(symbols[s].transpose(0, 1), rows[s].transpose(0, 1))
                payloads.append(writer.payload(k))
    if not torch.equal(coded, tokens):
        # a tie rounded the other way around an odd centre: code as the decoder will decode
        payloads, coded, features = _encode_steps(model, windows, context, tiles)
    return payloads, model.tokenizer.merge(coded, h, w), model.tokenizer.merge(features, h, w)


def decode_frame(
    model: TemporalEntropyModel, readers: Sequence[StepReader], k: int, context: FrameContext,
    shape: tuple[int, int, int, int], filled: Optional[Tensor] = None,
) -> tuple[Tensor, Tensor]:
    """Inverse of `encode_frame`: (y_hat `[B, C, h, w]`, features `[B, d, h, w]`) from each
    tile's `step_streams.step_reader` of its payload; `k`: the steps sent (the payloads' count),
    `filled` as the encoder's (read from the payloads)."""
    model.bottleneck.update()
    b, c, h, w = shape
    per_tile = model.tokenizer.windows(h, w)
    n = b * per_tile
    if not 0 <= k <= model.seq_len_dec or len(readers) != b:
        raise CorruptStreamError("corrupt TEC-TT payload: wrong number of steps")
    if filled is not None and tuple(filled.shape) != (n, model.seq_len_dec):
        raise CorruptStreamError("corrupt TEC-TT payload: the filled-token mask does not fit the tile")
    tiles = [slice(i * per_tile, (i + 1) * per_tile) for i in range(b)]
    tokens: list[Tensor] = []

    def code(t: int, means: Tensor, scales: Tensor) -> Tensor:
        predicted = predicted_token(means)
        if t >= k:
            tokens.append(predicted)
            return tokens[-1]
        _, rows, centres = model.bottleneck.quantize_parameters(None, scales, means)
        token = predicted.clone() if filled is not None else torch.empty_like(means)
        for reader, s in zip(readers, tiles):
            sent = _sent_windows(filled, t, s)
            sel = torch.arange(s.start, s.stop) if sent is None else torch.arange(s.start, s.stop)[sent]
            symbols = reader.read(model.bottleneck, rows[sel]).to(centres.device)
            token[sel] = (symbols.to(torch.int64) + centres[sel].to(torch.int64)).to(means.dtype)
        tokens.append(token)
        return tokens[-1]

    features = _autoregress(model, context, n, code)
    for reader in readers:
        reader.finish()
    return model.tokenizer.merge(torch.stack(tokens, 1), h, w), model.tokenizer.merge(features, h, w)
