"""Tile grids cover a scene exactly once; windows find exactly the tiles they overlap."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terracodec.errors import InputError
from terracodec.tiling import grid_shape, pad_tile, tile_grid, tiles_in_window


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 300), w=st.integers(1, 300),
    multiple=st.sampled_from([1, 8, 16, 64]), k=st.integers(1, 4),
)
def test_grid_covers_every_pixel_once(h, w, multiple, k):
    tile = multiple * k
    tiles = tile_grid(h, w, tile, multiple)
    cover = np.zeros((h, w), np.int32)
    for i, t in enumerate(tiles):
        assert t.index == i
        cover[t.slices()] += 1
        assert t.padded_height % multiple == 0 and t.padded_width % multiple == 0
        assert t.height <= t.padded_height < t.height + multiple
        assert t.width <= t.padded_width < t.width + multiple
        assert t.padded_height <= tile and t.padded_width <= tile
    assert (cover == 1).all()
    rows, cols = grid_shape(h, w, tile)
    assert len(tiles) == rows * cols
    assert [t.grid_row * cols + t.grid_col for t in tiles] == list(range(len(tiles)))


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 200), w=st.integers(1, 200), data=st.data(),
)
def test_window_selects_exactly_the_overlapping_tiles(h, w, data):
    tiles = tile_grid(h, w, 32, 16)
    r0 = data.draw(st.integers(0, h - 1))
    c0 = data.draw(st.integers(0, w - 1))
    wh = data.draw(st.integers(1, h - r0))
    ww = data.draw(st.integers(1, w - c0))
    wanted = np.zeros((h, w), bool)
    wanted[r0 : r0 + wh, c0 : c0 + ww] = True
    expect = [t.index for t in tiles if wanted[t.slices()].any()]
    assert [t.index for t in tiles_in_window(tiles, r0, c0, wh, ww)] == expect


def test_pad_replicates_edges():
    t = tile_grid(5, 7, 16, 16)[0]
    px = np.arange(2 * 5 * 7, dtype=np.uint16).reshape(2, 5, 7)
    padded = pad_tile(px, t)
    assert padded.shape == (2, 16, 16)
    np.testing.assert_array_equal(padded[:, :5, :7], px)
    np.testing.assert_array_equal(padded[:, 10, :7], px[:, 4])
    np.testing.assert_array_equal(padded[:, :5, 15], px[:, :, 6])
    with pytest.raises(ValueError):
        pad_tile(px[:, :4], t)


@pytest.mark.parametrize("h,w,tile,multiple", [(0, 5, 16, 16), (5, 5, 24, 16), (5, 5, 8, 16)])
def test_bad_grids_are_refused(h, w, tile, multiple):
    with pytest.raises(InputError):
        tile_grid(h, w, tile, multiple)
