"""The tile payload of every codec: its entropy-coded streams.

Version 1 (temporal models; image models before format 7): `u8 1 | u8 stream count n |
n x LEB128 stream lengths | streams`. Version 2 (image models): `u8 2 | one chained rANS stream`
holding every segment the latent codec codes (`terracodec.entropy.rans_chain`): one flush per
tile instead of one per stream. The container checksums payloads; the layout is still validated
here so that a damaged or foreign payload raises `CorruptStreamError` instead of decoding into
garbage. Version 3 wraps a temporal frame's payload with its mask of tokens filled under clouds.
Version 4 (TEC-TT and FlexTEC frames, format major 8): `u8 4 | u8 k | one chained rANS stream`
of the frame's k autoregressive steps, one lane (`terracodec.temporal.step_streams`).
"""

from __future__ import annotations

from typing import Any, Sequence

from terracodec import varint
from terracodec.errors import CorruptStreamError

PAYLOAD_VERSION = 1
CHAINED_PAYLOAD_VERSION = 2
FILLED_PAYLOAD_VERSION = 3
STEPS_PAYLOAD_VERSION = 4


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


def pack_chain(segments: Sequence[Any]) -> bytes:
    """Version 2 payload of a tile's segments (`rans_chain.Segment`, in decode order)."""
    from terracodec.entropy.rans_chain import chain_encode

    return bytes((CHAINED_PAYLOAD_VERSION,)) + chain_encode(list(segments))


def unpack_any(data: bytes, expected: int) -> list[Any]:
    """The `expected` streams of a version 1 payload, or for version 2 the one `ChainReader`
    in every stream's place (each stream reads its segment from it, in order)."""
    if len(data) >= 1 and data[0] == CHAINED_PAYLOAD_VERSION:
        from terracodec.entropy.rans_chain import ChainReader

        return [ChainReader(memoryview(data)[1:])] * expected
    return unpack_streams(data, expected)


def pack_steps(k: int, segments: Sequence[Any]) -> bytes:
    """Version 4 payload of a temporal frame's `k` steps, chained (`rans_chain.Segment`s) in one
    lane; no stream at all when they send nothing (k = 0, or every token filled under clouds)."""
    from terracodec.entropy.rans_chain import chain_encode

    if not 0 <= k <= 255:
        raise ValueError("at most 255 steps per tile")
    empty = all(int(s.symbols.numel()) == 0 for s in segments)
    return bytes((STEPS_PAYLOAD_VERSION, k)) + (b"" if empty else chain_encode(list(segments), single_lane=True))


def unpack_steps(data: bytes) -> tuple[int, int, Any]:
    """(version, k steps, body) of a temporal frame's payload: for version 4 the chained
    stream's bytes, for version 1 its k streams."""
    if len(data) >= 2 and data[0] == STEPS_PAYLOAD_VERSION:
        return STEPS_PAYLOAD_VERSION, data[1], memoryview(data)[2:]
    if len(data) >= 2 and data[0] == PAYLOAD_VERSION:
        return PAYLOAD_VERSION, data[1], unpack_streams(data, data[1])
    raise CorruptStreamError("corrupt tile payload: bad version byte or truncated")


def pack_filled(mask: bytes, payload: bytes) -> bytes:
    """Version 3 (temporal frames with tokens filled under clouds): `u8 3 | LEB128 m | m bytes:
    the zlib-compressed, bit-packed `[windows, 16]` mask of predicted tokens | a version 4, 2
    (or, written before version 4, 1) payload` (its streams hold only the tokens or cells they
    send)."""
    return bytes((FILLED_PAYLOAD_VERSION,)) + varint.encode(len(mask)) + mask + payload


def split_filled(data: bytes) -> tuple[bytes | None, bytes]:
    """(mask bytes or None, the inner payload) of a version 3 payload; (None, data) otherwise."""
    if len(data) < 1 or data[0] != FILLED_PAYLOAD_VERSION:
        return None, data
    size, pos = varint.decode(data, 1, "filled-token mask length")
    if pos + size > len(data):
        raise CorruptStreamError("corrupt tile payload: the filled-token mask is truncated")
    return bytes(data[pos:pos + size]), bytes(data[pos + size:])


def finish_chains(per_stream: Sequence[Sequence[Any]]) -> None:
    """After decoding: every chained stream must have ended exactly (`ChainReader.finish`)."""
    from terracodec.entropy.rans_chain import ChainReader

    seen = {id(r): r for stream in per_stream for r in stream if isinstance(r, ChainReader)}
    for reader in seen.values():
        reader.finish()


__all__ = ["CHAINED_PAYLOAD_VERSION", "FILLED_PAYLOAD_VERSION", "PAYLOAD_VERSION", "STEPS_PAYLOAD_VERSION",
           "finish_chains", "pack_chain", "pack_filled", "pack_steps", "pack_streams", "split_filled", "unpack_any",
           "unpack_steps", "unpack_streams"]
