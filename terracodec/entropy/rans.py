"""Interleaved rANS coder for tensors: symbols <-> bytes (contract: docs/DESIGN.md section 1).

Table semantics are CompressAI's `encode_with_indexes`: symbol `i` uses row `r = indexes[i]` of
`cdfs`, its table value is `v = symbols[i] - offsets[r]`, the row holds `cdf_lengths[r]` entries
(`cdf[0] = 0`, `cdf[len-1] = 1 << 16`, every frequency >= 1) and the last symbol `len-2` is the
escape. A value outside `[0, len-2)` is coded as the escape and its exact value is stored in the
escape section: nothing is ever clipped.

Algorithm: 64-bit states kept in `[L, L << 32)` with `L = 1 << 31`, 32-bit renormalisation words,
16-bit precision (so at most one word per symbol). The symbols are cut into chunks of
`chunk_symbols` consecutive symbols; inside a chunk, symbol `j` belongs to lane `j % lanes`. The
decoder walks a chunk step by step (`j = step * lanes + lane`, lane ascending): after decoding a
symbol, a lane whose state fell below `L` reads the chunk's next word. The encoder runs that order
backwards, starting every lane at state `L`, so a correct decode ends every lane in state `L`.
Chunks are independent (parallel on CPU and GPU); lanes give instruction-level parallelism.

Stream layout (version 1); `varint` is unsigned LEB128, canonical, at most 9 bytes:

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

The decoder checks the whole layout against the byte length before it touches the words (a
chunk holds at most one word per symbol; the sections must add up to the exact length), checks
that every chunk consumed exactly its words and every lane ended in state `L`, and that the
escape section holds exactly one varint per escape. Any failure raises `CorruptStreamError`.
(The container adds CRCs. Guaranteed here: a clean error, never a hang or an out-of-bounds
read, for any truncation or trailing bytes, for a header whose layout does not add up, and for
any lane not ending in state `L`. Damage to lane states or words is therefore caught with high
probability, not certainty; damage to an escape value that keeps its varint shape is not.)

Back-ends, byte-identical for the same inputs and layout: `numba` (compiled CPU, the default on
CPU), `torch` (vectorised reference, any device), `triton` (`terracodec.kernels.rans`, CUDA
tensors, or CPU tensors under `TRITON_INTERPRET=1`). `backend="auto"` picks triton for CUDA
tensors when triton is importable, else numba, else torch.
"""

from __future__ import annotations

import importlib
import weakref
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

from terracodec.errors import CorruptStreamError

__all__ = ["rans_encode", "rans_decode", "DEFAULT_LANES", "DEFAULT_CHUNK_SYMBOLS", "BACKENDS"]

FORMAT_VERSION = 1
PRECISION = 16
RANS_L = 1 << 31
DEFAULT_LANES = 4
DEFAULT_CHUNK_SYMBOLS = 1 << 16
#: Below this many symbols per extra lane, a lane's final state (up to 9 bytes) costs more than
#: its instruction-level parallelism saves: small streams (a hyperprior, one ELIC group of one
#: tile) get fewer lanes by default.
SYMBOLS_PER_LANE = 1 << 12
MAX_LANES = 256
MAX_CHUNK_SYMBOLS = 1 << 30
BACKENDS = ("auto", "numba", "torch", "triton")

_MAX_VARINT_BYTES = 9  # 63-bit values: every field fits a signed 64-bit integer
_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


# --------------------------------------------------------------------------- public API


