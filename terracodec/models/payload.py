"""The tile payload of every codec: its entropy-coded streams behind a small table.

Layout: `u8 version (=1) | u8 stream count n | n x LEB128 stream lengths | streams`. The
container checksums payloads; the layout is still validated here so that a damaged or foreign
payload raises `CorruptStreamError` instead of decoding into garbage.
"""

from __future__ import annotations

from typing import Sequence

from terracodec import varint
from terracodec.errors import CorruptStreamError

PAYLOAD_VERSION = 1


def pack_streams(streams: Sequence[bytes]) -> bytes:
    """Tile payload from its entropy-coded streams (layout in the module docstring)."""
    if len(streams) > 255:
        raise ValueError("at most 255 streams per tile")
    head = bytes((PAYLOAD_VERSION, len(streams))) + b"".join(varint.encode(len(s)) for s in streams)
    return head + b"".join(streams)


def unpack_streams(data: bytes, expected: int) -> list[bytes]:
    """Inverse of `pack_streams`; CorruptStreamError unless the layout is exactly right."""
    if len(data) < 2 or data[0] != PAYLOAD_VERSION:
        raise CorruptStreamError("corrupt tile payload: bad version byte or truncated")
    count = data[1]
    if count != expected:
        raise CorruptStreamError(f"corrupt tile payload: {count} streams, the model codes {expected}")
    pos, lengths = 2, []
    for _ in range(count):
        value, pos = varint.decode(data, pos, "tile payload stream table")
        lengths.append(value)
    if pos + sum(lengths) != len(data):
        raise CorruptStreamError("corrupt tile payload: stream lengths do not match its size")
    out = []
    for n in lengths:
        out.append(bytes(data[pos : pos + n]))
        pos += n
    return out


__all__ = ["PAYLOAD_VERSION", "pack_streams", "unpack_streams"]
