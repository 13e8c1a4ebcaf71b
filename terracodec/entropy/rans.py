"""Interleaved rANS coder for tensors: symbols <-> bytes (contract: docs/DESIGN.md section 1).

Table semantics are CompressAI's `encode_with_indexes`: symbol `i` uses row `r = indexes[i]` of
`cdfs`, its table value is `v = symbols[i] - offsets[r]`, the row holds `cdf_lengths[r]` entries
(`cdf[0] = 0`, `cdf[len-1] = 1 << 16`, every frequency >= 1) and the last symbol `len-2` is the
escape. A value outside `[0, len-2)` is coded as the escape and its exact value is stored in the
escape section: nothing is ever clipped.

Algorithm: 64-bit states kept in `[L, L << 32)` with `L = 1 << 31`, 32-bit renormalisation words,
16-bit precision (so at most one word per symbol); the numbers live in `rans_format.py`. The
symbols are cut into chunks of `chunk_symbols` consecutive symbols; inside a chunk, symbol `j`
belongs to lane `j % lanes`. The decoder walks a chunk step by step (`j = step * lanes + lane`,
lane ascending): after decoding a symbol, a lane whose state fell below `L` reads the chunk's
next word. The encoder runs that order backwards, starting every lane at state `L`, so a correct
decode ends every lane in state `L`. Chunks are independent (parallel on CPU and GPU); lanes
give instruction-level parallelism.

Stream layout: `rans_stream.py`. A stream is headered (`header="full"`, the default: version,
symbol count, lanes and chunk size are stored, so any layout decodes) or headerless
(`header="none"`: the caller gives the decoder the same `lanes` and `chunk_symbols`, and the
symbol count is `len(indexes)`). The decoder checks the whole layout against the byte length
before it touches the words, checks that every chunk consumed exactly its words and every lane
ended in state `L`, and that the escape section holds exactly one varint per escape. Any failure
raises `CorruptStreamError`. (The container adds CRCs. Guaranteed here: a clean error, never a
hang or an out-of-bounds read, for any truncation or trailing bytes, for a header whose layout
does not add up, and for any lane not ending in state `L`. Damage to lane states or words is
therefore caught with high probability, not certainty; damage to an escape value that keeps its
varint shape is not.)

Back-ends, byte-identical for the same inputs and layout: `numba` (compiled CPU, the default on
CPU), `torch` (vectorised reference, any device), `triton` (`terracodec.kernels.rans`, CUDA
tensors, or CPU tensors under `TRITON_INTERPRET=1`). `backend="auto"` picks triton for CUDA
tensors when triton is importable, else numba, else torch.
"""

from __future__ import annotations

import importlib
import weakref
from types import ModuleType

import numpy as np
import torch

from terracodec.entropy.rans_format import (DEFAULT_CHUNK_SYMBOLS, DEFAULT_LANES, HEADER_MODES,
                                            MAX_CHUNK_SYMBOLS, MAX_LANES, MIN_CDF_LENGTH,
                                            PROB_SCALE, SYMBOL_MAX, SYMBOL_MIN, SYMBOLS_PER_LANE,
                                            WORD_DTYPE)
# importable from here as before
from terracodec.entropy.rans_format import FORMAT_VERSION, PRECISION, RANS_L  # noqa: F401
from terracodec.entropy.rans_stream import escape_section, fill_escapes, parse, stream_head

__all__ = ["rans_encode", "rans_decode", "DEFAULT_LANES", "DEFAULT_CHUNK_SYMBOLS", "BACKENDS",
           "HEADER_MODES"]

BACKENDS = ("auto", "numba", "torch", "triton")


# --------------------------------------------------------------------------- public API


