"""Does a Sentinel-2 frame carry the +1000 DN offset of processing baseline 04.00 and later?

Since 25 January 2022 ESA adds 1000 DN to every band (`BOA_ADD_OFFSET` / `RADIO_ADD_OFFSET` =
-1000 in the product metadata). A model's normalisation is either with the offset or without it,
so a frame of the other kind lands about one standard deviation off in every band (22 in cirrus
B10) and codes badly. The encoder asks this module, per frame, and shifts the normalisation.

Evidence, strongest first (the first that answers wins):

1. tags: `PROCESSING_BASELINE` (>= 04.00: offset), else the `BOA_ADD_OFFSET*` /
   `RADIO_ADD_OFFSET*` tags of the file and its bands (any nonzero: offset; all zero: none);
2. cirrus B10, found by band name: without the offset its DN are tens (thin cirrus reaches a
   few hundred), with it about 1000 and more; median of valid pixels >= 500 means offset. Only a
   few thin strips of rows are read, never the whole frame;
3. the acquisition date (>= 2022-01-25). Weakest: ESA's reprocessed archive carries the offset
   for older dates too, which is why pixels and tags go first.

Otherwise the answer is None (unknown).
"""

from __future__ import annotations

import logging
import re
from datetime import date
from typing import Any, Protocol

import numpy as np

from terracodec.bands import normalize_band_name
from terracodec.io.meta import FrameMeta, Grid, tag_key

log = logging.getLogger(__name__)

#: First acquisitions processed with baseline 04.00 (ESA, S2 MPC).
OFFSET_START = date(2022, 1, 25)
#: Baseline from which products carry the offset.
OFFSET_BASELINE = 4.0
#: B10 median (DN) that separates "offset" (~1000 + cirrus) from "no offset" (tens of DN).
B10_THRESHOLD = 500.0
#: Rows read for the B10 rule: `B10_STRIPS` strips of `B10_STRIP_ROWS` rows, evenly spaced. Each
#: strip of a tiled GeoTIFF decodes one block row of every band (~0.6 s for 10980 x 512 x 13).
B10_STRIPS = 4
B10_STRIP_ROWS = 2

#: "04.00", "4.0", "4" (major.minor) or "N0400" / "0400" (the product name's Nxxyy).
_BASELINE = re.compile(r"^\s*N?\s*(?:(\d{1,2})(?:\.(\d{1,2}))?|(\d{2})(\d{2}))\s*$", re.IGNORECASE)
_DATE = re.compile(r"^\s*(\d{4})-?(\d{2})-?(\d{2})")


class FrameSource(Protocol):
    """What detection needs of a stack (`RasterStack`, `ArrayStack`)."""

    frames: list[FrameMeta]
    grid: Grid

    def read(self, frame: int, row_off: int, col_off: int, height: int, width: int) -> np.ndarray: ...


def parse_baseline(value: Any) -> float | None:
    """A processing baseline as a number: "04.00", "4.0", "N0400" -> 4.0; "05.09" -> 5.09."""
    m = _BASELINE.match(str(value))
    if m is None:
        return None
    major, minor = (m[1], m[2] or "0") if m[1] is not None else (m[3], m[4])
    return int(major) + int(minor.ljust(2, "0")) / 100.0


def offset_from_tags(meta: FrameMeta) -> bool | None:
    """What the frame's tags say: a processing baseline, or the ADD_OFFSET values; else None."""
    all_tags = [meta.tags, *meta.band_tags]
    for tags in all_tags:
        for name, value in tags.items():
            if tag_key(name).endswith("PROCESSING_BASELINE"):
                baseline = parse_baseline(value)
                if baseline is not None:
                    return baseline >= OFFSET_BASELINE
    offsets = []
    for tags in all_tags:
        for name, value in tags.items():
            key = tag_key(name)
            if "BOA_ADD_OFFSET" in key or "RADIO_ADD_OFFSET" in key:
                try:
                    offsets.append(float(value))
                except (TypeError, ValueError):
                    continue
    if not offsets:
        return None
    return any(np.isfinite(v) and v != 0 for v in offsets)


def strip_rows(height: int, strips: int = B10_STRIPS, rows: int = B10_STRIP_ROWS) -> list[tuple[int, int]]:
    """(row_off, rows) of a few thin strips spread over the frame, inside it, not overlapping."""
    if height <= strips * rows:
        return [(0, height)]
    starts = {
        min(height - rows, max(0, int((k + 0.5) * height / strips) - rows // 2))
        for k in range(strips)
    }
    return [(r, rows) for r in sorted(starts)]


def b10_index(meta: FrameMeta, names: list[str | None] | None = None) -> int | None:
    """Index (in the file) of the band named B10, if the frame (or `names`, what its bands
    are taken for when it names none) names one."""
    names = [normalize_band_name(d) for d in (names or meta.descriptions)]
    return names.index("B10") if "B10" in names else None


def b10_median(stack: FrameSource, frame: int, scale: float = 1.0,
               names: list[str | None] | None = None) -> float | None:
    """Median DN of the valid (finite, non-nodata, nonzero) B10 pixels of a few strips; `scale`
    turns the file's values into DN (reflectance 0..1: 10000)."""
    meta = stack.frames[frame]
    band = b10_index(meta, names)
    if band is None:
        return None
    values = []
    for row_off, rows in strip_rows(stack.grid.height):
        strip = np.asarray(stack.read(frame, row_off, 0, rows, stack.grid.width)[band], np.float64)
        valid = np.isfinite(strip) & (strip != 0)
        if meta.nodata is not None and not np.isnan(meta.nodata):
            valid &= strip != meta.nodata
        values.append(strip[valid])
    pixels = np.concatenate(values)
    return float(np.median(pixels)) * scale if pixels.size else None


def offset_from_date(timestamp: str | None) -> bool | None:
    """Acquired on or after 2022-01-25 (ISO date or date-time; YYYYMMDD too); None if unknown."""
    if not timestamp:
        return None
    m = _DATE.match(timestamp)
    if m is None:
        return None
    try:
        day = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None
    return day >= OFFSET_START


def has_baseline_offset(stack: FrameSource, frame: int, scale: float = 1.0,
                        names: list[str | None] | None = None) -> bool | None:
    """Whether frame `frame` of `stack` carries the +1000 DN offset: True, False or None.

    The frame's timestamp is read from `stack.frames[frame]`, so set it first when the caller
    overrides the file's date.
    """
    meta: FrameMeta = stack.frames[frame]
    answer = offset_from_tags(meta)
    if answer is not None:
        log.info("frame %s: baseline offset %s (tags)", meta.name, answer)
        return answer
    median = b10_median(stack, frame, scale, names)
    if median is not None:
        log.info("frame %s: B10 median %.0f DN", meta.name, median)
        return median >= B10_THRESHOLD
    answer = offset_from_date(meta.timestamp)
    log.info("frame %s: baseline offset %s (date %s)", meta.name, answer, meta.timestamp)
    return answer
