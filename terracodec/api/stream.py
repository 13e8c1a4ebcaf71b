"""Opening a `.tec` stream for reading: container, header and index checked against each other.

Light on purpose (no torch, no models): `tec info` runs on this alone.
"""

from __future__ import annotations

from typing import Any

from terracodec.api.args import check_source
from terracodec.container import ContainerReader
from terracodec.header_compact import expand
from terracodec.layout_compact import COMPACT_MAJOR
from terracodec.errors import CorruptStreamError
from terracodec.header import StreamHeader


def open_stream(source: Any) -> tuple[ContainerReader, StreamHeader]:
    """(reader, header) of a checked stream; the caller closes the reader.

    The index must hold exactly one entry per (frame, tile) the header describes; the count is
    compared by arithmetic before any tile list exists (a forged header's grid costs nothing).
    """
    reader = ContainerReader(check_source(source), lazy_index=True)
    try:
        raw = expand(reader.header) if reader.version[0] >= COMPACT_MAJOR else reader.header
        header = StreamHeader.from_json(raw)
        frames, tiles = header.frame_count, header.tiles_per_frame
        if reader.count != frames * tiles:
            raise CorruptStreamError("corrupt .tec file: tile index does not match the header")
        index = reader.load_index()  # no key repeats: in range means every (frame, tile) once
        if bool((index["frame"] >= frames).any()) or bool((index["tile"] >= tiles).any()):
            raise CorruptStreamError("corrupt .tec file: tile index does not match the header")
    except BaseException:
        reader.close()
        raise
    return reader, header


__all__ = ["open_stream"]
