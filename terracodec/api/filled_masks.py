"""The pixels a decoded frame got from cloud filling, as a sidecar GeoTIFF next to the frame.

    tile payloads (version 3: the filled tokens) --cells of 16 x 16 px--> [H, W] uint8, 1 = filled
        --> `<frame>.filled.tif` (one band, the frame's grid and window; docs/CLOUDS.md)

Read from the tile records alone (no model runs): a frame that had no filled tokens has no
sidecar. Data flows as in decoding: records -> cells -> pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from terracodec.header import StreamHeader
from terracodec.io.meta import Grid
from terracodec.tiling import window_tiles

SUFFIX = ".filled.tif"


def sidecar_path(frame_path: Path) -> Path:
    """`out/d2.tif` -> `out/d2.filled.tif`."""
    return frame_path.with_name(frame_path.stem + SUFFIX)


def filled_pixels(read_tile: Any, header: StreamHeader, frame: int, window: tuple[int, int, int, int]) -> np.ndarray:
    """`[height, width]` uint8 of a frame's window (col_off, row_off, width, height): 1 where the
    pixel's latent cell was filled under a cloud."""
    from terracodec.models.payload import split_filled
    from terracodec.temporal.clouds import CELL, cell_pixels, recorded_cells

    g = header.grid
    col_off, row_off, width, height = window
    out = np.zeros((height, width), np.uint8)
    for tile in window_tiles(g.height, g.width, header.tile_size, header.codec.multiple, window):
        mask_bytes, _ = split_filled(read_tile(frame, tile.index).code)
        if mask_bytes is None:
            continue
        h, w = tile.padded_height // CELL, tile.padded_width // CELL
        cells = recorded_cells(mask_bytes, h, w)[:h, :w]
        pixels = cell_pixels(cells, tile.height, tile.width)
        r0, r1 = max(tile.row_off, row_off), min(tile.row_off + tile.height, row_off + height)
        c0, c1 = max(tile.col_off, col_off), min(tile.col_off + tile.width, col_off + width)
        out[r0 - row_off: r1 - row_off, c0 - col_off: c1 - col_off] = \
            pixels[r0 - tile.row_off: r1 - tile.row_off, c0 - tile.col_off: c1 - tile.col_off]
    return out


def write_sidecar(path: Path, pixels: np.ndarray, grid: Grid, outputs: Any) -> None:
    """One-band uint8 GeoTIFF on `grid` (the decoded window's), committed with the frames."""
    import rasterio

    temp = outputs.temp_for(path)
    profile = dict(driver="GTiff", height=pixels.shape[0], width=pixels.shape[1], count=1, dtype="uint8",
                   compress="deflate", transform=grid.affine(), crs=grid.crs_wkt or None)
    with rasterio.open(temp, "w", **profile) as ds:
        ds.write(pixels[None])
        ds.set_band_description(1, "filled under clouds (1) or decoded from the stream (0)")


__all__ = ["SUFFIX", "filled_pixels", "sidecar_path", "write_sidecar"]
