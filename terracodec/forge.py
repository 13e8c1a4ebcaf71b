"""Forged `.tec` files: what an attacker (or a bug) can put in a file whose checksums are right.

Used by the fuzzing tests and `benchmarks/hostile.py`. `rebuild` writes a container byte by byte
from parts (header JSON or raw header bytes, index entries, records) with every CRC, offset and
length recomputed, so that the reader's checks of meaning, not its checksums, are what refuse
the file. `corpus` is a named set of hostile files made from one real stream: forged
dimensions and counts, decompression bombs, malformed fields.
"""

from __future__ import annotations

import copy
import json
import random
import struct
import zlib
from typing import Any, Callable

from terracodec import limits
from terracodec.header_compact import expand
from terracodec.layout_compact import COMPACT_MAJOR, HEADER_DICTIONARY, compress_header, footer, index_bytes
from terracodec.container import _ENTRY, _PREAMBLE, _TRAILER, COMPACT_MAJORS, MAGIC, ContainerReader, IndexEntry

Parts = tuple[dict, list[IndexEntry], dict[tuple[int, int], bytes]]

#: Corpus files whose header and index are sound: only reading their tiles (decoding) can
#: refuse them; `tec info`, which reads no tile, describes them.
TILE_LEVEL = ("patch_bomb_1g", "payload_garbage")


def parse(data: bytes) -> Parts:
    """(header dict, index entries, record bytes by (frame, tile)) of a valid stream; the
    header in the full schema (a major 5 header expanded), so that forgeries edit real fields."""
    with ContainerReader(data) as r:
        records = {k: data[e.offset : e.offset + e.size] for k, e in r.entries.items()}
        header = expand(r.header) if r.version[0] in COMPACT_MAJORS else r.header
        return copy.deepcopy(header), list(r.entries.values()), records


def rebuild(header: dict | bytes, entries: list[IndexEntry], records: dict[tuple[int, int], bytes],
            *, major: int = COMPACT_MAJOR, count: int | None = None, compress: bool = True) -> bytes:
    """A container with CRCs, offsets and lengths made right for whatever it holds (the compact
    layout of major 5, or the classic one). `header` is a JSON object (dumped as is) or the raw
    JSON bytes; `count` overrides the entry count field; `compress` False stores `header` bytes
    as they are (already compressed)."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    if major == COMPACT_MAJOR:
        return _rebuild_compact(raw if not compress else compress_header(raw), entries, records, count)
    stored = zlib.compress(raw, 9) if compress and major >= 3 else raw
    n = len(entries) if count is None else count
    head = struct.pack("<8sHHII", MAGIC, major, 0, len(stored), n)
    start = _PREAMBLE.size + len(stored) + len(entries) * _ENTRY.size + _TRAILER.size
    index, body, pos = b"", b"", start
    for e in entries:
        rec = records.get((e.frame, e.tile), b"")
        code_len = min(e.code_len, len(rec))
        index += _ENTRY.pack(e.frame, e.tile, pos, code_len, len(rec) - code_len, e.flags, zlib.crc32(rec))
        body += rec
        pos += len(rec)
    trailer = _TRAILER.pack(pos, zlib.crc32(index + struct.pack("<Q", pos)))
    return head + struct.pack("<I", zlib.crc32(head + stored)) + stored + index + trailer + body


def _rebuild_compact(stored: bytes, entries: list[IndexEntry], records: dict[tuple[int, int], bytes],
                     count: int | None) -> bytes:
    head = struct.pack("<8sHHI", MAGIC, COMPACT_MAJOR, 0, len(stored))
    body, rows = b"", []
    for e in entries:
        rec = records.get((e.frame, e.tile), b"")
        code_len = min(e.code_len, len(rec))
        rows.append((e.frame, e.tile, code_len, len(rec) - code_len, e.flags, zlib.crc32(rec)))
        body += rec
    index = index_bytes(rows)
    n = len(rows) if count is None else count
    tail = footer(index, n)
    return head + struct.pack("<I", zlib.crc32(head + stored)) + stored + body + index + tail


def _edit(data: bytes, change: Callable[[dict], Any]) -> bytes:
    header, entries, records = parse(data)
    change(header)
    return rebuild(header, entries, records)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def change(h: dict) -> None:
        keys = path.split(".")
        node = h
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value

    return change


def zlib_bomb(inflated: int) -> bytes:
    """A zlib stream of `inflated` zero bytes (~1000x smaller), made in milliseconds: one
    compressed MiB, fully flushed (so it stands alone), repeated."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = comp.compress(bytes(1 << 20)) + comp.flush(zlib.Z_FULL_FLUSH)
    mib = inflated >> 20
    adler = 1
    for _ in range(min(mib, 1)):
        adler = zlib.adler32(bytes(1 << 20), adler)
    # the checksum is of one MiB only: a reader stops at its size limit long before it
    return b"\x78\xda" + block * mib + comp.flush() + struct.pack(">I", adler)


