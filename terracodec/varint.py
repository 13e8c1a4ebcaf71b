"""Unsigned LEB128 integers, one at a time: the tile payload's stream table and the compact
container's index. (The rANS coder's escape sections use a vectorised twin,
`terracodec.entropy.rans_stream`.)"""

from __future__ import annotations

from terracodec.errors import CorruptStreamError

#: Bytes of the longest value read (35 bits: every length and count the formats hold fits).
MAX_BYTES = 5


def encode(n: int) -> bytes:
    """LEB128 of a non-negative integer."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def decode(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """(value, position after it) of the LEB128 at `pos`; CorruptStreamError naming `what` when
    it runs past the end or past `MAX_BYTES`."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift >= 7 * MAX_BYTES:
            raise CorruptStreamError(f"corrupt {what}: truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


__all__ = ["MAX_BYTES", "decode", "encode"]
