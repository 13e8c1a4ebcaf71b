"""GDAL settings while streaming rasters through the codec."""

from __future__ import annotations

import os
from typing import Any

#: GDAL block cache (MB) while streaming. Each block is read once (encode) or written once
#: (decode), so a big cache only costs memory; GDAL's default is 5 % of RAM. The user's own
#: GDAL_CACHEMAX, if set, wins.
GDAL_CACHE_MB = 256


def gdal_env() -> Any:
    """A `rasterio.Env` for a run (rasterio is imported here, on first use)."""
    import rasterio

    if "GDAL_CACHEMAX" in os.environ:
        return rasterio.Env()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


__all__ = ["GDAL_CACHE_MB", "gdal_env"]


def parse_crs(value: Any) -> Any:
    """A `rasterio.crs.CRS` from WKT or anything `CRS.from_user_input` takes; ValueError when it
    is not one. Inside a rasterio environment, so GDAL's complaints become the exception instead
    of lines on stderr."""
    import rasterio
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    try:
        with rasterio.Env():
            return value if isinstance(value, CRS) else CRS.from_user_input(value)
    except (CRSError, TypeError, ValueError) as exc:
        raise ValueError(str(exc)[:200]) from None
