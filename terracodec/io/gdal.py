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
