"""The same stream and the same pixels whatever the thread count (issue 13, item 9).

Tiles are coded as tasks of `terracodec.parallel`, each on one intra-op thread, and image
synthesis and analysis run on one thread inside them (oneDNN's 1x1 and transposed convolutions
sum in another order with another thread count: +-1 DN in 1,001 of 16.4 M samples before);
the exact entropy networks use the task's whole thread budget. Checked for every shipped model
kind, on several tiles and on one, with 1, 2 and 3 threads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import terracodec
from terracodec.bands import S2_L1C_BANDS

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


def _frames(count: int, height: int, width: int) -> np.ndarray:
    out = []
    for path in SAMPLE[:count]:
        with rasterio.open(path) as ds:
            px = ds.read()
        out.append(np.pad(px, ((0, 0), (0, max(0, height - px.shape[1])), (0, max(0, width - px.shape[2]))),
                          mode="reflect")[:, :height, :width])
    return np.stack(out)


@pytest.fixture()
def restore_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("model", ["tec-fp-s2l1c", "tec-elic-s2l2a", "tec-tt-small", "tec-tt-s2l1c"])
def test_bytes_and_pixels_do_not_depend_on_threads(model, restore_threads) -> None:
    frames = 2 if model in ("tec-tt-small", "tec-tt-s2l1c") else 1  # tec-tt-s2l1c: tec-elic-s2l1c, then the TT
    x = _frames(frames, 192, 200)
    bands = list(S2_L1C_BANDS)
    if model == "tec-elic-s2l2a":
        x, bands = np.delete(x, 10, axis=1), [b for b in bands if b != "B10"]
    for tile in (128, 256):  # 4 tiles a frame, then one
        streams, pixels = {}, {}
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            streams[threads] = terracodec.encode(x, model=model, band_names=bands, tile_size=tile,
                                                 baseline_offset=False)
            pixels[threads] = terracodec.decode(streams[1]).pixels
        assert streams[1] == streams[2] == streams[3], (model, tile)
        assert np.array_equal(pixels[1], pixels[2]) and np.array_equal(pixels[1], pixels[3]), (model, tile)
