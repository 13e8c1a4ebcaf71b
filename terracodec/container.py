"""The `.tec` container: a checksummed header, a tile index and tile records (docs/FORMAT.md).

The container knows nothing about models or rasters: it stores a JSON header (given by the
API) and opaque tile records keyed by (frame, tile), each with a CRC32, behind a fixed-size
index so that a reader can fetch any tile with one seek. The writer streams: records are
appended as they are produced, in any order, and the index is filled in when it closes.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from terracodec import layout_compact as compact
from terracodec import limits
from terracodec.errors import CorruptStreamError, InputError
from terracodec.layout_compact import COMPACT_MAJOR

MAGIC = b"\x89TEC\r\n\x1a\n"
#: 1.0: the header is plain UTF-8 JSON.
PLAIN_HEADER_MAJOR = 1
#: 1.0 plus per-frame `dn_offset` that a reader must apply (written by terracodec 0.1.0 for
#: files with a nonzero `dn_offset` only, so that a 1.x reader refused exactly those).
DN_OFFSET_MAJOR = 2
#: 2.0 with the JSON header zlib-compressed (RFC 1950): a header is 40-75 % of a small chip's
#: file, and compressing it halves it (docs/FORMAT.md, Versioning). What this writer writes.
ZLIB_HEADER_MAJOR = 3
#: 3.0 plus a per-frame `dn_scale` (reflectance coded as DN) that a reader must apply: written
#: only for files with such a frame, so that a 3.x reader refuses exactly those.
DN_SCALE_MAJOR = 4
#: The compact layout (`terracodec.layout_compact`): index at the end, 8 bytes an entry, the
#: header in the compact schema (`terracodec.header_compact`). What this writer writes.
FORMAT_MAJOR = COMPACT_MAJOR
#: The compact layout plus per-frame `band_shift` (band centring) that a reader must apply:
#: written only for streams with such a frame, so that a 5.x reader refuses exactly those.
BAND_SHIFT_MAJOR = 6
#: Major 6 with image models' tile payloads chained into one rANS stream (payload version 2,
#: `terracodec.models.payload`) and frames lacking bands stored without their default lists:
#: what this writer writes for image models, so that a 6.x reader refuses those files.
CHAINED_MAJOR = 7
#: Major 7 with TEC-TT / FlexTEC frames' steps chained into one rANS stream per tile (payload
#: version 4, `terracodec.temporal.step_streams`): what this writer writes for those models.
CHAINED_STEPS_MAJOR = 8
#: Majors in the compact layout.
COMPACT_MAJORS = (COMPACT_MAJOR, BAND_SHIFT_MAJOR, CHAINED_MAJOR, CHAINED_STEPS_MAJOR)
FORMAT_MINOR = 0
#: Majors this reader knows.
READ_MAJORS = (PLAIN_HEADER_MAJOR, DN_OFFSET_MAJOR, ZLIB_HEADER_MAJOR, DN_SCALE_MAJOR, COMPACT_MAJOR,
               BAND_SHIFT_MAJOR, CHAINED_MAJOR, CHAINED_STEPS_MAJOR)

_PREAMBLE = struct.Struct("<8sHHIII")   # magic, major, minor, header_len, entry_count, header_crc
_ENTRY = struct.Struct("<IIQIIII")      # frame, tile, offset, code_len, patch_len, flags, crc32
_TRAILER = struct.Struct("<QI")         # payload_end, index_crc32
#: The index as a numpy structured array (one row per `_ENTRY`).
INDEX_DTYPE = np.dtype([("frame", "<u4"), ("tile", "<u4"), ("offset", "<u8"), ("code_len", "<u4"),
                        ("patch_len", "<u4"), ("flags", "<u4"), ("crc32", "<u4")])
#: Largest header, as stored and as inflated JSON (`terracodec.limits`).
MAX_HEADER_BYTES = limits.MAX_HEADER_JSON

#: Index flag: the tile has no model payload (every pixel is stored exactly in its patch).
FLAG_EXACT_ONLY = 1


@dataclass(frozen=True)
class IndexEntry:
    """Where one tile record lies in the file."""

    frame: int
    tile: int
    offset: int
    code_len: int
    patch_len: int
    flags: int
    crc32: int

    @property
    def size(self) -> int:
        return self.code_len + self.patch_len


@dataclass(frozen=True)
class TileRecord:
    """A tile as stored: the model's bytes and the exact-pixel patch (docs/FORMAT.md section 4)."""

    code: bytes
    patch: bytes
    flags: int = 0


