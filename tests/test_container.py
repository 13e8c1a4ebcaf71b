"""The .tec container (checksums, index, versioning), the stream header and the exact layer."""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
import pytest

from terracodec.container import (
    FORMAT_MAJOR,
    MAX_HEADER_BYTES,
    READ_MAJORS,
    ContainerReader,
    ContainerWriter,
    TileRecord,
)
from terracodec.errors import CorruptStreamError
from terracodec.exact import decode_patch, default_valid_range, encode_patch, exact_mask
from terracodec.header import CodecInfo, FrameInfo, StreamHeader
from terracodec.io.meta import FrameMeta, Grid


def _records(frames: int, tiles: int, seed: int = 0) -> dict[tuple[int, int], TileRecord]:
    rng = random.Random(seed)
    return {
        (f, t): TileRecord(rng.randbytes(rng.randint(0, 40)), rng.randbytes(rng.randint(0, 9)), t % 2)
        for f in range(frames)
        for t in range(tiles)
    }


def _container(
    frames: int = 2, tiles: int = 3, seed: int = 0, major: int = FORMAT_MAJOR
) -> tuple[bytes, dict, dict]:
    header = {"hello": "world", "n": [1, 2.5, None], "unicode": "Žust"}
    records = _records(frames, tiles, seed)
    buf = io.BytesIO()
    writer = ContainerWriter(buf, header, frames, tiles, major=major)
    keys = list(records)
    random.Random(seed).shuffle(keys)  # records may arrive in any order
    for key in keys:
        writer.write_tile(*key, records[key])
    size = writer.close()
    data = buf.getvalue()
    assert size == len(data)
    return data, header, records


def _read_all(data: bytes) -> None:
    with ContainerReader(data) as r:
        for key in r.entries:
            r.read_tile(*key)


def test_round_trip_any_write_order():
    data, header, records = _container()
    with ContainerReader(data) as r:
        assert r.header == header
        assert r.version == (FORMAT_MAJOR, 0)
        assert r.file_size == len(data)
        assert set(r.entries) == set(records)
        for key, rec in records.items():
            assert r.read_tile(*key) == rec


def test_random_access_offsets_point_at_records():
    data, _, records = _container(frames=3, tiles=4)
    with ContainerReader(data) as r:
        for key, e in r.entries.items():
            rec = records[key]
            assert data[e.offset : e.offset + e.size] == rec.code + rec.patch
            assert e.flags == rec.flags


def test_every_single_byte_flip_is_detected():
    data, _, _ = _container(frames=2, tiles=3)
    for pos in range(len(data)):
        for flip in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= flip
            with pytest.raises(CorruptStreamError):
                _read_all(bytes(bad))


def test_every_truncation_and_trailing_bytes_are_detected():
    data, _, _ = _container()
    for cut in range(len(data)):
        with pytest.raises(CorruptStreamError):
            _read_all(data[:cut])
    with pytest.raises(CorruptStreamError, match="trailing|bytes after the end"):
        _read_all(data + b"\0")
    classic, _, _ = _container(major=3)
    with pytest.raises(CorruptStreamError, match="trailing"):
        _read_all(classic + b"\0")


def test_not_a_tec_file():
    with pytest.raises(CorruptStreamError, match="not a .tec file"):
        ContainerReader(b"II*\0" + bytes(100))


def _rewrite_preamble(data: bytes, major: int, minor: int) -> bytes:
    """`data` (major 5: a 20-byte preamble) with another version number, CRC recomputed."""
    header_len = struct.unpack_from("<I", data, 12)[0]
    head = data[:8] + struct.pack("<HH", major, minor) + data[12:16]
    crc = zlib.crc32(head + data[20 : 20 + header_len])
    return head + struct.pack("<I", crc) + data[20:]


def test_future_major_version_is_refused_cleanly():
    data, _, _ = _container()
    with pytest.raises(CorruptStreamError, match=rf"unsupported .tec format version {max(READ_MAJORS) + 1}\.0"):
        ContainerReader(_rewrite_preamble(data, max(READ_MAJORS) + 1, 0))


def test_later_minor_version_is_read():
    data, header, _ = _container()
    with ContainerReader(_rewrite_preamble(data, FORMAT_MAJOR, 7)) as r:
        assert r.version == (FORMAT_MAJOR, 7)
        assert r.header == header


def test_writer_refuses_missing_and_duplicate_tiles():
    writer = ContainerWriter(io.BytesIO(), {}, 1, 2)
    writer.write_tile(0, 0, TileRecord(b"a", b""))
    with pytest.raises(ValueError):
        writer.write_tile(0, 0, TileRecord(b"a", b""))
    with pytest.raises(ValueError):
        writer.write_tile(1, 0, TileRecord(b"a", b""))
    with pytest.raises(ValueError, match="never written"):
        writer.close()


# ----------------------------------------------------------------------------- exact layer


