"""Training data assembly and the training loop (short runs; real convergence is in docs/MODELS.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from terracodec.zoo import from_config, from_pretrained
from terracodec.errors import InputError
from terracodec.models.base import ImageCodec
from terracodec.normalization import Normalization
from terracodec.training.data import CropSampler, discover_scenes, load_scenes, read_scene
from terracodec.training.loop import TrainConfig, learning_rate, train


def _write(path, bands: dict[str, np.ndarray], pixel: float) -> None:
    first = next(iter(bands.values()))
    with rasterio.open(
        path, "w", driver="GTiff", width=first.shape[1], height=first.shape[0], count=len(bands),
        dtype="uint16", crs="EPSG:32633", transform=from_origin(500000, 5000000, pixel, pixel),
    ) as ds:
        for i, (name, arr) in enumerate(bands.items(), start=1):
            ds.write(arr.astype(np.uint16), i)
            ds.set_band_description(i, name)


@pytest.fixture
def multires_scene(tmp_path):
    """One scene split by resolution as OSCD ships it, plus a mask that must be ignored."""
    rng = np.random.default_rng(0)
    _write(tmp_path / "img1_10m.tif", {b: rng.integers(500, 3000, (36, 48)) for b in ("B04", "B02")}, 10)
    _write(tmp_path / "img1_20m.tif", {"B8A": np.full((18, 24), 2000)}, 20)
    _write(tmp_path / "mask.tif", {"label": np.ones((36, 48))}, 10)
    return tmp_path


def test_resolution_siblings_form_one_scene_on_the_finest_grid(multires_scene):
    groups = discover_scenes([multires_scene])
    assert [sorted(p.name for p in g) for g in groups] == [["img1_10m.tif", "img1_20m.tif"], ["mask.tif"]]
    scene = read_scene(groups[0], ["B02", "B04", "B8A"])
    assert scene.shape == (3, 36, 48)
    with rasterio.open(multires_scene / "img1_10m.tif") as ds:
        np.testing.assert_array_equal(scene[0], ds.read(2))  # B02 is the file's 2nd band
        np.testing.assert_array_equal(scene[1], ds.read(1))
    assert np.all(scene[2] == 2000)  # a constant band stays constant when upsampled


def test_files_without_wanted_bands_are_skipped_partial_scenes_refused(multires_scene):
    assert len(load_scenes([multires_scene], ["B02", "B04"])) == 1
    with pytest.raises(InputError, match="lacks bands B03"):
        load_scenes([multires_scene], ["B02", "B03"])
    with pytest.raises(InputError, match="no such file"):
        load_scenes([multires_scene / "nope.tif"], ["B02"])


def test_crop_sampler_yields_normalised_batches(multires_scene):
    scenes = load_scenes([multires_scene], ["B02", "B04", "B8A"])
    norm = Normalization((1000.0, 1000.0, 2000.0), (500.0, 500.0, 100.0))
    batch = next(CropSampler(scenes, norm, crop=32, seed=1).batches(4))
    assert batch.shape == (4, 3, 32, 32) and batch.dtype == torch.float32
    assert torch.all(batch[:, 2] == 0)  # (2000 - 2000) / 100, whatever the flip
    with pytest.raises(InputError, match="at least 64x64"):
        CropSampler(scenes, norm, crop=64)


def test_learning_rate_warms_up_then_decays():
    cfg = TrainConfig(lr=1e-3, steps=100, warmup_steps=10, min_lr_ratio=0.1)
    lrs = [learning_rate(cfg, s) for s in range(100)]
    assert lrs[0] < lrs[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(1e-4, rel=0.01)


def _tiny_model() -> ImageCodec:
    torch.manual_seed(0)
    return from_config({"arch": "tec-fp", "bands": 3, "N": 8, "M": 8})


def _batches(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(1, 3, 1, 1, generator=gen)
    while True:  # smooth, learnable images
        yield base + 0.1 * torch.randn(2, 3, 32, 32, generator=gen).cumsum(-1).cumsum(-2) / 32


def test_training_writes_loadable_checkpoints_and_resumes(tmp_path):
    def save(model, stem):
        model.update(force=True)
        model.save_pretrained(str(stem))

    cfg = TrainConfig(lmbda=1.0, steps=4, lr=1e-3, warmup_steps=1, log_every=2, checkpoint_every=2)
    model = _tiny_model()
    state = train(model, _batches(), cfg, tmp_path, save=save)
    assert state.step == 4 and [r["step"] for r in state.history] == [2, 4]
    assert all(np.isfinite(r["loss"]) for r in state.history)
    reloaded = from_pretrained(str(tmp_path / "model"))
    x = next(_batches(1))[0]
    model.eval()
    assert torch.equal(reloaded.decode_tile(reloaded.encode_tile(x), 32, 32),
                       model.decode_tile(model.encode_tile(x), 32, 32))

    cfg_more = TrainConfig(**{**cfg.__dict__, "steps": 6})
    resumed = train(reloaded, _batches(2), cfg_more, tmp_path, save=save, resume=True)
    assert resumed.step == 6 and [r["step"] for r in resumed.history] == [2, 4, 6]
    assert json.loads((tmp_path / "train_log.json").read_text())["step"] == 6


def test_time_limit_stops_with_a_checkpoint_and_resume_continues(tmp_path):
    saved = []

    def save(model, stem):
        model.update(force=True)
        model.save_pretrained(str(stem))
        saved.append(stem)

    cfg = TrainConfig(lmbda=1.0, steps=50, lr=1e-3, warmup_steps=1, log_every=20, checkpoint_every=20,
                      max_seconds=0.0)
    state = train(_tiny_model(), _batches(), cfg, tmp_path, save=save)
    assert state.step == 1 and len(saved) == 1 and [r["step"] for r in state.history] == [1]
    assert json.loads((tmp_path / "train_log.json").read_text())["step"] == 1
    cfg_rest = TrainConfig(**{**cfg.__dict__, "steps": 3, "max_seconds": None})
    resumed = train(from_pretrained(str(tmp_path / "model")), _batches(2), cfg_rest, tmp_path,
                    save=save, resume=True)
    assert resumed.step == 3 and [r["step"] for r in resumed.history] == [1, 3]


def test_resume_without_checkpoint_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nothing to resume"):
        train(_tiny_model(), _batches(), TrainConfig(steps=1), tmp_path, save=lambda m, s: None, resume=True)


def test_training_reduces_the_loss(tmp_path):
    """Not a convergence claim: 30 steps on smooth images must beat the first steps' loss."""
    model = _tiny_model()
    cfg = TrainConfig(lmbda=5.0, steps=30, lr=3e-3, warmup_steps=2, log_every=10, checkpoint_every=10**9)
    state = train(model, _batches(), cfg, tmp_path, save=lambda m, s: None)
    assert state.history[-1]["loss"] < state.history[0]["loss"]