def _crc(*parts: bytes) -> int:
    value = 0
    for part in parts:
        value = zlib.crc32(part, value)
    return value & 0xFFFFFFFF


def _inflate_header(data: bytes, zdict: bytes = b"") -> bytes:
    """The JSON bytes of a zlib-compressed header, at most `MAX_HEADER_BYTES` of them (a forged
    header cannot make the reader inflate gigabytes); `zdict`: major 5's preset dictionary."""
    inflater = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_HEADER_BYTES)
    except zlib.error as exc:
        raise CorruptStreamError(f"corrupt .tec file: header does not inflate ({exc})") from None
    if inflater.unconsumed_tail:
        raise CorruptStreamError("corrupt .tec file: header inflates beyond its size limit")
    if not inflater.eof or inflater.unused_data:
        raise CorruptStreamError("corrupt .tec file: header is not one complete zlib stream")
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid in a .tec header (FORMAT.md: numbers are finite)")


class ContainerWriter:
    """Streams a `.tec` file into a seekable binary file object.

    `frames * tiles` records must be written (any order) before `close()`; the index is reserved
    right after the header and filled in by `close()`.
    """

    def __init__(self, fileobj: BinaryIO, header: dict, frames: int, tiles: int,
                 major: int = FORMAT_MAJOR) -> None:
        if major not in READ_MAJORS:
            raise ValueError(f"cannot write .tec format major {major}")
        self._f = fileobj
        self._frames, self._tiles = frames, tiles
        try:
            header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":"),
                                      allow_nan=False).encode("utf-8")
        except ValueError as exc:  # NaN or infinity: FORMAT.md forbids the literals
            raise InputError(f"cannot write a .tec header: {exc}") from None
        if len(header_bytes) > MAX_HEADER_BYTES:
            raise InputError(
                f"cannot write a .tec header of {len(header_bytes)} bytes (at most {MAX_HEADER_BYTES}): "
                "too much metadata (tags) per frame"
            )
        if not 0 <= frames * tiles <= limits.MAX_ENTRIES:
            raise InputError(f"cannot write {frames} x {tiles} tiles (at most {limits.MAX_ENTRIES})")
        if major in COMPACT_MAJORS:
            header_bytes = compact.compress_header(header_bytes)
        elif major >= ZLIB_HEADER_MAJOR:
            header_bytes = zlib.compress(header_bytes, 9)
        count = frames * tiles
        self._major = major
        self._start = fileobj.tell()
        if major in COMPACT_MAJORS:  # the index goes after the records, at close
            head = struct.pack("<8sHHI", MAGIC, major, FORMAT_MINOR, len(header_bytes))
            fileobj.write(head + struct.pack("<I", _crc(head, header_bytes)) + header_bytes)
        else:
            head = struct.pack("<8sHHII", MAGIC, major, FORMAT_MINOR, len(header_bytes), count)
            fileobj.write(head + struct.pack("<I", _crc(head, header_bytes)) + header_bytes)
            self._index_pos = fileobj.tell()
            fileobj.write(bytes(count * _ENTRY.size + _TRAILER.size))
        self._pos = fileobj.tell()
        self._order: list[tuple[int, int]] = []
        self._entries: dict[tuple[int, int], IndexEntry] = {}
        self._closed = False

    def write_tile(self, frame: int, tile: int, record: TileRecord) -> None:
        """Append one tile record."""
        if not (0 <= frame < self._frames and 0 <= tile < self._tiles):
            raise ValueError(f"tile ({frame}, {tile}) outside {self._frames}x{self._tiles}")
        if (frame, tile) in self._entries:
            raise ValueError(f"tile ({frame}, {tile}) written twice")
        self._f.seek(self._pos)
        self._f.write(record.code)
        self._f.write(record.patch)
        self._entries[(frame, tile)] = IndexEntry(
            frame, tile, self._pos - self._start, len(record.code), len(record.patch),
            record.flags, _crc(record.code, record.patch),
        )
        self._order.append((frame, tile))
        self._pos += len(record.code) + len(record.patch)

    def close(self) -> int:
        """Write the index; returns the container's size in bytes."""
        if self._closed:
            return self._pos - self._start
        missing = self._frames * self._tiles - len(self._entries)
        if missing:
            raise ValueError(f"{missing} tiles were never written")
        if self._major in COMPACT_MAJORS:
            rows = [self._entries[k] for k in self._order]
            index = compact.index_bytes([(e.frame, e.tile, e.code_len, e.patch_len, e.flags, e.crc32) for e in rows])
            self._f.seek(self._pos)
            self._f.write(index + compact.footer(index, len(rows)))
            self._pos += len(index) + compact.FOOTER.size
            self._closed = True
            return self._pos - self._start
        index = b"".join(
            _ENTRY.pack(e.frame, e.tile, e.offset, e.code_len, e.patch_len, e.flags, e.crc32)
            for _, e in sorted(self._entries.items())
        )
        end = self._pos - self._start
        self._f.seek(self._index_pos)
        self._f.write(index + _TRAILER.pack(end, _crc(index, struct.pack("<Q", end))))
        self._f.seek(self._pos)
        self._closed = True
        return end


