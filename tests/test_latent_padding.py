"""Latent padding (`latent_codecs.padding`): TEC-ELIC and the TT on it pad pixels to 16 px and
their latent to the hyperprior's grid with cells that cost nothing (they decode to their predicted mean). A small frame no longer
pays for 64 px padding, both ends agree on every latent, and streams written with 64 px tiles
(before this change) still decode. Data: the bundled real eo-learn sample (101 x 100 px)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import terracodec
from terracodec.bands import S2_L2A_BANDS
from terracodec.latent_codecs.padding import pad_latent, valid_cells
from terracodec.models.elic import ElicCodec
from terracodec.tiling import Tile, pad_tile
from terracodec.zoo import load_model
from tests.test_conditional_tt import _series


def _crops(model, size: int, n: int = 2) -> torch.Tensor:
    """Normalised `size x size` crops `[n, 12, size, size]` of the sample's first dates."""
    from terracodec.normalization import Normalization

    norm = Normalization.from_config(model.config["normalization"])
    return torch.stack([torch.from_numpy(np.asarray(norm.normalize(f[:, :size, :size].astype(np.float32)),
                                                    np.float32)) for f in _series(n)])


def _edge_padded(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    return torch.from_numpy(pad_tile(x.numpy(), Tile(0, 0, 0, 0, 0, h, w, size, size)))


def test_masks_and_padding():
    assert valid_cells(8, 4) is None
    valid = valid_cells(5, 6)
    assert valid.shape == (8, 8) and int(valid.sum()) == 30 and bool(valid[:5, :6].all())
    y = torch.randn(2, 3, 5, 6)
    padded, mask = pad_latent(y)
    assert torch.equal(mask, valid) and torch.equal(padded[..., :5, :6], y)
    assert not padded[..., 5:, :].any() and not padded[..., 6:].any()


def test_a_small_tile_pays_for_its_cells_only():
    elic = load_model("tec-elic-s2l2a", 3)
    x = _crops(elic, 80, 1)[0]
    small, padded = elic.encode_tile(x), elic.encode_tile(_edge_padded(x, 128))
    assert len(small) < 0.6 * len(padded), (len(small), len(padded))
    latents = elic.decode_latents(small, 80, 80)
    _, encoded = elic.compress_latents(elic.analysis(x[None]))
    assert latents["y_hat"].shape == (192, 5, 5)
    assert torch.equal(latents["y_hat"], encoded["y_hat"][0].to(latents["y_hat"].dtype))
    out = elic.decode_tile(small, 80, 80)
    mse = float(((out - x) ** 2).mean())
    ref = float(((elic.decode_tile(padded, 128, 128)[..., :80, :80] - x) ** 2).mean())
    assert mse < 1.2 * ref, (mse, ref)  # the free padding costs no visible quality


def test_a_small_series_keeps_both_ends_in_step():
    tt = load_model("tec-tt-s2l2a", 2)
    x = _crops(tt, 80, 3)
    enc, dec = tt.start_state(), tt.start_state()
    sizes = []
    for t in range(3):
        payload, enc = tt.encode_frame(enc, x[t])
        latents, dec = tt.decode_frame_latents(dec, payload, 80, 80)
        assert latents["y_hat"].shape == (192, 5, 5)
        assert torch.equal(dec.y_hat, enc.y_hat)
        sizes.append(len(payload))
    padded_state, padded_sizes = tt.start_state(), []
    for t in range(3):
        payload, padded_state = tt.encode_frame(padded_state, _edge_padded(x[t], 128))
        padded_sizes.append(len(payload))
    assert sum(sizes) < 0.6 * sum(padded_sizes), (sizes, padded_sizes)


@pytest.mark.parametrize("model", ["tec-elic-s2l2a", "tec-tt-s2l2a"])
def test_streams_of_64px_tiles_still_decode(model, monkeypatch):
    x = _series(2)
    new = terracodec.encode(x, model=model, quality=2, band_names=list(S2_L2A_BANDS))
    with monkeypatch.context() as m:
        m.setattr(ElicCodec, "multiple", 64)  # how tiles were cut before latent padding
        old = terracodec.encode(x, model=model, quality=2, band_names=list(S2_L2A_BANDS))
        then = np.asarray(terracodec.decode(old).pixels)
    now = np.asarray(terracodec.decode(old).pixels)
    assert np.array_equal(now, then)
    assert len(new) < len(old)  # 101 x 100 px: 112 x 112 coded instead of 128 x 128