def test_oscd_city_reads_as_thirteen_bands(shared_data):
    city = shared_data / "oscd_s2_l1c" / "bercy"
    from terracodec.bands import S2_L1C_BANDS

    scenes = load_scenes([city], S2_L1C_BANDS)
    assert len(scenes) == 2  # two dates; the change mask is skipped
    with rasterio.open(city / "img1_10m.tif") as ds:
        assert scenes[0].shape == (13, ds.height, ds.width)
        np.testing.assert_array_equal(scenes[0][1], ds.read(1))  # B02


def test_cli_trains_a_variable_rate_elic_with_arch_config(tmp_path):
    """`tec train --arch tec-elic --lambda a,b --arch-config JSON`: a loadable 2-level ELIC with
    the asked sizes; a non-object --arch-config is a one-line error."""
    from click.testing import CliRunner

    from terracodec.cli.main import main

    rng = np.random.default_rng(1)
    scene = tmp_path / "scene"
    scene.mkdir()
    _write(scene / "img_10m.tif", {b: rng.integers(500, 3000, (64, 64)) for b in ("B02", "B03", "B04")}, 10)
    sizes = '{"groups": [4, 4, 8], "context_widths": [8, 8], "aggregation_width": 16}'
    args = [str(scene), "--out", str(tmp_path / "run"), "--arch", "tec-elic", "--bands", "B02,B03,B04",
            "--channels", "8", "--latent", "16", "--lambda", "1,4", "--steps", "2", "--batch-size", "1",
            "--crop", "64"]
    result = CliRunner().invoke(main, ["train", *args, "--arch-config", sizes])
    assert result.exit_code == 0, result.output
    model = from_pretrained(str(tmp_path / "run" / "model"))
    assert model.arch == "tec-elic" and model.groups == [4, 4, 8] and model.num_qualities == 2
    assert model.config["aggregation_width"] == 16
    bad = CliRunner().invoke(main, ["train", *args[:2], str(tmp_path / "bad"), *args[3:], "--arch-config", "[1]"])
    assert bad.exit_code == 1 and "JSON object" in bad.output and len(bad.output.strip().splitlines()) == 1


def test_autoencoder_objective_trains_only_the_transforms(tmp_path):
    """`objective="autoencoder"`: the transforms' reconstruction MSE falls; the entropy model
    (bottleneck densities and quantiles) is left exactly as it was."""
    model = _tiny_model()
    entropy_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("entropy_bottleneck")}
    transforms_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("g_")}
    assert entropy_before and transforms_before
    cfg = TrainConfig(lmbda=1.0, steps=40, lr=3e-3, warmup_steps=2, log_every=10, checkpoint_every=10**9,
                      objective="autoencoder")
    state = train(model, _batches(), cfg, tmp_path, save=lambda m, s: None)
    assert state.history[-1]["mse"] < 0.5 * state.history[0]["mse"]
    assert all(r["bpppb"] == 0 for r in state.history)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in entropy_before.items())
    assert any(not torch.equal(after[k], v) for k, v in transforms_before.items())


def test_autoencoder_objective_refuses_quality_levels_and_unknown_objectives(tmp_path):
    with pytest.raises(InputError, match="one --lambda"):
        train(_tiny_model(), _batches(), TrainConfig(lmbda=[1.0, 2.0], steps=1, objective="autoencoder"),
              tmp_path, save=lambda m, s: None)
    with pytest.raises(InputError, match="unknown training objective"):
        train(_tiny_model(), _batches(), TrainConfig(steps=1, objective="gan"), tmp_path, save=lambda m, s: None)


def test_cli_autoencoder_objective_with_a_lambda_list_is_a_one_line_error(tmp_path):
    from click.testing import CliRunner

    from terracodec.cli.main import main

    scene = tmp_path / "scene"
    scene.mkdir()
    _write(scene / "img_10m.tif", {b: np.full((64, 64), 1000) for b in ("B02", "B03", "B04")}, 10)
    result = CliRunner().invoke(main, ["train", str(scene), "--out", str(tmp_path / "run"), "--bands", "B02,B03,B04",
                                       "--lambda", "1,4", "--objective", "autoencoder", "--steps", "1"])
    assert result.exit_code == 1 and "one --lambda" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
