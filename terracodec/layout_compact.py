"""Container major 5, the compact layout: a small fixed cost for small files (docs/FORMAT.md).

    0      8  magic               89 54 45 43 0D 0A 1A 0A
    8      2  format_major (u16)  5
    10     2  format_minor (u16)  0
    12     4  header_len N (u32)
    16     4  header_crc (u32)    CRC32 of bytes [0, 16) followed by the N header bytes
    20     N  header              zlib(JSON, preset dictionary `HEADER_DICTIONARY`), the compact
                                  schema (`terracodec.header_compact`)
    20+N   .. tile records        in any order, back to back
    ..     L  tile index          per record, in file order: varint frame, varint tile,
                                  varint code_len, varint patch_len, varint flags, u32 crc32
    end-16 16 footer              u32 L, u32 entry count E, u32 index_crc (CRC32 of the L index
                                  bytes followed by the footer's first 8 bytes), b"TEC\\x05"

A record's offset is where the previous one ends (the index lists them in file order), so an
entry costs 8 bytes for a small tile instead of 32, and the records must fill the space between
header and index exactly: truncation, appended bytes and a damaged index are all caught by the
footer's checks before a tile is read. The index sits at the end because its size is known only
when the last record is written (records stream out as they are coded).
"""

from __future__ import annotations

import struct
import zlib
from typing import Callable

import numpy as np

from terracodec import varint
from terracodec.errors import CorruptStreamError

COMPACT_MAJOR = 5
HEAD = struct.Struct("<8sHHII")      # magic, major, minor, header_len, header_crc

#: zlib's preset dictionary for major 5 headers (RFC 1950 FDICT): the key names and the values
#: headers repeat (model, band and normalisation names), so a chip's header compresses to ~130
#: bytes instead of ~300. Part of the format: never changed within major 5 (tests pin its hash).
HEADER_DICTIONARY = (
    b'{"codec":{"bands":12,"band_names":["B01","B02","B03","B04","B05","B06","B07","B08","B8A",'
    b'"B09","B10","B11","B12"],"coder_platform":"","kind":"temporal","multiple":16,'
    b'"name":"tec-fp-s2l1c","quality":3,"weights_hash":""},"frames":[{"band_order":[0,1,2,3,4,5,'
    b'6,7,8,9,10,11,12],"band_tags":[{}],"descriptions":[null],"dn_offset":-1000.0,'
    b'"dn_scale":10000.0,"name":"frame_000.tif","named":true,"nodata":0.0,"offsets":[0.0],'
    b'"scales":[1.0],"tags":{"AREA_OR_POINT":"Area","DATE":"","DATETIME":"",'
    b'"PROCESSING_BASELINE":"","SENSOR":"Sentinel-2 MSI","LEVEL":"L2A"},'
    b'"timestamp":"2020-01-01T00:00:00","units":[null]}],"grid":{"count":13,"crs_wkt":"",'
    b'"dtype":"uint16","epsg":326,"gcps":[],"gcp_crs_wkt":"","height":256,'
    b'"transform":[10.0,0.0,0.0,0.0,-10.0,0.0],"width":256},"normalization":{"mean":[],'
    b'"name":"ssl4eo-s12-l1c-no-offset","std":[]},"ssl4eo-s12-l2a-no-offset","tec-elic-s2l2a",'
    b'"tec-fp-s2l2a","tec-tt-small","tec-tt","tiling":{"tile_size":512},'
    b'"valid_range":[0.0,32767.0],"writer":"terracodec 0.1.0"}'
)


def compress_header(raw: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    return c.compress(raw) + c.flush()
FOOTER = struct.Struct("<III4s")     # index_len, entry_count, index_crc, end mark
END_MARK = b"TEC\x05"


def index_bytes(entries: list[tuple[int, int, int, int, int, int]]) -> bytes:
    """The index of (frame, tile, code_len, patch_len, flags, crc32) entries, in file order."""
    return b"".join(b"".join(varint.encode(v) for v in (f, t, c, p, fl)) + struct.pack("<I", crc)
                    for f, t, c, p, fl, crc in entries)


def footer(index: bytes, count: int) -> bytes:
    head = struct.pack("<II", len(index), count)
    return FOOTER.pack(len(index), count, zlib.crc32(index + head) & 0xFFFFFFFF, END_MARK)


def read_footer(read: Callable[[int, int, str], bytes], file_size: int, data_start: int) -> tuple[int, int]:
    """(entry count, index offset) from the footer; CorruptStreamError when it cannot be one."""
    if file_size < data_start + FOOTER.size:
        raise CorruptStreamError("truncated .tec file: no room for the tile index")
    index_len, count, _, mark = FOOTER.unpack(read(file_size - FOOTER.size, FOOTER.size, "footer"))
    if mark != END_MARK:
        raise CorruptStreamError("corrupt .tec file: truncated, or bytes after the end (no footer)")
    index_pos = file_size - FOOTER.size - index_len
    if index_pos < data_start:
        raise CorruptStreamError("corrupt .tec file: tile index length is implausible")
    return count, index_pos


def parse_index(index: bytes, crc_fields: bytes, count: int, data_start: int, data_end: int,
                dtype: np.dtype) -> np.ndarray:
    """The index as `dtype` rows (absolute offsets), checked: CRC, entry count, records filling
    [data_start, data_end) exactly (`data_end`: where the index starts)."""
    _, _, crc, _ = FOOTER.unpack(crc_fields)
    if zlib.crc32(index + crc_fields[:8]) & 0xFFFFFFFF != crc:
        raise CorruptStreamError("corrupt .tec file: tile index checksum mismatch")
    out = np.zeros(count, dtype)
    pos, offset, n = 0, data_start, len(index)
    for i in range(count):
        fields = []
        for _ in range(5):
            value, pos = varint.decode(index, pos, ".tec file: tile index")
            fields.append(value)
        if pos + 4 > n:
            raise CorruptStreamError("corrupt .tec file: tile index is cut short")
        frame, tile, code_len, patch_len, flags = fields
        if max(frame, tile, code_len, patch_len, flags) >= 1 << 32:
            raise CorruptStreamError("corrupt .tec file: tile index is inconsistent")
        (crc32,) = struct.unpack_from("<I", index, pos)
        pos += 4
        out[i] = (frame, tile, offset, code_len, patch_len, flags, crc32)
        offset += code_len + patch_len
        if offset > data_end:
            raise CorruptStreamError("corrupt .tec file: records run into the tile index")
    if pos != n:
        raise CorruptStreamError("corrupt .tec file: tile index has bytes left over")
    if offset != data_end:
        raise CorruptStreamError(f"corrupt .tec file: records end at {offset}, the index starts at {data_end}")
    return out


__all__ = ["COMPACT_MAJOR", "END_MARK", "FOOTER", "HEAD", "HEADER_DICTIONARY", "compress_header", "footer",
           "index_bytes", "parse_index", "read_footer"]