class ContainerReader:
    """Reads and verifies a `.tec` container: header and index at open, each tile on demand."""

    def __init__(self, source: str | os.PathLike | bytes | BinaryIO, *, lazy_index: bool = False) -> None:
        """Open and verify `source`; `lazy_index` defers reading the index to `load_index()`
        (after the caller has checked `count` against the header)."""
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._f: BinaryIO = io.BytesIO(bytes(source))
            self._owned = True
        elif isinstance(source, (str, os.PathLike)):
            self._f = open(source, "rb")  # noqa: SIM115 - closed by close()
            self._owned = True
        else:
            self._f, self._owned = source, False
        try:
            self._read_head()
            if not lazy_index:
                self.load_index()
        except BaseException:
            self.close()
            raise

    def _read_exact(self, offset: int, size: int, what: str) -> bytes:
        if offset + size > self.file_size:
            raise CorruptStreamError(f"truncated .tec file: {what} runs past the end")
        self._f.seek(offset)
        data = self._f.read(size)
        if len(data) != size:
            raise CorruptStreamError(f"truncated .tec file: {what} runs past the end")
        return data

    def _read_head(self) -> None:
        self._f.seek(0, os.SEEK_END)
        self.file_size = self._f.tell()
        if self.file_size < len(MAGIC) or self._read_exact(0, len(MAGIC), "magic") != MAGIC:
            raise CorruptStreamError("not a .tec file (bad magic number)")
        major, minor = struct.unpack("<HH", self._read_exact(8, 4, "preamble"))
        if major in COMPACT_MAJORS:
            pre = self._read_exact(0, compact.HEAD.size, "preamble")
            _, major, minor, header_len, header_crc = compact.HEAD.unpack(pre)
            data_start = compact.HEAD.size + header_len
            count, self._index_pos = compact.read_footer(self._read_exact, self.file_size, data_start)
        else:
            pre = self._read_exact(0, _PREAMBLE.size, "preamble")
            _, major, minor, header_len, count, header_crc = _PREAMBLE.unpack(pre)
        if major not in READ_MAJORS:
            raise CorruptStreamError(
                f"unsupported .tec format version {major}.{minor} "
                f"(this terracodec reads {', '.join(f'{m}.x' for m in READ_MAJORS)})"
            )
        self.version = (major, minor)
        if header_len > MAX_HEADER_BYTES:
            raise CorruptStreamError("corrupt .tec file: header length is implausible")
        if count > limits.MAX_ENTRIES:
            raise CorruptStreamError("corrupt .tec file: tile count is implausible")
        header_bytes = self._read_exact(len(pre), header_len, "header")
        if _crc(pre[:-4], header_bytes) != header_crc:
            raise CorruptStreamError("corrupt .tec file: header checksum mismatch")
        if major >= ZLIB_HEADER_MAJOR:
            header_bytes = _inflate_header(header_bytes, compact.HEADER_DICTIONARY if major in COMPACT_MAJORS else b"")
        try:
            self.header = json.loads(header_bytes.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptStreamError(f"corrupt .tec file: header is not JSON ({exc})") from None
        except RecursionError:
            raise CorruptStreamError("corrupt .tec file: header nests too deeply") from None
        if not isinstance(self.header, dict):
            raise CorruptStreamError("corrupt .tec file: header is not a JSON object")
        self.count = count
        self._data_start = len(pre) + header_len
        if major not in COMPACT_MAJORS:
            self._index_pos = self._data_start
        self._index: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._entries: dict[tuple[int, int], IndexEntry] | None = None

    def load_index(self) -> np.ndarray:
        """The verified tile index (a structured array, `INDEX_DTYPE`), read on first use: a
        caller checks `count` against the header first, so a forged count costs nothing."""
        if self._index is not None:
            return self._index
        if self.version[0] in COMPACT_MAJORS:
            return self._load_compact_index()
        count, index_pos = self.count, self._index_pos
        index_size = count * _ENTRY.size
        index = self._read_exact(index_pos, index_size + _TRAILER.size, "tile index")
        end, index_crc = _TRAILER.unpack(index[index_size:])
        if _crc(index[:index_size], struct.pack("<Q", end)) != index_crc:
            raise CorruptStreamError("corrupt .tec file: tile index checksum mismatch")
        if end != self.file_size:
            what = "truncated" if end > self.file_size else "has trailing bytes"
            raise CorruptStreamError(
                f"corrupt .tec file: {what} ({self.file_size} bytes, index says {end})"
            )
        entries = np.frombuffer(index, INDEX_DTYPE, count)
        data_start = index_pos + index_size + _TRAILER.size
        return self._keep_index(entries, data_start, end)

    def _load_compact_index(self) -> np.ndarray:
        index_len = self.file_size - compact.FOOTER.size - self._index_pos
        index = self._read_exact(self._index_pos, index_len, "tile index")
        tail = self._read_exact(self.file_size - compact.FOOTER.size, compact.FOOTER.size, "footer")
        entries = compact.parse_index(index, tail, self.count, self._data_start, self._index_pos, INDEX_DTYPE)
        return self._keep_index(entries, self._data_start, self._index_pos)

    def _keep_index(self, entries: np.ndarray, data_start: int, end: int) -> np.ndarray:
        """Check an index's entries (inside the records' space, no key twice) and keep it."""
        offsets = entries["offset"].astype(np.uint64)
        sizes = entries["code_len"].astype(np.uint64) + entries["patch_len"].astype(np.uint64)
        keys = (entries["frame"].astype(np.uint64) << np.uint64(32)) | entries["tile"].astype(np.uint64)
        order = np.argsort(keys, kind="stable")
        if len(entries) and (
            bool((offsets < data_start).any()) or bool((offsets + sizes > end).any())
            or bool((np.diff(keys[order]) == 0).any())
        ):
            raise CorruptStreamError("corrupt .tec file: tile index is inconsistent")
        self._index, self._order, self._keys = entries, order, keys[order]
        return entries

    def _entry(self, frame: int, tile: int) -> IndexEntry | None:
        entries = self.load_index()
        key = (int(frame) << 32) | int(tile)
        if not (0 <= frame < 1 << 32 and 0 <= tile < 1 << 32):
            return None
        i = int(np.searchsorted(self._keys, np.uint64(key)))
        if i >= len(self._keys) or int(self._keys[i]) != key:
            return None
        return IndexEntry(*(int(v) for v in entries[self._order[i]].tolist()))

    @property
    def entries(self) -> dict[tuple[int, int], IndexEntry]:
        """Every index entry by (frame, tile) (a dict of the whole index: for small files and
        tests; the API works on `load_index()`)."""
        if self._entries is None:
            self._entries = {(e.frame, e.tile): e for e in
                             (IndexEntry(*(int(v) for v in row)) for row in self.load_index().tolist())}
        return self._entries

    def read_tile(self, frame: int, tile: int) -> TileRecord:
        """The verified record of one tile."""
        entry = self._entry(frame, tile)
        if entry is None:
            raise CorruptStreamError(f"corrupt .tec file: tile ({frame}, {tile}) is not indexed")
        data = self._read_exact(entry.offset, entry.size, f"tile ({frame}, {tile})")
        if _crc(data) != entry.crc32:
            raise CorruptStreamError(
                f"corrupt .tec file: checksum mismatch in tile {tile} of frame {frame}"
            )
        return TileRecord(data[: entry.code_len], data[entry.code_len :], entry.flags)

    def close(self) -> None:
        if self._owned:
            self._f.close()

    def __enter__(self) -> "ContainerReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