def _patch_bomb(data: bytes, inflated: int) -> bytes:
    """The first tile's patch replaced by a zlib stream of `inflated` zero bytes."""
    header, entries, records = parse(data)
    e = entries[0]
    records[e.frame, e.tile] = records[e.frame, e.tile][: e.code_len] + zlib_bomb(inflated)
    return rebuild(header, entries, records)


def _header_bomb(data: bytes, size: int) -> bytes:
    """A header of `size` bytes of nested empty objects (tiny once compressed)."""
    _, entries, records = parse(data)
    unit = b'{"a":{},"b":[[],[],[]]},'
    raw = b"[" + unit * (size // len(unit)) + b"{}]"
    return rebuild(_compress_fast(raw), entries, records, compress=False)


def _compress_fast(raw: bytes) -> bytes:
    """Header bytes as major 5 stores them, compressed fast (a bomb is large)."""
    c = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    return c.compress(raw) + c.flush()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def corpus(data: bytes, names: Any = None) -> dict[str, bytes]:
    """Hostile files made from the valid stream `data` (one frame, a few tiles): all, or those
    in `names` (`CORPUS_NAMES`)."""
    header, entries, records = parse(data)
    makers = _makers(data, header, entries, records)
    return {name: makers[name]() for name in (names or CORPUS_NAMES)}


def _makers(data: bytes, header: dict, entries: list[IndexEntry], records: dict) -> dict[str, Callable[[], bytes]]:
    out: dict[str, Callable[[], bytes]] = {
        "huge_dimensions_small_tiles": lambda: _edit(data, lambda h: (_set("grid.height", 1 << 31)(h), _set("grid.width", 1 << 31)(h), _set("tiling.tile_size", 16)(h))),
        "dimensions_40000": lambda: _edit(data, lambda h: (_set("grid.height", 40000)(h), _set("grid.width", 40000)(h))),
        "tile_size_1m": lambda: _edit(data, _set("tiling.tile_size", 1 << 20)),
        "tile_size_4096": lambda: _edit(data, _set("tiling.tile_size", 4096)),
        "entry_count_field_4g": lambda: rebuild(header, entries, records, count=0xFFFFFFFF),
        "many_frames": lambda: _edit(data, lambda h: h.__setitem__("frames", h["frames"] * 30000)),
        "patch_bomb_1g": lambda: _patch_bomb(data, 1 << 30),
        "header_bomb": lambda: _header_bomb(data, limits.MAX_HEADER_JSON + (1 << 20)),
        "header_bomb_under_cap": lambda: _header_bomb(data, limits.MAX_HEADER_JSON - 64),
        "frames_under_cap": lambda: _edit(data, lambda h: h.__setitem__(
            "frames", h["frames"] * (limits.MAX_HEADER_JSON // (2 * len(json.dumps(h["frames"][0])))))),
        "header_nested_100k": lambda: rebuild(_nested(100_000), entries, records),
        "header_nested_dicts": lambda: rebuild(b'{"a":' * 5000 + b"1" + b"}" * 5000, entries, records),
        "height_string": lambda: _edit(data, _set("grid.height", "512")),
        "height_float": lambda: _edit(data, _set("grid.height", 512.0)),
        "height_bool": lambda: _edit(data, _set("grid.height", True)),
        "crs_garbage": lambda: _edit(data, _set("grid.crs_wkt", "GEOGCS[garbage")),
        "descriptions_ints": lambda: _edit(data, _set("frames.0.descriptions", list(range(len(header["frames"][0]["descriptions"]))))),
        "nodata_huge": lambda: _edit(data, _set("frames.0.nodata", 1e308)),
        "nodata_list": lambda: _edit(data, _set("frames.0.nodata", [0])),
        "quality_list": lambda: _edit(data, _set("codec.quality", [1, 2])),
        "bands_1000": lambda: _edit(data, lambda h: (_set("codec.bands", 1000)(h), _set("grid.count", 1000)(h))),
        "band_order_bad": lambda: _edit(data, _set("frames.0.band_order", [0] * len(header["frames"][0]["band_order"]))),
        "transform_short": lambda: _edit(data, _set("grid.transform", [1, 0, 0])),
        "normalization_zero_std": lambda: _edit(data, lambda h: h["normalization"].__setitem__("std", [0.0] * len(h["normalization"]["std"]))),
        "kind_unknown": lambda: _edit(data, _set("codec.kind", "video")),
        "dtype_object": lambda: _edit(data, _set("grid.dtype", "object")),
        "valid_range_reversed": lambda: _edit(data, _set("valid_range", [100, -100])),
        "dn_scale_zero": lambda: _edit(data, _set("frames.0.dn_scale", 0)),
        "band_shift_short": lambda: _edit(data, _set("frames.0.band_shift", [1.0])),
        "band_shift_huge": lambda: _edit(data, _set("frames.0.band_shift", [1e300] * len(header["frames"][0]["band_order"]))),
        "band_order_all_absent": lambda: _edit(data, _set("frames.0.band_order", [-1] * len(header["frames"][0]["band_order"]))),
        "tags_nested": lambda: _edit(data, _set("frames.0.tags", {"a": {"b": 1}})),
        "header_not_object": lambda: rebuild(b"[1, 2, 3]", entries, records),
        "header_nan_literal": lambda: rebuild(json.dumps(header).replace('"transform": [', '"transform": [NaN, ').encode(), entries, records),
        "index_key_out_of_range": lambda: rebuild(header, [IndexEntry(e.frame + 5, e.tile, 0, e.code_len, e.patch_len, e.flags, 0) for e in entries], {(e.frame + 5, e.tile): records[e.frame, e.tile] for e in entries}),
        "index_missing_entry": lambda: rebuild(header, entries[:-1], records),
        "payload_garbage": lambda: rebuild(header, entries, {k: bytes(random.Random(1).randbytes(len(v))) for k, v in records.items()}),
        "unknown_major": lambda: rebuild(header, entries, records, major=99),
    }
    return out


#: Names of the files `corpus` makes.
CORPUS_NAMES = (
    "huge_dimensions_small_tiles", "dimensions_40000", "tile_size_1m", "tile_size_4096",
    "entry_count_field_4g", "many_frames", "patch_bomb_1g", "header_bomb", "header_bomb_under_cap",
    "frames_under_cap", "header_nested_100k", "header_nested_dicts", "height_string", "height_float",
    "height_bool", "crs_garbage", "descriptions_ints", "nodata_huge", "nodata_list", "quality_list",
    "bands_1000", "band_order_bad", "transform_short", "normalization_zero_std", "kind_unknown",
    "dtype_object", "valid_range_reversed", "dn_scale_zero", "band_shift_short", "band_shift_huge",
    "band_order_all_absent", "tags_nested", "header_not_object",
    "header_nan_literal", "index_key_out_of_range", "index_missing_entry", "payload_garbage",
    "unknown_major",
)

#: Values a mutation puts into a header field: wrong types, extremes, near-misses.
HOSTILE_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 3, 16, 2**31, 2**63, -(2**63), 1e308, -1e-308, 0.5, float(2**53),
    "", "x", "nan", "inf", "512", "GEOGCS[", "a" * 5000, [], [0], [1, 2, 3], [[0] * 5] * 3,
    {}, {"a": 1}, {"a": {"b": []}}, list(range(13)), [None] * 13, ["B01"] * 13,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every (key, ...) path to a value in a JSON tree (lists: up to 3 items each)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, prefix + (i,))
    return out


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random forgery of a valid stream, checksums made right: a header field set to a
    hostile value or deleted, bytes of a tile record flipped, the stream cut or extended."""
    header, entries, records = parse(data)
    kind = rng.choice(("field", "field", "field", "delete", "record", "cut"))
    if kind in ("field", "delete"):
        path = rng.choice(_paths(header))
        node = header
        for k in path[:-1]:
            node = node[k]
        if kind == "delete" and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = rng.choice(HOSTILE_VALUES)
        return rebuild(header, entries, records)
    if kind == "record":
        key = rng.choice(sorted(records))
        rec = bytearray(records[key])
        for _ in range(rng.randint(1, 8)):
            if rec:
                rec[rng.randrange(len(rec))] = rng.randrange(256)
        records[key] = bytes(rec)
        return rebuild(header, entries, records)
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data))]
    return data + bytes(rng.randrange(1, 64))


__all__ = ["CORPUS_NAMES", "HOSTILE_VALUES", "TILE_LEVEL", "corpus", "mutate", "parse", "rebuild"]