def test_exact_patch_round_trip_uint16():
    rng = np.random.default_rng(0)
    px = rng.integers(1, 12000, (3, 17, 23), dtype=np.uint16)
    px[0, :4] = 0           # nodata
    px[1, 5, 5] = 65535     # saturated
    px[2, 6, 7] = 40000     # out of range
    mask = exact_mask(px, 0.0, default_valid_range("uint16"))
    assert mask.sum() == 4 * 23 + 2
    m2, values = decode_patch(encode_patch(px, mask), px.shape, px.dtype)
    np.testing.assert_array_equal(m2, mask)
    np.testing.assert_array_equal(values, px[mask])


def test_exact_patch_float_nan_and_inf():
    px = np.linspace(-1, 1, 2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    px[0, 0, 0], px[1, 2, 3], px[1, 4, 5] = np.nan, np.inf, -9999.0
    mask = exact_mask(px, -9999.0, default_valid_range("float32"))
    assert mask.sum() == 3
    m2, values = decode_patch(encode_patch(px, mask), px.shape, px.dtype)
    out = np.zeros_like(px)
    out[m2] = values
    assert np.isnan(out[0, 0, 0]) and out[1, 2, 3] == np.inf and out[1, 4, 5] == -9999.0


def test_empty_patch_is_empty():
    px = np.full((2, 4, 4), 100, np.uint16)
    assert encode_patch(px, exact_mask(px, None, default_valid_range("uint16"))) == b""


def test_malformed_patch_is_refused():
    px = np.zeros((1, 4, 4), np.uint16)
    good = encode_patch(px, np.ones(px.shape, bool))
    with pytest.raises(CorruptStreamError):
        decode_patch(good[:-3], px.shape, px.dtype)
    with pytest.raises(CorruptStreamError):
        decode_patch(zlib.compress(b"\xff\xff"), px.shape, px.dtype)  # 16 bits set, no values


# ----------------------------------------------------------------------------- header


def _header() -> StreamHeader:
    return StreamHeader(
        codec=CodecInfo("toy", 2, "ab" * 32, "image", 2, ["B04", "B08"], 16),
        normalization={"mean": [1.0, 2.0], "std": [3.0, 4.0]},
        grid=Grid(10, 20, 2, "float32", None, (10.0, 0.0, 5.0, 0.0, -10.0, 7.0)),
        valid_range=default_valid_range("float32"),
        tile_size=32,
        frames=[FrameInfo(FrameMeta("a.tif", nodata=float("nan"), descriptions=["B08", "B04"],
                                    timestamp="2020-01-01"), [1, 0])],
        writer="test",
    )


def test_header_json_round_trip_keeps_nan_nodata():
    import json

    h = _header()
    d = json.loads(json.dumps(h.to_json(), allow_nan=False))  # strict JSON
    back = StreamHeader.from_json(d)
    assert back.codec == h.codec and back.grid == h.grid and back.tile_size == 32
    assert np.isnan(back.frames[0].meta.nodata) and back.frames[0].band_order == [1, 0]


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.pop("grid"),
        lambda d: d["grid"].update(dtype="complex64"),
        lambda d: d["grid"].update(height=0),
        lambda d: d["frames"][0].update(band_order=[0, 0]),
        lambda d: d["tiling"].update(tile_size=20),
        lambda d: d["frames"].clear(),
        lambda d: d["frames"][0].update(nodata="nope"),
    ],
)
def test_malformed_header_is_refused(edit):
    d = _header().to_json()
    edit(d)
    with pytest.raises(CorruptStreamError, match="malformed header"):
        StreamHeader.from_json(d)


def test_header_ignores_keys_added_by_later_minor_versions():
    d = _header().to_json()
    d["codec"]["future"] = 1
    d["frames"][0]["future"] = {"x": 1}
    d["grid"]["future"] = True
    assert StreamHeader.from_json(d).codec.name == "toy"


