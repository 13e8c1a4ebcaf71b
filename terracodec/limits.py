"""Every bound a `.tec` file must respect (docs/FORMAT.md, "Limits").

A reader checks each size, count and length against these before it allocates anything, so a
forged file costs bounded time and memory whatever it claims; the writer refuses to write what
the reader would refuse. The numbers leave room for any real product: a Sentinel-2 tile is
10980 x 10980 pixels of 13 bands, a dense series a few hundred dates.
"""

from __future__ import annotations

#: Largest scene side in pixels (2**20: a mosaic of ~95 Sentinel-2 tiles across).
MAX_SIDE = 1 << 20
#: Largest tile side. A tile is the unit that a decoder holds in memory with its activations:
#: measured peak of one decode at 1024 px ~0.3 GB above the loaded model (TEC-ELIC, 12
#: bands), at 2048 ~0.7 GB, at 4096 several GB.
MAX_TILE_SIZE = 1024
#: Largest model size multiple (tile sides are multiples of it).
MAX_MULTIPLE = 1024
MAX_BANDS = 1024
MAX_FRAMES = 100_000
#: Tiles per frame times frames: bounds the index (32 bytes an entry) a reader parses.
MAX_ENTRIES = 1 << 22
#: Inflated JSON header (a forged header of nested lists parses to ~50 bytes of Python objects
#: per input byte) and its compressed length.
MAX_HEADER_JSON = 8 << 20
#: Ground control points per grid.
MAX_GCPS = 100_000
#: Any one string in a header (WKT, a tag, a name).
MAX_STRING = 1 << 20
#: Metadata entries (tags) per file or band.
MAX_TAGS = 10_000


__all__ = [
    "MAX_BANDS", "MAX_ENTRIES", "MAX_FRAMES", "MAX_GCPS", "MAX_HEADER_JSON",
    "MAX_MULTIPLE", "MAX_SIDE", "MAX_STRING", "MAX_TAGS", "MAX_TILE_SIZE",
]