def rans_encode(symbols: torch.Tensor, indexes: torch.Tensor, cdfs: torch.Tensor,
                cdf_lengths: torch.Tensor, offsets: torch.Tensor, *, lanes: int | None = None,
                chunk_symbols: int | None = None, backend: str = "auto",
                header: str = "full") -> bytes:
    """Code integer `symbols` with the CDF rows picked by `indexes` (see the module docstring).

    `lanes` defaults to DEFAULT_LANES, fewer for streams shorter than
    `DEFAULT_LANES * SYMBOLS_PER_LANE`; `chunk_symbols` to DEFAULT_CHUNK_SYMBOLS. With
    `header="full"` the layout is stored in the stream, so any choice decodes. With
    `header="none"` it is not: `lanes` and `chunk_symbols` must be given, and the decoder must be
    given the same (and as many indexes as there are symbols).
    """
    symbols = _int32_vector(symbols, "symbols")
    headerless = _headerless(header, lanes, chunk_symbols, "encode")
    if lanes is None:
        lanes = max(1, min(DEFAULT_LANES, symbols.numel() // SYMBOLS_PER_LANE))
    lanes, chunk = _check_layout(lanes, DEFAULT_CHUNK_SYMBOLS if chunk_symbols is None
                                 else chunk_symbols)
    indexes = _int32_vector(indexes, "indexes")
    if symbols.numel() != indexes.numel():
        raise ValueError(f"symbols ({symbols.numel()}) and indexes ({indexes.numel()}) differ in "
                         "length")
    name = _pick_backend(backend, symbols.device)
    device = _backend_device(name, symbols.device)
    cdfs, cdf_lengths, offsets = _check_tables(cdfs, cdf_lengths, offsets, device)
    symbols, indexes = symbols.to(device), indexes.to(device)
    if name != "numba":  # the numba kernels check every index as they go (one pass less)
        _check_indexes(indexes, cdf_lengths.numel())
    n = symbols.numel()
    if n == 0:
        return stream_head(0, lanes, chunk, 0, np.zeros(0, np.int64),
                           np.zeros((0, lanes), np.int64), headerless)
    words, counts, states, esc_pos = _module(name).encode(symbols, indexes, cdfs, cdf_lengths,
                                                          offsets, lanes, chunk)
    escapes = escape_section(symbols, indexes, cdf_lengths, offsets, esc_pos)
    head = stream_head(n, lanes, chunk, len(escapes), counts, states, headerless)
    return b"".join([head, np.ascontiguousarray(words, dtype=WORD_DTYPE).data, escapes])


def rans_decode(data: bytes, indexes: torch.Tensor, cdfs: torch.Tensor,
                cdf_lengths: torch.Tensor, offsets: torch.Tensor, *, backend: str = "auto",
                header: str = "full", lanes: int | None = None,
                chunk_symbols: int | None = None) -> torch.Tensor:
    """Inverse of `rans_encode`: int32 symbols (same length and device as `indexes`).

    `header="none"` decodes a headerless stream of the given `lanes` and `chunk_symbols` (both
    required); with `header="full"` they are read from the stream and must not be given.
    """
    known = None
    if _headerless(header, lanes, chunk_symbols, "decode"):
        known = _check_layout(lanes, chunk_symbols)
    indexes = _int32_vector(indexes, "indexes")
    out_device = indexes.device
    name = _pick_backend(backend, out_device)
    device = _backend_device(name, out_device)
    cdfs, cdf_lengths, offsets = _check_tables(cdfs, cdf_lengths, offsets, device)
    indexes = indexes.to(device)
    if name != "numba":
        _check_indexes(indexes, cdf_lengths.numel())
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    layout = parse(buf, indexes.numel(), known)
    if layout.n == 0:
        return torch.zeros(0, dtype=torch.int32, device=out_device)
    symbols, esc_pos = _module(name).decode(layout.words, layout.counts, layout.states, indexes,
                                            cdfs, cdf_lengths, offsets, layout.lanes,
                                            layout.chunk)
    fill_escapes(symbols, indexes, cdf_lengths, offsets, esc_pos, layout.escapes)
    return symbols.to(out_device)


# --------------------------------------------------------------------------- inputs


def _headerless(header: str, lanes: int | None, chunk_symbols: int | None, side: str) -> bool:
    """Whether `header` asks for a headerless stream; checks the layout arguments it needs."""
    if header not in HEADER_MODES:
        raise ValueError(f"unknown rANS header mode {header!r} (expected one of {HEADER_MODES})")
    if header == "none" and (lanes is None or chunk_symbols is None):
        raise ValueError("header='none' needs lanes and chunk_symbols: a headerless stream does "
                         "not record them, the decoder must be given the same")
    if header == "full" and side == "decode" and (lanes is not None or chunk_symbols is not None):
        raise ValueError("lanes and chunk_symbols are read from the stream header "
                         "(give them with header='none' only)")
    return header == "none"


def _check_layout(lanes: int, chunk: int) -> tuple[int, int]:
    lanes, chunk = int(lanes), int(chunk)
    if not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be in [1, {MAX_LANES}], got {lanes}")
    if not 1 <= chunk <= MAX_CHUNK_SYMBOLS:
        raise ValueError(f"chunk_symbols must be in [1, {MAX_CHUNK_SYMBOLS}], got {chunk}")
    return lanes, chunk


def _int32_vector(t: torch.Tensor, name: str) -> torch.Tensor:
    """A 1-D int32 view of an integer tensor (values must fit int32)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must have an integer dtype, got {t.dtype}")
    t = t.reshape(-1)
    if t.dtype != torch.int32:
        if t.numel() and t.dtype in (torch.int64, torch.uint32, torch.uint64):
            # uint64 is viewed as int64, so values >= 2**63 show up negative (and are refused).
            wide = t.view(torch.int64) if t.dtype == torch.uint64 else t.to(torch.int64)
            lo, hi = torch.aminmax(wide)
            lowest = 0 if t.dtype == torch.uint64 else SYMBOL_MIN
            if int(lo) < lowest or int(hi) > SYMBOL_MAX:
                raise ValueError(f"{name} hold values outside the int32 range")
        t = t.to(torch.int32)
    return t.contiguous()


_CHECKED: dict[tuple, tuple] = {}


def _check_tables(cdfs: torch.Tensor, cdf_lengths: torch.Tensor, offsets: torch.Tensor,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the CDF tables; return int32 tensors on `device`.

    Entropy models pass the same table tensors on every call, and validation costs ~10 % of
    coding 1 M symbols, so the result is remembered per (tensor objects, their version
    counters, device). A table changed in place bumps its version; a new tensor is a new
    object (weak references make sure an id is not reused by a different tensor).
    """
    tables = (cdfs, cdf_lengths, offsets)
    # Inference tensors keep no version counter: they are validated on every call.
    if all(isinstance(t, torch.Tensor) and not t.is_inference() for t in tables):
        key = tuple((id(t), t._version) for t in tables) + (str(device),)
        hit = _CHECKED.get(key)
        if hit is not None and all(ref() is t for ref, t in zip(hit[0], tables)):
            return hit[1]
        result = _validate_tables(cdfs, cdf_lengths, offsets, device)
        if len(_CHECKED) >= 16:
            _CHECKED.clear()
        _CHECKED[key] = (tuple(weakref.ref(t) for t in tables), result)
        return result
    return _validate_tables(cdfs, cdf_lengths, offsets, device)


def _validate_tables(cdfs: torch.Tensor, cdf_lengths: torch.Tensor, offsets: torch.Tensor,
                     device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the CDF tables (small: checked on the CPU); return int32 tensors on `device`."""
    for name, t in (("cdfs", cdfs), ("cdf_lengths", cdf_lengths), ("offsets", offsets)):
        if not isinstance(t, torch.Tensor) or t.dtype.is_floating_point or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer torch.Tensor")
    cdf = cdfs.detach().cpu().numpy()
    lengths = cdf_lengths.detach().cpu().numpy().reshape(-1).astype(np.int64)
    offs = offsets.detach().cpu().numpy().reshape(-1).astype(np.int64)
    if cdf.ndim != 2 or cdf.shape[0] == 0:
        raise ValueError(f"cdfs must be a non-empty 2-D [K, Lmax] tensor, got {cdf.shape}")
    k, width = cdf.shape
    if lengths.size != k or offs.size != k:
        raise ValueError(f"cdfs has {k} rows but cdf_lengths has {lengths.size} and offsets "
                         f"{offs.size} entries")
    if int(lengths.min()) < MIN_CDF_LENGTH or int(lengths.max()) > width:
        raise ValueError(f"cdf_lengths must be in [{MIN_CDF_LENGTH}, {width}]")
    if int(offs.min()) < SYMBOL_MIN or int(offs.max()) > SYMBOL_MAX:
        raise ValueError("offsets must fit int32")
    cdf = cdf.astype(np.int64, copy=False)
    last = cdf[np.arange(k), lengths - 1]
    inside = np.arange(1, width)[None, :] < lengths[:, None]
    bad = (cdf[:, 0] != 0) | (last != PROB_SCALE) | ((np.diff(cdf, axis=1) < 1) & inside).any(1)
    if bad.any():
        raise ValueError(f"cdf row {int(np.flatnonzero(bad)[0])} is invalid: it must start at 0, "
                         f"end at {PROB_SCALE} and increase strictly (every frequency >= 1)")
    as_int32 = (lambda t: t.detach().to(device, torch.int32).contiguous())
    return as_int32(cdfs), as_int32(cdf_lengths).reshape(-1), as_int32(offsets).reshape(-1)


def _check_indexes(indexes: torch.Tensor, n_rows: int) -> None:
    if indexes.numel():
        lo, hi = torch.aminmax(indexes)
        if int(lo) < 0 or int(hi) >= n_rows:
            raise ValueError(f"indexes must be in [0, {n_rows}), got values in [{int(lo)}, "
                             f"{int(hi)}]")


# --------------------------------------------------------------------------- back-ends


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown rANS backend {backend!r} (expected one of {BACKENDS})")
    if backend != "auto":
        if backend == "numba" and not _numba_available():
            raise RuntimeError("backend='numba' requested but numba is not installed")
        if backend == "triton":
            from terracodec.kernels._dispatch import interpreting, triton_available

            if not triton_available():
                raise RuntimeError("backend='triton' requested but triton is not installed")
            if device.type != "cuda" and not interpreting():
                raise RuntimeError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1)")
        return backend
    if device.type == "cuda":
        from terracodec.kernels._dispatch import triton_available

        if triton_available():
            return "triton"
    return "numba" if _numba_available() else "torch"


def _backend_device(name: str, device: torch.device) -> torch.device:
    """numba works on CPU memory; torch and triton run where the tensors are."""
    return torch.device("cpu") if name == "numba" else device


def _numba_available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _module(name: str) -> ModuleType:
    return importlib.import_module({
        "numba": "terracodec.entropy.rans_numba",
        "torch": "terracodec.entropy.rans_torch",
        "triton": "terracodec.kernels.rans",
    }[name])