def rans_encode(symbols: torch.Tensor, indexes: torch.Tensor, cdfs: torch.Tensor,
                cdf_lengths: torch.Tensor, offsets: torch.Tensor, *, lanes: int | None = None,
                chunk_symbols: int | None = None, backend: str = "auto") -> bytes:
    """Code integer `symbols` with the CDF rows picked by `indexes` (see the module docstring).

    `lanes` defaults to DEFAULT_LANES, fewer for streams shorter than
    `DEFAULT_LANES * SYMBOLS_PER_LANE`; the layout is stored in the stream, so any choice decodes.
    """
    symbols = _int32_vector(symbols, "symbols")
    if lanes is None:
        lanes = max(1, min(DEFAULT_LANES, symbols.numel() // SYMBOLS_PER_LANE))
    lanes = int(lanes)
    chunk = DEFAULT_CHUNK_SYMBOLS if chunk_symbols is None else int(chunk_symbols)
    if not 1 <= lanes <= MAX_LANES:
        raise ValueError(f"lanes must be in [1, {MAX_LANES}], got {lanes}")
    if not 1 <= chunk <= MAX_CHUNK_SYMBOLS:
        raise ValueError(f"chunk_symbols must be in [1, {MAX_CHUNK_SYMBOLS}], got {chunk}")
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
        return _header(0, lanes, chunk, 0, np.zeros(0, np.int64), np.zeros((0, lanes), np.int64))
    words, counts, states, esc_pos = _module(name).encode(symbols, indexes, cdfs, cdf_lengths,
                                                          offsets, lanes, chunk)
    escapes = _escape_section(symbols, indexes, cdf_lengths, offsets, esc_pos)
    header = _header(n, lanes, chunk, len(escapes), counts, states)
    return b"".join([header, np.ascontiguousarray(words, dtype="<u4").data, escapes])


def rans_decode(data: bytes, indexes: torch.Tensor, cdfs: torch.Tensor,
                cdf_lengths: torch.Tensor, offsets: torch.Tensor, *,
                backend: str = "auto") -> torch.Tensor:
    """Inverse of `rans_encode`: int32 symbols (same length and device as `indexes`)."""
    indexes = _int32_vector(indexes, "indexes")
    out_device = indexes.device
    name = _pick_backend(backend, out_device)
    device = _backend_device(name, out_device)
    cdfs, cdf_lengths, offsets = _check_tables(cdfs, cdf_lengths, offsets, device)
    indexes = indexes.to(device)
    if name != "numba":
        _check_indexes(indexes, cdf_lengths.numel())
    buf = np.frombuffer(memoryview(data), dtype=np.uint8)
    layout = _parse(buf, indexes.numel())
    if layout.n == 0:
        return torch.zeros(0, dtype=torch.int32, device=out_device)
    symbols, esc_pos = _module(name).decode(layout.words, layout.counts, layout.states, indexes,
                                            cdfs, cdf_lengths, offsets, layout.lanes,
                                            layout.chunk)
    _fill_escapes(symbols, indexes, cdf_lengths, offsets, esc_pos, layout.escapes)
    return symbols.to(out_device)


# --------------------------------------------------------------------------- inputs


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
            lowest = 0 if t.dtype == torch.uint64 else _INT32_MIN
            if int(lo) < lowest or int(hi) > _INT32_MAX:
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
    if int(lengths.min()) < 2 or int(lengths.max()) > width:
        raise ValueError(f"cdf_lengths must be in [2, {width}]")
    if int(offs.min()) < _INT32_MIN or int(offs.max()) > _INT32_MAX:
        raise ValueError("offsets must fit int32")
    cdf = cdf.astype(np.int64, copy=False)
    last = cdf[np.arange(k), lengths - 1]
    inside = np.arange(1, width)[None, :] < lengths[:, None]
    bad = (cdf[:, 0] != 0) | (last != 1 << PRECISION) | ((np.diff(cdf, axis=1) < 1) & inside).any(1)
    if bad.any():
        raise ValueError(f"cdf row {int(np.flatnonzero(bad)[0])} is invalid: it must start at 0, "
                         f"end at {1 << PRECISION} and increase strictly (every frequency >= 1)")
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


# --------------------------------------------------------------------------- escapes


def _escape_section(symbols: torch.Tensor, indexes: torch.Tensor, lengths: torch.Tensor,
                    offsets: torch.Tensor, positions: torch.Tensor) -> bytes:
    if positions.numel() == 0:
        return b""
    pos = positions.to(symbols.device)
    rows = indexes[pos].long()
    v = symbols[pos].long() - offsets[rows].long()
    m = lengths[rows].long() - 2
    raw = torch.where(v < 0, -2 * v - 1, 2 * (v - m))
    return varint_encode(raw.cpu().numpy())


def _fill_escapes(symbols: torch.Tensor, indexes: torch.Tensor, lengths: torch.Tensor,
                  offsets: torch.Tensor, positions: torch.Tensor, section: np.ndarray) -> None:
    """Write the exact values of the escaped symbols in place."""
    n_esc = positions.numel()
    raw = varint_decode_all(section, "escape section")
    if raw.size != n_esc:
        raise CorruptStreamError(f"rANS stream is corrupt: {n_esc} escaped symbols but the "
                                 f"escape section holds {raw.size} values")
    if n_esc == 0:
        return
    pos = positions.to(symbols.device)
    rows = indexes[pos].long()
    m = lengths[rows].long() - 2
    r = torch.from_numpy(raw).to(symbols.device)
    v = torch.where(r % 2 == 1, -(r + 1) // 2, m + r // 2)
    value = v + offsets[rows].long()
    if int(value.min()) < _INT32_MIN or int(value.max()) > _INT32_MAX:
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
    for k in range(1, _MAX_VARINT_BYTES):
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
    window = buf[offset:offset + _MAX_VARINT_BYTES * count]
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
    if int(sizes.max()) > _MAX_VARINT_BYTES or bool(((sizes > 1) & (seg[ends] == 0)).any()):
        raise CorruptStreamError(f"rANS stream is corrupt: malformed number in the {what}")
    pos = np.arange(seg.size) - np.repeat(starts, sizes)
    parts = (seg.astype(np.int64) & 0x7F) << (7 * pos)
    return np.bitwise_or.reduceat(parts, starts)


# --------------------------------------------------------------------------- header


def _header(n: int, lanes: int, chunk: int, escape_bytes: int, counts: np.ndarray,
            states: np.ndarray) -> bytes:
    fields = np.concatenate([np.array([n, lanes, chunk, escape_bytes], np.int64),
                             np.asarray(counts, np.int64).reshape(-1),
                             np.asarray(states, np.int64).reshape(-1) - RANS_L])
    return bytes([FORMAT_VERSION]) + varint_encode(fields)


@dataclass
class _Layout:
    """A parsed, validated stream: views into the caller's buffer, no copies."""

    n: int
    lanes: int = 1
    chunk: int = 1
    counts: np.ndarray | None = None  # int64 words per chunk
    states: np.ndarray | None = None  # int64 [chunks, lanes], the decoder's initial states
    words: np.ndarray | None = None  # uint32, every chunk's words in decode order
    escapes: np.ndarray | None = None  # uint8, the escape section


def _parse(buf: np.ndarray, expected_n: int) -> _Layout:
    if buf.size == 0:
        raise CorruptStreamError("rANS stream is empty")
    if int(buf[0]) != FORMAT_VERSION:
        raise CorruptStreamError(f"unsupported rANS stream version {int(buf[0])} "
                                 f"(expected {FORMAT_VERSION})")
    fields, pos = varint_decode(buf, 1, 4, "header")
    n, lanes, chunk, escape_bytes = (int(f) for f in fields)
    if n != expected_n:
        raise CorruptStreamError(f"rANS stream holds {n} symbols but {expected_n} indexes were "
                                 "given")
    if not 1 <= lanes <= MAX_LANES or not 1 <= chunk <= MAX_CHUNK_SYMBOLS:
        raise CorruptStreamError(f"rANS stream header is corrupt (lanes={lanes}, "
                                 f"chunk_symbols={chunk})")
    n_chunks = -(-n // chunk)
    # Every remaining varint is at least one byte: bound the counts before reading them.
    if pos + n_chunks * (1 + lanes) + escape_bytes > buf.size:
        raise CorruptStreamError("rANS stream is truncated (header)")
    if n == 0:
        if pos != buf.size:
            raise CorruptStreamError("rANS stream has trailing bytes")
        return _Layout(0)
    counts, pos = varint_decode(buf, pos, n_chunks, "chunk word counts")
    states, pos = varint_decode(buf, pos, n_chunks * lanes, "lane states")
    sizes = np.minimum(chunk, n - np.arange(n_chunks, dtype=np.int64) * chunk)
    if bool((counts > sizes).any()):
        raise CorruptStreamError("rANS stream header is corrupt (a chunk has more words than "
                                 "symbols)")
    if bool((states > (1 << 63) - 1 - RANS_L).any()):
        raise CorruptStreamError("rANS stream header is corrupt (lane state out of range)")
    total_words = int(counts.sum())
    end = pos + 4 * total_words + escape_bytes
    if end != buf.size:
        kind = "truncated" if end > buf.size else "followed by trailing bytes"
        raise CorruptStreamError(f"rANS stream is {kind} (expected {end} bytes, got {buf.size})")
    words = buf[pos:pos + 4 * total_words].view("<u4")
    escapes = buf[pos + 4 * total_words:end]
    return _Layout(n, lanes, chunk, counts, (states + RANS_L).reshape(n_chunks, lanes), words,
                   escapes)
