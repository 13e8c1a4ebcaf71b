"""What a raster says about itself, kept so that decoding gives back the same file.

Plain dataclasses without GDAL: the container's header (`terracodec.header`) holds them, and
reading a header (`tec info`) must not load rasterio or torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Tag names that carry an acquisition date or time, in order of preference.
_TIME_TAGS = ("DATE", "ACQUISITION_DATE", "DATETIME", "datetime", "SENSING_TIME", "date")


@dataclass
class Grid:
    """What frames must share: size, bands, dtype and georeferencing.

    Georeferencing is an affine `transform` (with `crs_wkt`), or ground control points (`gcps`:
    `[row, col, x, y, z]` each, in `gcp_crs_wkt`) for unrectified rasters; GDAL gives such files
    the identity transform.
    """

    height: int
    width: int
    count: int
    dtype: str
    crs_wkt: str | None
    transform: tuple[float, ...]  # affine order (a, b, c, d, e, f)
    gcps: list[list[float]] | None = None
    gcp_crs_wkt: str | None = None

    def affine(self):  # -> affine.Affine (imported here: affine is light, rasterio is not)
        from affine import Affine

        return Affine(*self.transform)


@dataclass
class FrameMeta:
    """Per-file metadata kept so that decoding gives back the same file."""

    name: str
    nodata: float | None = None
    descriptions: list[str | None] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    band_tags: list[dict[str, str]] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    offsets: list[float] = field(default_factory=list)
    units: list[str | None] = field(default_factory=list)
    timestamp: str | None = None


def tag_key(name: str) -> str:
    """Tag names (and level values) as one spelling: "s2:processing_baseline" ->
    "S2_PROCESSING_BASELINE"."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper())


def parse_timestamp(tags: dict[str, str]) -> str | None:
    """ISO 8601 acquisition date from a file's tags (YYYYMMDD becomes YYYY-MM-DD), if any."""
    for key in _TIME_TAGS:
        value = tags.get(key)
        if value:
            value = value.strip()
            m = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", value)
            return f"{m[1]}-{m[2]}-{m[3]}" if m else value
    return None


__all__ = ["FrameMeta", "Grid", "parse_timestamp", "tag_key"]