def test_layout_is_as_documented_in_format_md():
    """Parse a major 5 file by hand, following docs/FORMAT.md sections 1 and 3 byte by byte."""
    import json

    from terracodec.layout_compact import HEADER_DICTIONARY

    data, header, records = _container(frames=2, tiles=3)
    assert data[:8] == b"\x89TEC\r\n\x1a\n"
    major, minor, n, header_crc = struct.unpack_from("<HHII", data, 8)
    assert (major, minor) == (5, 0) and header_crc == zlib.crc32(data[:16] + data[20 : 20 + n])
    assert json.loads(zlib.decompressobj(zdict=HEADER_DICTIONARY).decompress(data[20 : 20 + n])) == header
    index_len, count, index_crc, mark = struct.unpack_from("<III4s", data, len(data) - 16)
    assert (count, mark) == (6, b"TEC\x05")
    index = data[len(data) - 16 - index_len : len(data) - 16]
    assert index_crc == zlib.crc32(index + data[len(data) - 16 : len(data) - 8])
    pos, offset, keys = 0, 20 + n, []

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = index[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    for _ in range(count):
        frame, tile, code_len, patch_len, flags = (varint() for _ in range(5))
        (crc,) = struct.unpack_from("<I", index, pos)
        pos += 4
        rec = records[(frame, tile)]
        assert data[offset : offset + code_len] == rec.code
        assert data[offset + code_len : offset + code_len + patch_len] == rec.patch
        assert flags == rec.flags and crc == zlib.crc32(rec.code + rec.patch)
        offset += code_len + patch_len
        keys.append((frame, tile))
    assert pos == index_len and offset == len(data) - 16 - index_len
    assert sorted(keys) == sorted(records)  # in file order: the order they were written


def test_classic_layout_is_as_documented_in_format_md():
    """Parse a major 3 file (the classic layout, still read) by hand."""
    import json

    data, header, records = _container(frames=2, tiles=3, major=3)
    assert data[:8] == b"\x89TEC\r\n\x1a\n"
    major, minor, n, e, header_crc = struct.unpack_from("<HHIII", data, 8)
    assert (major, minor, e) == (3, 0, 6)
    assert header_crc == zlib.crc32(data[:20] + data[24 : 24 + n])
    assert json.loads(zlib.decompress(data[24 : 24 + n])) == header  # major 3: zlib (RFC 1950)
    index = data[24 + n : 24 + n + 32 * e]
    payload_end, index_crc = struct.unpack_from("<QI", data, 24 + n + 32 * e)
    assert payload_end == len(data) and index_crc == zlib.crc32(index + struct.pack("<Q", payload_end))
    keys = []
    for i in range(e):
        frame, tile, offset, code_len, patch_len, flags, crc = struct.unpack_from("<IIQIIII", index, 32 * i)
        rec = records[(frame, tile)]
        assert offset >= 36 + n + 32 * e
        assert data[offset : offset + code_len] == rec.code
        assert data[offset + code_len : offset + code_len + patch_len] == rec.patch
        assert flags == rec.flags and crc == zlib.crc32(rec.code + rec.patch)
        keys.append((frame, tile))
    assert keys == sorted(records)


@pytest.mark.parametrize("major", READ_MAJORS)
def test_every_known_major_is_read(major):
    """Files of majors 1 and 2 (plain JSON header) still read; 3 and 4 compress the header, 5
    with a preset dictionary and the index at the end."""
    data, header, records = _container(major=major)
    n = struct.unpack_from("<I", data, 12)[0]
    plain = json_bytes(header)
    start = 20 if major == 5 else 24
    assert (data[start : start + n] == plain) == (major < 3)
    with ContainerReader(data) as r:
        assert r.version == (major, 0) and r.header == header
        assert {k: r.read_tile(*k) for k in r.entries} == records


def json_bytes(header: dict) -> bytes:
    import json

    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def test_compressed_header_is_smaller_for_a_real_sized_header():
    header = {"frames": [{"band_order": list(range(12)), "tags": {"SENSOR": "Sentinel-2 MSI"}, "i": i}
                         for i in range(5)], "normalization": {"mean": [793.2429999999999] * 12}}
    buf = io.BytesIO()
    ContainerWriter(buf, header, 1, 1).write_tile(0, 0, TileRecord(b"x", b""))
    n = struct.unpack_from("<I", buf.getvalue(), 12)[0]
    assert n < len(json_bytes(header)) / 3


def _with_header_bytes(data: bytes, stored: bytes) -> bytes:
    """`data` with its stored header replaced (CRC recomputed, so only the content is wrong)."""
    n = struct.unpack_from("<I", data, 12)[0]
    start = 20 if struct.unpack_from("<H", data, 8)[0] == 5 else 24
    head = data[:12] + struct.pack("<I", len(stored)) + data[16:start - 4]
    rest = data[start + n :]
    # the index offsets are absolute: keep them valid by keeping the header length
    assert len(stored) == n
    return head + struct.pack("<I", zlib.crc32(head + stored)) + stored + rest


@pytest.mark.parametrize("major", [3, 5])
def test_header_that_does_not_inflate_is_corrupt(major):
    data, _, _ = _container(major=major)
    n = struct.unpack_from("<I", data, 12)[0]
    with pytest.raises(CorruptStreamError, match="header does not inflate|not one complete"):
        ContainerReader(_with_header_bytes(data, bytes(n)))
    truncated = zlib.compress(json_bytes({"a": 1}))[:-3]
    padded = truncated + bytes(n - len(truncated))  # a cut stream followed by junk
    with pytest.raises(CorruptStreamError, match="header"):
        ContainerReader(_with_header_bytes(data, padded))


def test_header_inflating_past_the_limit_is_refused(monkeypatch):
    import terracodec.container as container

    big = {"pad": "a" * 5000}
    buf = io.BytesIO()
    writer = ContainerWriter(buf, big, 1, 1)
    writer.write_tile(0, 0, TileRecord(b"", b""))
    writer.close()
    monkeypatch.setattr(container, "MAX_HEADER_BYTES", 1000)
    with pytest.raises(CorruptStreamError, match="beyond its size limit"):
        ContainerReader(buf.getvalue())
    assert MAX_HEADER_BYTES == 8 << 20
