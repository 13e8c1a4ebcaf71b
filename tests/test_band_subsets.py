"""Training on scenes with some of the model's bands: date-major series, clear dates, centring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from terracodec.bands import S2_L2A_BANDS
from terracodec.errors import InputError
from terracodec.normalization import Normalization
from terracodec.training.band_subsets import CentredCropSampler, load_partial_scenes, training_centre
from terracodec.training.loop import rate_distortion

DATES = ["2020-01-01T10:00:00", "2020-01-11T10:00:00", "2020-01-21T10:00:00"]


def _series(folder: Path, bands: list[str], side: int, *, clear: list[float] | None = None,
            nodata_date: int | None = None) -> None:
    """A date-major series file as the shared L2A sets store them, plus their dates table."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(bands))
    data = rng.integers(200, 3000, (len(DATES) * len(bands), side, side)).astype(np.uint16)
    if nodata_date is not None:
        data[nodata_date * len(bands), 0, 0] = 0
    profile = dict(driver="GTiff", height=side, width=side, count=data.shape[0], dtype="uint16",
                   crs="EPSG:32631", transform=from_origin(600000, 5600000, 10 * 64 / side, 10 * 64 / side),
                   nodata=0)
    with rasterio.open(folder / f"s2_l2a_{640 // side}m.tif", "w", **profile) as ds:
        ds.write(data)
        ds.descriptions = [f"{d} {b}" for d in DATES for b in bands]
    if clear is not None:
        rows = ["index,datetime,clear_fraction_scl"] + [f"{i},{d},{c}" for i, (d, c) in enumerate(zip(DATES, clear))]
        (folder / "s2_dates.csv").write_text("\n".join(rows) + "\n")


def test_series_dates_become_scenes_with_their_bands_on_the_finest_grid(tmp_path):
    _series(tmp_path / "site", ["B02", "B03", "B04", "B08"], 64)
    _series(tmp_path / "site", ["B05", "B06", "B07", "B8A", "B11", "B12"], 32)
    scenes = load_partial_scenes([tmp_path / "site"], S2_L2A_BANDS, min_bands=6)
    assert len(scenes) == 3
    for s in scenes:
        assert s.dn.shape == (12, 64, 64)
        assert [b for b, p in zip(S2_L2A_BANDS, s.present) if not p] == ["B01", "B09"]
        assert (s.dn[~s.present] == 0).all() and (s.dn[s.present] > 0).all()


def test_cloudy_dates_dates_with_nodata_and_too_few_bands_are_skipped(tmp_path):
    _series(tmp_path / "site", ["B02", "B03", "B04", "B08", "B11", "B12"], 32, clear=[1.0, 0.2, 0.99],
            nodata_date=2)
    scenes = load_partial_scenes([tmp_path / "site"], S2_L2A_BANDS, min_bands=6)
    assert [s.name.rsplit("@", 1)[1] for s in scenes] == [DATES[0]]
    with pytest.raises(InputError, match="holds 7 of"):
        load_partial_scenes([tmp_path / "site"], S2_L2A_BANDS, min_bands=7)


def test_sampler_centres_each_scene_and_weights_out_absent_bands(tmp_path):
    _series(tmp_path / "site", ["B02", "B03", "B04", "B08", "B11", "B12"], 32)
    scenes = load_partial_scenes([tmp_path / "site"], S2_L2A_BANDS, min_bands=6)
    norm = Normalization.default_for(12)
    sampler = CentredCropSampler(scenes, norm, [0.5] * 12, crop=32, gain_sigma=0.0)
    x, w = next(sampler.batches(4))
    assert x.shape == (4, 12, 32, 32) and w.shape == (4, 12, 1, 1)
    present = torch.tensor(scenes[0].present, dtype=torch.float32)
    assert torch.equal(w[0].flatten(), present)
    # a whole-scene crop without gain: every band's mean is the centre exactly
    np.testing.assert_allclose(x.mean(dim=(2, 3)).numpy(), 0.5, atol=1e-5)


def test_training_centre_needs_every_band_somewhere(tmp_path):
    _series(tmp_path / "site", ["B02", "B03", "B04", "B08", "B11", "B12"], 32)
    scenes = load_partial_scenes([tmp_path / "site"], S2_L2A_BANDS, min_bands=6)
    with pytest.raises(InputError, match="no training scene has"):
        training_centre(scenes, Normalization.default_for(12))


def test_distortion_ignores_the_bands_a_sample_lacks():
    x = torch.zeros(2, 3, 4, 4)
    x_hat = x.clone()
    x_hat[:, 2] = 5.0  # wrong only where the samples lack the band
    out = {"x_hat": x_hat, "likelihoods": {"y": torch.full((2, 1, 1, 1), 0.5)}}
    weight = torch.tensor([1.0, 1.0, 0.0]).reshape(1, 3, 1, 1).expand(2, 3, 1, 1)
    rate, mse = rate_distortion(out, x, weight)
    assert mse.item() == 0.0 and rate.item() == pytest.approx(2 / x.numel())
    assert rate_distortion(out, x)[1].item() > 0
