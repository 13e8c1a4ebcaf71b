"""rANS coder (terracodec/entropy/rans.py): round trips, byte-identical back-ends, layouts,
input validation, corrupt streams, and coded size against the ideal.

What is guaranteed for damaged streams (the container adds CRCs on top): any truncation and any
trailing bytes raise `CorruptStreamError`; header damage raises it (checked for every byte of the
header below); damage to the words is caught by the final-state check with high probability
(checked below as a rate); escape *values* are covered only by the container's CRC. A damaged
stream never hangs and never reads out of bounds: it raises or returns symbols.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terracodec.entropy.rans import DEFAULT_CHUNK_SYMBOLS, rans_decode, rans_encode
from terracodec.entropy.rans_torch import symbol_intervals
from terracodec.errors import CorruptStreamError

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def random_tables(rng: np.random.Generator, rows: int, max_len: int, pad: int = 2):
    """CompressAI-style tables: random lengths (2 allowed), frequencies >= 1, zero padding."""
    lengths = rng.integers(2, max_len + 1, size=rows)
    width = int(lengths.max()) + pad
    cdfs = np.zeros((rows, width), np.int64)
    for r, length in enumerate(lengths):
        n_sym = length - 1
        weights = rng.random(n_sym) ** 3 + 1e-3
        freq = 1 + np.floor(weights / weights.sum() * ((1 << 16) - n_sym)).astype(np.int64)
        freq[np.argmax(freq)] += (1 << 16) - freq.sum()
        cdfs[r, 1:length] = np.cumsum(freq)
    offsets = rng.integers(-50, 50, size=rows)
    return torch.from_numpy(cdfs).int(), torch.from_numpy(lengths).int(), torch.from_numpy(
        offsets).int()


def random_symbols(rng: np.random.Generator, n: int, lengths: torch.Tensor,
                   offsets: torch.Tensor, escape_rate: float = 0.1):
    """Mostly in-range values; a share of escapes, far-out values and int32 extremes."""
    k = lengths.numel()
    idx = rng.integers(0, k, size=n)
    lens = lengths.numpy().astype(np.int64)[idx]
    offs = offsets.numpy().astype(np.int64)[idx]
    v = np.floor(rng.random(n) * np.maximum(lens - 2, 1)).astype(np.int64)
    special = rng.random(n) < escape_rate
    choices = np.array([-1, 0, 1, 2, 1 << 30, -(1 << 30), 12345])
    extra = choices[rng.integers(0, len(choices), size=n)]
    v = np.where(special, np.where(extra > 2, extra, lens - 2 + extra - 1), v)
    sym = np.clip(v + offs, INT32_MIN, INT32_MAX)
    extremes = rng.random(n) < escape_rate / 4
    sym = np.where(extremes, np.where(rng.random(n) < 0.5, INT32_MIN, INT32_MAX), sym)
    return torch.from_numpy(sym).int(), torch.from_numpy(idx).int()


def gaussian_tables(scales: list[float]):
    """Discretised zero-mean Gaussians quantised to 16 bits, the tail mass on the escape."""
    rows = []
    for scale in scales:
        centre = math.ceil(scale * 6.2)
        x = torch.arange(-centre, centre + 1, dtype=torch.float64)
        cdf = lambda t: 0.5 * torch.erfc(-t / (scale * math.sqrt(2)))  # noqa: E731
        pmf = torch.cat([cdf(x + 0.5) - cdf(x - 0.5), (1 - (cdf(x[-1:] + 0.5) - cdf(x[:1] - 0.5)))])
        freq = torch.clamp(torch.floor(pmf * (1 << 16)), min=1).long()
        freq[torch.argmax(freq)] += (1 << 16) - int(freq.sum())
        rows.append((torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(freq, 0)]),
                     -centre))
    width = max(len(r) for r, _ in rows)
    cdfs = torch.zeros(len(rows), width, dtype=torch.int32)
    for i, (r, _) in enumerate(rows):
        cdfs[i, :len(r)] = r.int()
    lengths = torch.tensor([len(r) for r, _ in rows], dtype=torch.int32)
    offsets = torch.tensor([o for _, o in rows], dtype=torch.int32)
    return cdfs, lengths, offsets


def ideal_bytes(symbols, indexes, cdfs, lengths, offsets) -> float:
    """-sum log2(freq / 2**16) over the quantised tables, in bytes (escape payload excluded)."""
    _, freq, _ = symbol_intervals(symbols, indexes, cdfs, lengths, offsets)
    return float(-torch.log2(freq.double() / (1 << 16)).sum()) / 8


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(7)
    cdfs, lengths, offsets = random_tables(rng, 6, 12)
    symbols, indexes = random_symbols(rng, 700, lengths, offsets)
    return symbols, indexes, cdfs, lengths, offsets


# ----------------------------------------------------------------------------- round trips


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 400), rows=st.integers(1, 5),
       max_len=st.integers(2, 14), lanes=st.integers(1, 9), chunk=st.integers(1, 120),
       escape_rate=st.sampled_from([0.0, 0.05, 0.5, 1.0]))
def test_round_trip_random_tables(seed, n, rows, max_len, lanes, chunk, escape_rate):
    rng = np.random.default_rng(seed)
    cdfs, lengths, offsets = random_tables(rng, rows, max_len)
    symbols, indexes = random_symbols(rng, n, lengths, offsets, escape_rate)
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes,
                       chunk_symbols=chunk, backend="numba")
    assert rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes,
                       chunk_symbols=chunk, backend="torch") == data
    for backend in ("numba", "torch"):
        out = rans_decode(data, indexes, cdfs, lengths, offsets, backend=backend)
        assert out.dtype == torch.int32
        assert torch.equal(out, symbols)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_empty_and_single_symbol(case, backend):
    _, _, cdfs, lengths, offsets = case
    empty = torch.zeros(0, dtype=torch.int32)
    data = rans_encode(empty, empty, cdfs, lengths, offsets, backend=backend)
    out = rans_decode(data, empty, cdfs, lengths, offsets, backend=backend)
    assert out.shape == (0,) and out.dtype == torch.int32
    for value in (int(offsets[2]), INT32_MAX, INT32_MIN):
        sym, idx = torch.tensor([value]), torch.tensor([2])
        data = rans_encode(sym, idx, cdfs, lengths, offsets, backend=backend)
        assert torch.equal(rans_decode(data, idx, cdfs, lengths, offsets, backend=backend),
                           sym.int())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_extreme_tables(backend):
    """One frequency 65535 (the other 1), escape-only rows (length 2), escape-dominant rows."""
    cdfs = torch.tensor([[0, 65535, 65536, 0],     # symbol 0 nearly certain, escape 1/65536
                         [0, 1, 65536, 0],         # symbol 0 rare, the escape nearly certain
                         [0, 65536, 0, 0],         # length 2: every value is an escape
                         [0, 1, 2, 65536]])        # two rare symbols, escape dominant
    lengths = torch.tensor([3, 3, 2, 4])
    offsets = torch.tensor([0, -3, 100, 0])
    rng = np.random.default_rng(3)
    n = 20_000 if backend == "numba" else 2_000  # the torch reference steps in Python
    idx = torch.from_numpy(rng.integers(0, 4, size=n)).int()
    sym = torch.where(idx == 0, 0, torch.from_numpy(rng.integers(-5, 5, size=n)).int())
    sym[::997] = 7  # rare escapes in the certain row
    sym[5] = INT32_MIN
    for lanes in (1, 4):
        data = rans_encode(sym, idx, cdfs, lengths, offsets, lanes=lanes, backend=backend)
        assert torch.equal(rans_decode(data, idx, cdfs, lengths, offsets, backend=backend), sym)
    # A long run of the near-certain symbol costs almost nothing.
    run = torch.zeros(5 * n, dtype=torch.int32)
    data = rans_encode(run, run, cdfs, lengths, offsets, backend=backend)
    assert len(data) < 100
    assert torch.equal(rans_decode(data, run, cdfs, lengths, offsets, backend=backend), run)


@pytest.mark.parametrize("lanes,chunk", [(1, 1), (1, 1000), (2, 3), (4, 4), (7, 50), (16, 5),
                                         (256, 300), (3, DEFAULT_CHUNK_SYMBOLS)])
def test_layouts_round_trip(case, lanes, chunk):
    symbols, indexes, cdfs, lengths, offsets = case
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes, chunk_symbols=chunk)
    # The decoder follows the layout recorded in the header, whatever the defaults are.
    assert torch.equal(rans_decode(data, indexes, cdfs, lengths, offsets), symbols)
    assert rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=lanes, chunk_symbols=chunk,
                       backend="torch") == data


def test_numba_parallel_and_serial_paths_agree():
    """Many chunks (parallel kernel) and one chunk (serial kernel) decode alike; big stream."""
    rng = np.random.default_rng(11)
    cdfs, lengths, offsets = random_tables(rng, 40, 60)
    symbols, indexes = random_symbols(rng, 300_000, lengths, offsets, escape_rate=0.01)
    for chunk in (1 << 12, 1 << 20):
        data = rans_encode(symbols, indexes, cdfs, lengths, offsets, chunk_symbols=chunk)
        assert torch.equal(rans_decode(data, indexes, cdfs, lengths, offsets), symbols)


def test_input_dtypes_and_shapes(case):
    symbols, indexes, cdfs, lengths, offsets = case
    ref = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    assert rans_encode(symbols.long(), indexes.to(torch.int16), cdfs.long(), lengths.long(),
                       offsets.long()) == ref
    assert rans_encode(symbols.view(7, 100).t().contiguous().t(), indexes.view(7, 100), cdfs,
                       lengths, offsets) == ref
    assert rans_encode(symbols, indexes.to(torch.uint8), cdfs, lengths, offsets) == ref
    out = rans_decode(ref, indexes.long(), cdfs.long(), lengths.to(torch.int16), offsets.long())
    assert torch.equal(out, symbols)
    with pytest.raises(ValueError, match="int32 range"):
        rans_encode(torch.tensor([1 << 63], dtype=torch.uint64), indexes[:1], cdfs, lengths,
                    offsets)


# ----------------------------------------------------------------------------- back-ends

TRITON_SCRIPT = textwrap.dedent("""
    import numpy as np, torch
    from terracodec.entropy.rans import rans_encode, rans_decode
    from terracodec.errors import CorruptStreamError
    import test_rans as T

    rng = np.random.default_rng(5)
    for rows, max_len, n, lanes, chunk in [(3, 6, 0, 4, 16), (1, 2, 1, 4, 16), (4, 9, 150, 4, 64),
                                           (5, 12, 120, 3, 17), (2, 5, 90, 8, 1000)]:
        cdfs, lengths, offsets = T.random_tables(rng, rows, max_len)
        sym, idx = T.random_symbols(rng, n, lengths, offsets)
        streams = {b: rans_encode(sym, idx, cdfs, lengths, offsets, lanes=lanes,
                                  chunk_symbols=chunk, backend=b)
                   for b in ("numba", "torch", "triton")}
        assert len(set(streams.values())) == 1, (rows, n, lanes, chunk)
        out = rans_decode(streams["numba"], idx, cdfs, lengths, offsets, backend="triton")
        assert torch.equal(out, sym)
        # Headerless mode: the same bytes on every back-end, decoded by triton.
        layout = dict(header="none", lanes=lanes, chunk_symbols=chunk)
        bare = {b: rans_encode(sym, idx, cdfs, lengths, offsets, backend=b, **layout)
                for b in ("numba", "torch", "triton")}
        assert len(set(bare.values())) == 1, ("headerless", rows, n, lanes, chunk)
        assert streams["numba"].endswith(bare["numba"])
        out = rans_decode(bare["torch"], idx, cdfs, lengths, offsets, backend="triton", **layout)
        assert torch.equal(out, sym)
        for end in range(0, len(bare["numba"]), 7):  # truncated headerless streams
            try:
                rans_decode(bare["numba"][:end], idx, cdfs, lengths, offsets, backend="triton",
                            **layout)
            except CorruptStreamError:
                pass
            else:
                raise AssertionError(f"headerless stream cut at {end} bytes not detected")
    data = streams["numba"]
    (n, lanes, chunk, escape_bytes), _ = T.read_varints(data, 4)
    _, header = T.read_varints(data, 4 + -(-n // chunk) * (1 + lanes))
    for at in (header, header + 5, len(data) - escape_bytes - 1):  # damaged words
        bad = bytearray(data)
        bad[at] ^= 0x5A
        try:
            rans_decode(bytes(bad), idx, cdfs, lengths, offsets, backend="triton")
        except CorruptStreamError:
            pass
        else:
            raise AssertionError(f"corruption at byte {at} not detected")
        try:  # the same damage in the headerless form of the stream
            rans_decode(bytes(bad[len(data) - len(bare["numba"]):]), idx, cdfs, lengths, offsets,
                        backend="triton", **layout)
        except CorruptStreamError:
            pass
        else:
            raise AssertionError(f"headerless corruption at byte {at} not detected")
    print("TRITON-OK")
""")


@pytest.mark.slow
def test_triton_interpreted_matches_numba_and_torch():
    """Triton reads TRITON_INTERPRET when it is imported: run the comparison in a new process."""
    pytest.importorskip("triton")
    env = dict(os.environ, TRITON_INTERPRET="1")
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", TRITON_SCRIPT], env=env, cwd=here,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "TRITON-OK" in result.stdout, result.stderr[-3000:]


def test_backend_choice(case):
    symbols, indexes, cdfs, lengths, offsets = case
    with pytest.raises(ValueError, match="unknown rANS backend"):
        rans_encode(symbols, indexes, cdfs, lengths, offsets, backend="cuda")
    if os.environ.get("TRITON_INTERPRET", "0") != "1":
        with pytest.raises(RuntimeError, match="CUDA"):
            rans_encode(symbols, indexes, cdfs, lengths, offsets, backend="triton")
    # auto on CPU tensors is the numba back-end: same bytes as the reference.
    assert rans_encode(symbols, indexes, cdfs, lengths, offsets) == rans_encode(
        symbols, indexes, cdfs, lengths, offsets, backend="torch")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_index_out_of_range(case, backend):
    symbols, indexes, cdfs, lengths, offsets = case
    for bad_value in (-1, cdfs.shape[0]):
        bad = indexes.clone()
        bad[123] = bad_value
        with pytest.raises(ValueError, match="indexes must be in"):
            rans_encode(symbols, bad, cdfs, lengths, offsets, backend=backend)
        data = rans_encode(symbols, indexes, cdfs, lengths, offsets, backend=backend)
        with pytest.raises(ValueError, match="indexes must be in"):
            rans_decode(data, bad, cdfs, lengths, offsets, backend=backend)


def test_invalid_tables(case):
    symbols, indexes, cdfs, lengths, offsets = case

    def expect(cdfs_, lengths_, offsets_, match):
        with pytest.raises(ValueError, match=match):
            rans_encode(symbols, indexes, cdfs_, lengths_, offsets_)
        with pytest.raises(ValueError, match=match):
            rans_decode(b"\x01", indexes, cdfs_, lengths_, offsets_)

    bad = cdfs.clone()
    bad[1, 0] = 5
    expect(bad, lengths, offsets, "cdf row 1")
    bad = cdfs.clone()
    bad[2, int(lengths[2]) - 1] = 65535
    expect(bad, lengths, offsets, "cdf row 2")
    bad = cdfs.clone()
    row = int(torch.argmax(lengths))
    bad[row, 2] = bad[row, 1]  # a zero frequency
    expect(bad, lengths, offsets, f"cdf row {row}")
    too_long = lengths.clone()
    too_long[0] = cdfs.shape[1] + 1
    expect(cdfs, too_long, offsets, "cdf_lengths")
    too_short = lengths.clone()
    too_short[0] = 1
    expect(cdfs, too_short, offsets, "cdf_lengths")
    expect(cdfs, lengths[:-1], offsets, "rows")
    expect(cdfs[0], lengths, offsets, "2-D")
    with pytest.raises(TypeError):
        rans_encode(symbols, indexes, cdfs.float(), lengths, offsets)


def test_tables_changed_in_place_after_a_call_are_checked_again(case):
    """Validation is remembered per table tensor; an in-place edit must invalidate that."""
    symbols, indexes, cdfs, lengths, offsets = case
    cdfs = cdfs.clone()
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    assert torch.equal(rans_decode(data, indexes, cdfs, lengths, offsets), symbols.to(torch.int32))
    cdfs[1, 0] = 5
    with pytest.raises(ValueError, match="cdf row 1"):
        rans_encode(symbols, indexes, cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="cdf row 1"):
        rans_decode(data, indexes, cdfs, lengths, offsets)
    with torch.inference_mode():  # inference tensors keep no version counter
        tables = cdfs.clone(), lengths.clone(), offsets.clone()
        tables[0][1, 0] = 0
        assert torch.equal(rans_decode(rans_encode(symbols, indexes, *tables), indexes, *tables),
                           symbols.to(torch.int32))


def test_invalid_arguments(case):
    symbols, indexes, cdfs, lengths, offsets = case
    with pytest.raises(TypeError, match="integer dtype"):
        rans_encode(symbols.float(), indexes, cdfs, lengths, offsets)
    with pytest.raises(TypeError, match="torch.Tensor"):
        rans_encode(symbols.tolist(), indexes, cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="differ in length"):
        rans_encode(symbols[:-1], indexes, cdfs, lengths, offsets)
    with pytest.raises(ValueError, match="int32 range"):
        rans_encode(symbols.long() + (1 << 31), indexes, cdfs, lengths, offsets)
    for kwargs in ({"lanes": 0}, {"lanes": 257}, {"chunk_symbols": 0}):
        with pytest.raises(ValueError):
            rans_encode(symbols, indexes, cdfs, lengths, offsets, **kwargs)


# ----------------------------------------------------------------------------- corrupt streams


@pytest.fixture(scope="module")
def stream(case):
    symbols, indexes, cdfs, lengths, offsets = case
    data = rans_encode(symbols[:300], indexes[:300], cdfs, lengths, offsets, lanes=4,
                       chunk_symbols=128)
    return data, indexes[:300], cdfs, lengths, offsets


def read_varints(data: bytes, count: int) -> tuple[list[int], int]:
    """The first `count` varints after the version byte, and the offset after them."""
    values, pos = [], 1
    for _ in range(count):
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        values.append(value)
    return values, pos


def test_truncation_and_trailing_bytes(stream):
    data, indexes, cdfs, lengths, offsets = stream
    for end in range(len(data)):
        with pytest.raises(CorruptStreamError):
            rans_decode(data[:end], indexes, cdfs, lengths, offsets)
    for extra in (b"\x00", b"\x01\x02\x03\x04"):
        with pytest.raises(CorruptStreamError):
            rans_decode(data + extra, indexes, cdfs, lengths, offsets)
    with pytest.raises(CorruptStreamError, match="symbols"):
        rans_decode(data, indexes[:-1], cdfs, lengths, offsets)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_single_byte_corruption_sweep(stream, backend):
    data, indexes, cdfs, lengths, offsets = stream
    symbols = rans_decode(data, indexes, cdfs, lengths, offsets)
    (n, lanes, chunk, escape_bytes), _ = read_varints(data, 4)
    n_chunks = -(-n // chunk)
    _, header = read_varints(data, 4 + n_chunks + n_chunks * lanes)
    words_end = len(data) - escape_bytes
    assert escape_bytes > 0 and words_end > header
    positions = range(len(data)) if backend == "numba" else range(0, len(data), 5)
    missed_words = tried_words = 0
    for at in positions:
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[at] ^= flip
            try:
                out = rans_decode(bytes(bad), indexes, cdfs, lengths, offsets, backend=backend)
            except CorruptStreamError:
                continue
            assert at >= header, f"header damage at byte {at} (xor {flip:#x}) went unnoticed"
            assert out.shape == symbols.shape
            if at < words_end:
                missed_words += 1
        tried_words += header <= at < words_end
    # Word damage: detected by the final-state check with high probability, not certainty.
    assert missed_words <= 0.02 * 3 * max(tried_words, 1)


def test_escape_section_damage_is_detected_when_structural(case):
    symbols, indexes, cdfs, lengths, offsets = case
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    # Dropping the last escape byte (and fixing nothing else) breaks the exact length.
    with pytest.raises(CorruptStreamError):
        rans_decode(data[:-1], indexes, cdfs, lengths, offsets)
    bad = bytearray(data)
    bad[-1] |= 0x80  # the last escape value no longer ends inside the section
    with pytest.raises(CorruptStreamError, match="escape"):
        rans_decode(bytes(bad), indexes, cdfs, lengths, offsets)


def test_version_and_garbage():
    cdfs, lengths, offsets = gaussian_tables([1.0])
    idx = torch.zeros(10, dtype=torch.int32)
    for data in (b"", b"\x02", b"\x01", b"\xff" * 64, bytes(range(256))):
        with pytest.raises(CorruptStreamError):
            rans_decode(data, idx, cdfs, lengths, offsets)


# ----------------------------------------------------------------------------- coded size


def test_size_close_to_ideal_on_gaussian_stream():
    scales = np.exp(np.linspace(math.log(0.11), math.log(20), 24)).tolist()
    cdfs, lengths, offsets = gaussian_tables(scales)
    g = torch.Generator().manual_seed(0)
    n = 50_000
    indexes = torch.randint(0, len(scales), (n,), generator=g, dtype=torch.int32)
    latent = torch.randn(n, generator=g, dtype=torch.float64) * torch.tensor(scales)[indexes.long()]
    symbols = torch.round(latent).int()
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    ideal = ideal_bytes(symbols, indexes, cdfs, lengths, offsets)
    assert ideal * 0.999 <= len(data) <= ideal * 1.005
    assert torch.equal(rans_decode(data, indexes, cdfs, lengths, offsets), symbols)


def test_compressai_tables_round_trip_and_size(compressai_ref):
    """Same table semantics as CompressAI: its GaussianConditional tables and 60000 symbols
    (recorded in tests/fixtures/compressai/), our stream within 0.5 % of its RansEncoder's."""
    records, meta = compressai_ref
    cdfs, lengths, offsets = records["rans.cdfs"], records["rans.lengths"], records["rans.offsets"]
    indexes, symbols = records["rans.indexes"], records["rans.symbols"].clone()
    theirs = meta["rans.compressai_bytes"]
    ours = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    assert abs(len(ours) - theirs) <= 0.005 * theirs
    symbols[::1000] = 10_000  # escapes, which CompressAI codes with its bypass mode
    ours = rans_encode(symbols, indexes, cdfs, lengths, offsets)
    assert torch.equal(rans_decode(ours, indexes, cdfs, lengths, offsets), symbols)


# ----------------------------------------------------------------------------- numba encoder


def test_numba_reciprocal_quotient_is_exact():
    """The encoder's multiply by a reciprocal equals floor division for every frequency
    (1 .. 2**16), at the ends of the state range and on both sides of multiples of d."""
    numba = pytest.importorskip("numba")
    from terracodec.entropy import rans_numba_encoder

    @numba.njit
    def quotients(x, d, table):
        out = np.empty_like(x)
        for k in range(x.size):
            out[k] = rans_numba_encoder._quotient(x[k], table[2 * d[k]], table[2 * d[k] + 1])
        return out

    top = (1 << 63) - 1
    d = np.arange(1, (1 << 16) + 1, dtype=np.int64)
    rng = np.random.default_rng(3)
    big = top // d * d  # the largest multiple of d that is a valid state
    xs = [np.zeros_like(d), d - 1, d, d + 1, big - 1, big, np.minimum(big, top - 1) + 1,
          np.full_like(d, top), np.full_like(d, top - 1), np.full_like(d, 1 << 31),
          rng.integers(0, top, d.size, dtype=np.int64),
          rng.integers(0, 1 << 48, d.size, dtype=np.int64)]
    for x in xs:
        np.testing.assert_array_equal(quotients(x, d, rans_numba_encoder._RECIPROCALS), x // d)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 6, 7, 64])
def test_numba_four_lane_kernel_matches_reference(chunk):
    """4 lanes (the default) take a register kernel: every tail length, escapes on every lane,
    bad indexes in the tail and in full groups."""
    rng = np.random.default_rng(chunk)
    cdfs, lengths, offsets = random_tables(rng, 5, 12)
    symbols, indexes = random_symbols(rng, 203, lengths, offsets, escape_rate=0.2)
    data = rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=4, chunk_symbols=chunk,
                       backend="numba")
    assert data == rans_encode(symbols, indexes, cdfs, lengths, offsets, lanes=4,
                               chunk_symbols=chunk, backend="torch")
    assert torch.equal(rans_decode(data, indexes, cdfs, lengths, offsets), symbols)
    for at in (0, 1, 2, 3, chunk - 1, 202, 200):
        bad = indexes.clone()
        bad[min(at, 202)] = -1
        with pytest.raises(ValueError, match="indexes must be in"):
            rans_encode(symbols, bad, cdfs, lengths, offsets, lanes=4, chunk_symbols=chunk,
                        backend="numba")
