"""Temporal training: co-registered sequence crops, a short TT training run, `tec train --arch tec-tt`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.transform import from_origin

from terracodec.zoo import from_config, from_pretrained
from terracodec.errors import InputError
from terracodec.models.base import ImageCodec
from terracodec.normalization import Normalization
from terracodec.training.loop import TrainConfig, rate_distortion, train
from terracodec.training.sequences import SequenceSampler, discover_sequences, load_sequences

BANDS = ("B02", "B03", "B04")
OFFSET = 100  # date 2 = date 1 + OFFSET DN


def _write(path, pixels: np.ndarray, date: str) -> None:
    with rasterio.open(
        path, "w", driver="GTiff", width=pixels.shape[2], height=pixels.shape[1], count=pixels.shape[0],
        dtype="uint16", crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10),
    ) as ds:
        ds.write(pixels.astype(np.uint16))
        ds.descriptions = BANDS
        ds.update_tags(DATE=date)


@pytest.fixture
def two_dates(tmp_path):
    """A scene folder with two dates (the later one named first, and 3 x 2 pixels smaller, as
    some OSCD second dates are) plus a change mask; date 2 = date 1 + OFFSET everywhere."""
    rng = np.random.default_rng(0)
    date1 = rng.integers(500, 3000, (3, 70, 80))
    scene = tmp_path / "city"
    scene.mkdir()
    _write(scene / "a_later.tif", date1[:, :67, :78] + OFFSET, "20180101")
    _write(scene / "b_earlier.tif", date1, "20160101")
    with rasterio.open(scene / "change_mask.tif", "w", driver="GTiff", width=80, height=70, count=1,
                       dtype="uint8", crs="EPSG:32633", transform=from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(np.ones((1, 70, 80), np.uint8))
    return scene, date1


IDENTITY = Normalization((0.0,) * 3, (1.0,) * 3)


def test_sequences_are_date_ordered_and_cut_to_the_common_extent(two_dates):
    scene, date1 = two_dates
    groups = discover_sequences([scene.parent])
    assert [[p.name for p in s] for s in groups[0]][:2] == [["b_earlier.tif"], ["a_later.tif"]]
    (seq,) = load_sequences([scene.parent], BANDS)
    assert seq.shape == (2, 3, 67, 78)
    np.testing.assert_array_equal(seq[0], date1[:, :67, :78])
    np.testing.assert_array_equal(seq[1] - seq[0], OFFSET)


def test_sampler_uses_one_crop_and_flip_for_every_date(two_dates):
    scene, _ = two_dates
    seqs = load_sequences([scene.parent], BANDS)
    sampler = SequenceSampler(seqs, IDENTITY, crop=32, frames=2, reverse=False, seed=3)
    batch = next(sampler.batches(8))
    assert batch.shape == (8, 2, 3, 32, 32) and batch.dtype == torch.float32
    assert torch.all(batch[:, 1] - batch[:, 0] == OFFSET)  # same ground on both dates
    assert len({tuple(b[0, 0, 0, :4].tolist()) for b in batch}) > 1  # crops do differ
    reversed_ = SequenceSampler(seqs, IDENTITY, crop=32, frames=2, reverse=True, seed=3)
    diffs = {float((s[1] - s[0]).unique().item()) for s in (reversed_.sample() for _ in range(16))}
    assert diffs == {OFFSET, -OFFSET}  # played forwards and backwards


def test_single_date_and_too_small_inputs_are_refused(two_dates, tmp_path):
    scene, _ = two_dates
    (scene / "a_later.tif").unlink()
    with pytest.raises(InputError, match="single-date: city"):
        load_sequences([scene.parent], BANDS)
    seqs = [np.zeros((2, 3, 40, 40), np.int32)]
    with pytest.raises(InputError, match="2 dates of at least 64x64"):
        SequenceSampler(seqs, IDENTITY, crop=64)
    with pytest.raises(InputError, match="3 dates"):
        SequenceSampler(seqs, IDENTITY, crop=32, frames=3)


TINY_TT = {
    "arch": "tec-tt", "bands": 3, "latent_channels": 16, "transform_channels": [8, 8, 8, 16],
    "residual_blocks": 1, "d_model": 16, "num_heads": 2, "layers": [1, 1, 1],
}


def test_rate_is_bits_per_value_of_the_whole_sequence():
    torch.manual_seed(0)
    model = from_config(TINY_TT)
    x = torch.randn(2, 3, 3, 64, 64)  # B, T, C, H, W
    out = model(x)
    rate, _ = rate_distortion(out, x)
    bits = -torch.log2(out["likelihoods"]["y"]).sum()
    assert out["likelihoods"]["y"].shape[0] == 3  # every frame is counted
    assert rate.item() == pytest.approx(bits.item() / (2 * 3 * 3 * 64 * 64), rel=1e-6)


@pytest.mark.slow
def test_a_short_tt_training_runs_and_writes_reloadable_weights(two_dates, tmp_path):
    scene, _ = two_dates
    norm = Normalization((1700.0,) * 3, (700.0,) * 3)
    sampler = SequenceSampler(load_sequences([scene.parent], BANDS), norm, crop=64, frames=2, seed=0)
    torch.manual_seed(0)
    model = from_config(dict(TINY_TT, normalization=norm.to_config()))
    cfg = TrainConfig(lmbda=10.0, steps=12, batch_size=2, lr=1e-3, warmup_steps=2, log_every=4,
                      checkpoint_every=12)

    def save(m, stem):
        m.update(force=True)
        m.save_pretrained(str(stem))

    state = train(model, sampler.batches(2), cfg, tmp_path / "run", save=save)
    losses = [row["loss"] for row in state.history]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["step"] == 12
    loaded = from_pretrained(str(tmp_path / "run" / "model"))
    assert loaded.arch == "tec-tt" and loaded.weights_hash() == model.weights_hash()
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


def _tec(args):
    from terracodec.cli.main import main

    return CliRunner().invoke(main, ["train", *args])


def test_cli_tt_refuses_single_dates_bad_crops_and_lambda_lists(two_dates, tmp_path):
    scene, _ = two_dates
    base = [str(scene.parent), "--arch", "tec-tt", "--bands", ",".join(BANDS), "--out", str(tmp_path / "o")]
    bad_crop = _tec(base + ["--lambda", "10", "--crop", "48"])
    assert bad_crop.exit_code == 1 and "multiple of 64" in bad_crop.output
    assert len(bad_crop.output.strip().splitlines()) == 1
    vbr = _tec(base + ["--lambda", "10,30"])
    assert vbr.exit_code == 1 and "image codecs" in vbr.output
    bad_json = _tec(base + ["--lambda", "10", "--tt-config", "[1]"])
    assert bad_json.exit_code == 1 and "JSON object" in bad_json.output
    (scene / "a_later.tif").unlink()
    single = _tec(base + ["--lambda", "10"])
    assert single.exit_code == 1 and single.output.startswith("error: temporal training needs")
    assert len(single.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing half-written
