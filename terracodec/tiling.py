"""Cutting a scene into tiles and putting it back together.

A scene of any size is coded as a grid of tiles so that memory stays bounded and each tile is
a pure function of (tile pixels, model): a scheduler may code tiles anywhere, in any order.
Edge tiles are smaller than the others; they are padded (edge replication, which costs fewer
bits than zeros) up to the model's size multiple, and the padding is cut off after decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from terracodec.errors import InputError


@dataclass(frozen=True)
class Tile:
    """One tile of a scene: where it lies and how large it is once padded."""

    index: int        # row-major position in the grid
    grid_row: int
    grid_col: int
    row_off: int      # first scene row covered
    col_off: int      # first scene column covered
    height: int       # rows of real pixels
    width: int        # columns of real pixels
    padded_height: int
    padded_width: int

    def slices(self) -> tuple[slice, slice]:
        """Scene (row, column) slices covered by this tile."""
        return (
            slice(self.row_off, self.row_off + self.height),
            slice(self.col_off, self.col_off + self.width),
        )

    def intersects(self, row_off: int, col_off: int, height: int, width: int) -> bool:
        """Whether the tile overlaps the scene window (row_off, col_off, height, width)."""
        return (
            self.row_off < row_off + height
            and row_off < self.row_off + self.height
            and self.col_off < col_off + width
            and col_off < self.col_off + self.width
        )


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of `multiple` that is >= value."""
    return -(-value // multiple) * multiple


def tile_grid(height: int, width: int, tile_size: int, multiple: int = 1) -> list[Tile]:
    """Row-major tiles of at most `tile_size` pixels a side covering a height x width scene."""
    if height < 1 or width < 1:
        raise InputError(f"scene must have at least one pixel, got {height}x{width}")
    if multiple < 1 or tile_size < multiple or tile_size % multiple:
        raise InputError(f"tile size {tile_size} must be a positive multiple of {multiple}")
    tiles = []
    rows = range(0, height, tile_size)
    cols = range(0, width, tile_size)
    for gr, r0 in enumerate(rows):
        h = min(tile_size, height - r0)
        for gc, c0 in enumerate(cols):
            w = min(tile_size, width - c0)
            tiles.append(
                Tile(len(tiles), gr, gc, r0, c0, h, w, round_up(h, multiple), round_up(w, multiple))
            )
    return tiles


def window_tiles(height: int, width: int, tile_size: int, multiple: int,
                 window: tuple[int, int, int, int] | None = None) -> list[Tile]:
    """The tiles of `tile_grid` that a pixel window (col_off, row_off, width, height; None: the
    whole scene) needs, in grid order, made without listing the others."""
    if window is None:
        return tile_grid(height, width, tile_size, multiple)
    col_off, row_off, w, h = window
    cols = -(-width // tile_size)
    out = []
    for gr in range(row_off // tile_size, (row_off + h - 1) // tile_size + 1):
        r0 = gr * tile_size
        th = min(tile_size, height - r0)
        for gc in range(col_off // tile_size, (col_off + w - 1) // tile_size + 1):
            c0 = gc * tile_size
            tw = min(tile_size, width - c0)
            out.append(Tile(gr * cols + gc, gr, gc, r0, c0, th, tw, round_up(th, multiple), round_up(tw, multiple)))
    return out


def grid_shape(height: int, width: int, tile_size: int) -> tuple[int, int]:
    """(rows, columns) of the tile grid."""
    return -(-height // tile_size), -(-width // tile_size)


def pad_tile(pixels: np.ndarray, tile: Tile) -> np.ndarray:
    """Pad a [C, h, w] tile to its padded size by replicating the edge pixels."""
    c, h, w = pixels.shape
    if (h, w) != (tile.height, tile.width):
        raise ValueError(f"tile pixels are {h}x{w}, expected {tile.height}x{tile.width}")
    ph, pw = tile.padded_height - h, tile.padded_width - w
    if ph == 0 and pw == 0:
        return pixels
    return np.pad(pixels, ((0, 0), (0, ph), (0, pw)), mode="edge")


def tiles_in_window(
    tiles: list[Tile], row_off: int, col_off: int, height: int, width: int
) -> list[Tile]:
    """The tiles a pixel window needs, in grid order."""
    return [t for t in tiles if t.intersects(row_off, col_off, height, width)]
