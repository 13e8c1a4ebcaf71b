"""Chained rANS streams (`terracodec.entropy.rans_chain`, tile payload version 2): several
segments with their own tables in one stream, decoded segment by segment, equal to one decode
of the whole chain by the torch reference; damage and misuse are CorruptStreamError; image
models write version 2, still read version 1, and spend fewer bytes on small tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from terracodec.entropy.rans import rans_decode
from terracodec.entropy.rans_chain import ChainReader, Segment, chain_encode, chain_lanes
from terracodec.entropy.rans_stream import varint_decode
from terracodec.errors import CorruptStreamError

from test_rans import random_symbols, random_tables


def make_segments(seed: int, sizes: list[int], escape_rate: float = 0.1) -> list[Segment]:
    """Segments over two tables (the second reused), as a hyperprior and a conditional model."""
    rng = np.random.default_rng(seed)
    tables = [random_tables(rng, 3, 9), random_tables(rng, 5, 14)]
    out = []
    for k, n in enumerate(sizes):
        cdfs, lengths, offsets = tables[min(k, 1)]
        symbols, indexes = random_symbols(rng, n, lengths, offsets, escape_rate)
        out.append(Segment(symbols, indexes, cdfs, lengths, offsets))
    return out


def read_all(data: bytes, segments: list[Segment]) -> list[torch.Tensor]:
    reader = ChainReader(data)
    got = [reader.read(s.indexes, s.cdfs, s.lengths, s.offsets) for s in segments]
    reader.finish()
    return got


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), sizes=st.lists(st.integers(0, 200), min_size=1, max_size=6),
       escape_rate=st.sampled_from([0.0, 0.1, 1.0]))
def test_segments_round_trip_and_equal_one_decode_of_the_whole_chain(seed, sizes, escape_rate) -> None:
    segments = make_segments(seed, sizes, escape_rate)
    data = chain_encode(segments)
    for seg, got in zip(segments, read_all(data, segments)):
        assert got.dtype == torch.int32 and torch.equal(got, seg.symbols)
    # The torch reference decodes the chain in one go with the merged table.
    buf = np.frombuffer(data, np.uint8)
    (n, lanes), pos = varint_decode(buf, 0, 2, "chain header")
    assert n == sum(sizes) and lanes == chain_lanes(n)
    if n:
        distinct = [segments[0]] + ([segments[1]] if len(segments) > 1 else [])
        width = max(d.cdfs.shape[1] for d in distinct)
        cdfs = torch.cat([torch.nn.functional.pad(d.cdfs, (0, width - d.cdfs.shape[1])) for d in distinct])
        lengths = torch.cat([d.lengths for d in distinct])
        offsets = torch.cat([d.offsets for d in distinct])
        base = [0] + [int(segments[0].cdfs.shape[0])] * (len(segments) - 1)
        indexes = torch.cat([s.indexes + b for s, b in zip(segments, base)])
        whole = rans_decode(data[pos:], indexes, cdfs, lengths, offsets, backend="torch", header="none",
                            lanes=int(lanes), chunk_symbols=int(n))
        assert torch.equal(whole, torch.cat([s.symbols for s in segments]))


def test_a_chain_costs_one_flush_not_one_per_segment() -> None:
    from terracodec.entropy.rans import rans_encode

    segments = make_segments(3, [40] * 10, escape_rate=0.0)
    separate = sum(len(rans_encode(s.symbols, s.indexes, s.cdfs, s.lengths, s.offsets)) for s in segments)
    assert len(chain_encode(segments)) < separate - 9 * 8


@pytest.mark.parametrize("damage", ["truncate", "append", "flip_state", "flip_word"])
def test_damage_is_detected(damage: str) -> None:
    segments = make_segments(5, [150, 300, 120], escape_rate=0.0)
    data = bytearray(chain_encode(segments))
    if damage == "truncate":
        data = data[:-3]
    elif damage == "append":
        data += b"\x00\x00\x00\x00"
    elif damage == "flip_state":
        data[6] ^= 0x40
    else:
        data[len(data) // 2] ^= 0x10
    with pytest.raises(CorruptStreamError):
        read_all(bytes(data), segments)


def test_reading_more_or_fewer_symbols_than_the_chain_holds_is_corrupt() -> None:
    segments = make_segments(7, [50, 60])
    data = chain_encode(segments)
    with pytest.raises(CorruptStreamError, match="holds more symbols"):
        read_all(data, segments[:1])
    with pytest.raises(CorruptStreamError, match="fewer symbols"):
        read_all(data, segments + segments[1:])
    with pytest.raises(CorruptStreamError, match="chained-stream header"):
        ChainReader(b"\x05\x02" + data[2:])  # 5 symbols cannot have 2 lanes


# ----------------------------------------------------------------------------- models


def test_image_models_write_chained_payloads_and_still_read_separate_streams() -> None:
    from terracodec.models.payload import CHAINED_PAYLOAD_VERSION, pack_streams
    from terracodec.zoo import load_model

    model = load_model("tec-elic-s2l2a", quality=1)
    x = torch.randn(2, model.bands, 64, 64, generator=torch.Generator().manual_seed(0))
    chained = model.encode_tiles(x)
    assert all(p[0] == CHAINED_PAYLOAD_VERSION for p in chained)
    with torch.no_grad():
        strings, _ = model.compress_latents(model.analysis(x))  # outside a chain: one stream each
    separate = [pack_streams([s[b] for s in strings]) for b in range(2)]
    assert len(strings) == model.num_streams == 11
    a = model.decode_latents_batch(chained, 64, 64)["y_hat"]
    b = model.decode_latents_batch(separate, 64, 64)["y_hat"]
    assert torch.equal(a, b)
    assert all(len(c) < len(s) - 100 for c, s in zip(chained, separate))  # ~15 bytes a stream
    with pytest.raises(CorruptStreamError):
        model.decode_latents_batch([chained[0][:-1]], 64, 64)
