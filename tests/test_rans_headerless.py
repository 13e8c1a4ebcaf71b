"""Headerless rANS streams (`header="none"`): the headered bytes without the version byte and
the symbol count / lanes / chunk fields, decoded with a layout the caller gives; damaged or
truncated ones raise CorruptStreamError like headered ones. (The triton back-end is checked in
tests/test_rans.py's interpreted script; TEC-TT's use in tests/test_temporal_coding.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terracodec.entropy.rans import rans_decode, rans_encode
from terracodec.entropy.rans_format import FORMAT_VERSION, HEADERLESS_OMITS
from terracodec.entropy.rans_stream import varint_decode, varint_encode
from terracodec.errors import CorruptStreamError

from test_rans import random_symbols, random_tables

BACKENDS = ("numba", "torch")


def layout(lanes: int, chunk: int) -> dict:
    return {"header": "none", "lanes": lanes, "chunk_symbols": chunk}


def strip_header(data: bytes) -> bytes:
    """The headered stream minus its version byte and layout fields, decoded independently."""
    buf = np.frombuffer(data, np.uint8)
    assert buf[0] == FORMAT_VERSION
    _, pos = varint_decode(buf, 1, len(HEADERLESS_OMITS), "header")
    return data[pos:]


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(21)
    cdfs, lengths, offsets = random_tables(rng, 6, 12)
    symbols, indexes = random_symbols(rng, 300, lengths, offsets)
    return symbols, indexes, cdfs, lengths, offsets


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300), rows=st.integers(1, 5),
       max_len=st.integers(2, 14), lanes=st.integers(1, 9), chunk=st.integers(1, 120),
       escape_rate=st.sampled_from([0.0, 0.1, 1.0]))
def test_round_trip_and_bytes_equal_headered_minus_header(seed, n, rows, max_len, lanes, chunk,
                                                          escape_rate):
    rng = np.random.default_rng(seed)
    cdfs, lengths, offsets = random_tables(rng, rows, max_len)
    symbols, indexes = random_symbols(rng, n, lengths, offsets, escape_rate)
    full = rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes, chunk_symbols=chunk)
    for backend in BACKENDS:
        bare = rans_encode(symbols, indexes, cdfs, lengths, offsets, backend=backend,
                           **layout(lanes, chunk))
        assert bare == strip_header(full)
        out = rans_decode(bare, indexes, cdfs, lengths, offsets, backend=backend,
                          **layout(lanes, chunk))
        assert out.dtype == torch.int32 and torch.equal(out, symbols)


def test_empty_and_one_chunk_one_lane(case):
    symbols, indexes, cdfs, lengths, offsets = case
    empty = torch.zeros(0, dtype=torch.int32)
    bare = rans_encode(empty, empty, cdfs, lengths, offsets, **layout(1, 1))
    assert bare == b"\x00"  # the escape-section length only
    assert rans_decode(bare, empty, cdfs, lengths, offsets, **layout(1, 1)).shape == (0,)
    for bad in (b"", b"\x00\x00", b"\x01"):
        with pytest.raises(CorruptStreamError):
            rans_decode(bad, empty, cdfs, lengths, offsets, **layout(1, 1))
    # TEC-TT's layout: one lane, one chunk of exactly the stream's symbols.
    n = symbols.numel()
    bare = rans_encode(symbols, indexes, cdfs, lengths, offsets, **layout(1, n))
    head = bytes([FORMAT_VERSION]) + varint_encode(np.array([n, 1, n]))
    assert rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=1,
                       chunk_symbols=n) == head + bare
    assert torch.equal(rans_decode(bare, indexes, cdfs, lengths, offsets, **layout(1, n)), symbols)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("lanes,chunk", [(1, 300), (4, 128)])
def test_truncation_and_trailing_bytes(case, backend, lanes, chunk):
    symbols, indexes, cdfs, lengths, offsets = case
    bare = rans_encode(symbols, indexes, cdfs, lengths, offsets, **layout(lanes, chunk))
    for end in range(len(bare)):
        with pytest.raises(CorruptStreamError):
            rans_decode(bare[:end], indexes, cdfs, lengths, offsets, backend=backend,
                        **layout(lanes, chunk))
    for extra in (b"\x00", b"\x01\x02\x03\x04"):
        with pytest.raises(CorruptStreamError):
            rans_decode(bare + extra, indexes, cdfs, lengths, offsets, backend=backend,
                        **layout(lanes, chunk))


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_byte_corruption_sweep(case, backend):
    """Damage before the words (escape length, word counts, lane states) always raises; damage
    to the words almost always does (final-state check), as for headered streams."""
    symbols, indexes, cdfs, lengths, offsets = case
    lanes, chunk = 4, 128
    full = rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes, chunk_symbols=chunk)
    bare = strip_header(full)
    buf = np.frombuffer(bare, np.uint8)
    n_chunks = -(-symbols.numel() // chunk)
    (escape_bytes,), _ = varint_decode(buf, 0, 1, "header")
    _, words_at = varint_decode(buf, 0, 1 + n_chunks * (1 + lanes), "header")
    words_end = len(bare) - int(escape_bytes)
    assert escape_bytes > 0 and words_end > words_at
    positions = range(len(bare)) if backend == "numba" else range(0, len(bare), 5)
    missed = tried = 0
    for at in positions:
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(bare)
            bad[at] ^= flip
            try:
                out = rans_decode(bytes(bad), indexes, cdfs, lengths, offsets, backend=backend,
                                  **layout(lanes, chunk))
            except CorruptStreamError:
                continue
            assert at >= words_at, f"damage at byte {at} (xor {flip:#x}) went unnoticed"
            assert out.shape == symbols.shape
            missed += at < words_end
        tried += words_at <= at < words_end
    assert missed <= 0.02 * 3 * max(tried, 1)


def test_escape_section_damage_is_detected_when_structural(case):
    symbols, indexes, cdfs, lengths, offsets = case
    bare = rans_encode(symbols, indexes, cdfs, lengths, offsets, **layout(2, 100))
    bad = bytearray(bare)
    bad[-1] |= 0x80  # the last escape value no longer ends inside the section
    with pytest.raises(CorruptStreamError, match="escape"):
        rans_decode(bytes(bad), indexes, cdfs, lengths, offsets, **layout(2, 100))


def test_garbage_never_hangs(case):
    _, indexes, cdfs, lengths, offsets = case
    rng = np.random.default_rng(4)
    for size in (1, 2, 9, 40, 300, 2000):
        for _ in range(5):
            data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            for lanes, chunk in ((1, 300), (4, 64)):
                try:
                    out = rans_decode(data, indexes, cdfs, lengths, offsets,
                                      **layout(lanes, chunk))
                except CorruptStreamError:
                    continue
                assert out.shape == indexes.shape


def test_layout_arguments(case):
    symbols, indexes, cdfs, lengths, offsets = case
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="header mode"):
        rans_encode(symbols, indexes, cdfs, lengths, offsets, header="short")
    with pytest.raises(ValueError, match="header mode"):
        rans_decode(data, indexes, cdfs, lengths, offsets, header="short")
    for missing in ({"lanes": 1}, {"chunk_symbols": 300}, {}):
        with pytest.raises(ValueError, match="needs lanes and chunk_symbols"):
            rans_encode(symbols, indexes, cdfs, lengths, offsets, header="none", **missing)
        with pytest.raises(ValueError, match="needs lanes and chunk_symbols"):
            rans_decode(data, indexes, cdfs, lengths, offsets, header="none", **missing)
    with pytest.raises(ValueError, match="read from the stream header"):
        rans_decode(data, indexes, cdfs, lengths, offsets, lanes=4)
    for lanes, chunk in ((0, 10), (257, 10), (1, 0)):
        with pytest.raises(ValueError):
            rans_decode(b"\x00", indexes, cdfs, lengths, offsets, **layout(lanes, chunk))
        with pytest.raises(ValueError):
            rans_encode(symbols, indexes, cdfs, lengths, offsets, **layout(lanes, chunk))
