"""FlexTEC on TEC-ELIC's transforms (`tec-flextec-s2l2a`, issue 18): its transforms are the image
model's, every k round-trips with identical latents on both sides, fewer tokens cost fewer bits
and less quality, whole files go through the CLI at every k, streams decode identically under
torch's other CPU kernels, and `tec train-flextec` trains a model that codes.
Data: the bundled real eo-learn sample (without B10)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

import terracodec
from terracodec.bands import S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS, latents_elsewhere
from terracodec.zoo import list_models, load_model

from _rasters import sample_l2a_series, write_series

MODEL = "tec-flextec-s2l2a"


def _inputs(model, n: int = 2) -> torch.Tensor:
    """Normalised, centred 64 x 64 crops `[T, 12, 64, 64]` of the sample series."""
    from terracodec.normalization import Normalization
    from terracodec.training.band_subsets import centred

    norm = Normalization.from_config(model.config["normalization"])
    centre = np.asarray(model.config["centre"], np.float64)[:, None, None]
    present = np.ones(12, bool)
    return torch.stack([torch.from_numpy(centred(f[:, :64, :64], present, norm, centre))
                        for f in sample_l2a_series(n)])


def test_transforms_are_the_image_models_at_its_quality():
    flex, elic = load_model(MODEL, 16), load_model("tec-elic-s2l2a", flex_base_quality())
    x = _inputs(flex, 1)
    order = flex.config["channel_order"]  # the shipped model's latent: the image model's channels, reordered
    assert sorted(order) == list(range(192))
    with torch.no_grad():
        torch.testing.assert_close(flex.analysis(x), elic.analysis(x)[:, order])
        y = torch.round(elic.analysis(x))
        torch.testing.assert_close(flex.synthesis(y[:, order]), elic.synthesis(y))


def test_a_channel_order_permutes_the_latent_and_nothing_else():
    """`channel_order` (config): the latent's channel i is the image model's channel order[i];
    synthesis undoes it. A config that is not a permutation is refused."""
    from terracodec.temporal.flextec_elic import from_image_codec

    elic = load_model("tec-elic-s2l2a", 5)
    order = torch.randperm(192, generator=torch.Generator().manual_seed(0)).tolist()
    sizes = {"d_model": 32, "num_heads": 2, "layers": [1, 1, 1]}
    flex = from_image_codec(elic, 5, dict(sizes, channel_order=order))
    assert flex.config["channel_order"] == order
    x = _inputs(flex, 1)
    with torch.no_grad():
        y = elic.analysis(x)
        torch.testing.assert_close(flex.analysis(x), y[:, order])
        torch.testing.assert_close(flex.latent_gain(), elic.gain[4][order])
        y = torch.round(y)
        torch.testing.assert_close(flex.synthesis(y[:, order]), elic.synthesis(y))
    with pytest.raises(ValueError, match="permutation"):
        from_image_codec(elic, 5, dict(sizes, channel_order=[0] * 192))


def test_channels_are_ordered_by_the_error_they_cost():
    """`channel_order`: a channel with far more variance than the others, or one whose error the
    synthesis amplifies far more, comes first."""
    from terracodec.training.flextec import channel_alphas, channel_order

    flex = load_model(MODEL, 16)
    gen = torch.Generator().manual_seed(1)
    latents = [torch.randn(3, 192, 4, 4, generator=gen) * flex.latent_gain()[None, :, None, None].detach()]
    latents[0][:, 100] *= 50
    alphas = channel_alphas(flex, latents, samples=1)
    assert alphas.shape == (192,) and bool((alphas > 0).all())
    assert channel_order(flex, latents, alphas)[0] == 100
    boosted = alphas.clone()
    boosted[7] *= 1e6
    assert channel_order(flex, latents, boosted)[:2] == [7, 100]


def flex_base_quality() -> int:
    return int(load_model(MODEL, 1).config["base_quality"])


def test_listed_with_sixteen_qualities():
    entry = {m["name"]: m for m in list_models()}[MODEL]
    assert entry["kind"] == "temporal" and list(entry["qualities"]) == list(range(1, 17))


@pytest.mark.parametrize("k", [1, 6, 16])
def test_every_k_round_trips_with_identical_latents(k):
    model = load_model(MODEL, k)
    x = _inputs(model, 2)
    enc, dec, payloads = model.start_state(), model.start_state(), []
    for t in range(2):
        p, enc = model.encode_frame(enc, x[t])
        payloads.append(p)
        coded = enc.pending.clone()
        latents, dec = model.decode_frame_latents(dec, p, 64, 64)
        assert torch.equal(latents["y_hat"][None], coded)
    assert all(p[1] == k for p in payloads)  # the payload records its token count


def test_fewer_tokens_cost_fewer_bits_and_less_quality():
    sizes, errors = {}, {}
    for k in (2, 16):
        model = load_model(MODEL, k)
        x = _inputs(model, 2)
        enc, dec = model.start_state(), model.start_state()
        sizes[k], errors[k] = 0, 0.0
        for t in range(2):
            p, enc = model.encode_frame(enc, x[t])
            x_hat, dec = model.decode_frame(dec, p, 64, 64)
            sizes[k] += len(p)
            errors[k] += float(((x_hat - x[t]) ** 2).mean())
    assert sizes[2] < 0.5 * sizes[16], sizes
    assert errors[16] < errors[2], errors


def test_cli_whole_files_at_two_qualities(tmp_path):
    x = sample_l2a_series(3)
    files = write_series(tmp_path / "in", x)
    runner, sizes = CliRunner(), {}
    for k in (3, 16):
        stream = tmp_path / f"k{k}.tec"
        res = runner.invoke(main, ["encode", *files, "-o", str(stream), "--model", MODEL, "--quality", str(k)])
        assert res.exit_code == 0, res.output
        sizes[k] = stream.stat().st_size
        res = runner.invoke(main, ["decode", str(stream), "-o", str(tmp_path / f"out{k}")])
        assert res.exit_code == 0, res.output
        outs = sorted((tmp_path / f"out{k}").glob("*.tif"))
        with rasterio.open(outs[-1]) as ds:
            y = ds.read().astype(np.float64)
        assert y.shape == x[-1].shape
        psnr = 10 * np.log10(1e8 / np.mean((y - x[-1]) ** 2))
        assert psnr > (33.0 if k == 16 else 25.0), (k, psnr)
    assert sizes[3] < sizes[16]


@pytest.mark.slow
@pytest.mark.parametrize("env_name", sorted(CPU_KERNEL_ENVIRONMENTS))
def test_streams_decode_identically_under_other_cpu_kernels(env_name, tmp_path):
    stream = tmp_path / "s.tec"
    terracodec.encode(sample_l2a_series(3), stream, model=MODEL, quality=5, band_names=list(S2_L2A_BANDS))
    here = np.asarray(terracodec.decode_latents(stream).y_hat)
    assert np.array_equal(latents_elsewhere(stream, env_name, tmp_path), here)


def test_train_flextec_learns_and_saves_a_loadable_model(tmp_path):
    src = tmp_path / "series"
    x = sample_l2a_series(3)
    write_series(src, x)
    out = tmp_path / "w" / "flex"
    res = CliRunner().invoke(main, ["train-flextec", str(src), "-o", str(out), "--steps", "60", "--views", "1",
                                    "--d-model", "32", "--layers", "1,1,1", "--batch-size", "4", "--lr", "1e-3",
                                    "--min-clear", "0", "-q"])
    assert res.exit_code == 0, res.output
    log = json.loads(out.with_suffix(".log.json").read_text())
    assert log[-1]["step"] == 60 and log[-1]["loss"] < log[0]["loss"]
    data = terracodec.encode(x, model=MODEL, quality=8, weights=str(out) + ".safetensors",
                             band_names=list(S2_L2A_BANDS))
    assert np.asarray(terracodec.decode(data, weights=str(out) + ".safetensors").pixels).shape == x.shape
    res = CliRunner().invoke(main, ["train-flextec", str(src), "-o", str(out), "--steps", "5", "-q"])
    assert res.exit_code != 0 and "exists" in res.output
    # continuing from it (with band dropout) starts where it ended; an image model is refused
    small = ["--d-model", "32", "--layers", "1,1,1", "--views", "1", "--batch-size", "4", "--min-clear", "0", "-q"]
    more = tmp_path / "w" / "more"
    res = CliRunner().invoke(main, ["train-flextec", str(src), "-o", str(more), "--steps", "50", "--lr", "1e-5",
                                    "--init", str(out) + ".safetensors", "--band-dropout", "1", *small])
    assert res.exit_code == 0, res.output
    assert json.loads(more.with_suffix(".log.json").read_text())[0]["loss"] < log[0]["loss"]
    # the channels were ordered by their cost (a permutation, not the image model's order); the
    # continued model keeps its init's order
    config = json.loads(out.with_suffix(".json").read_text())["config"]
    assert sorted(config["channel_order"]) == list(range(192)) and config["channel_order"] != list(range(192))
    assert json.loads(more.with_suffix(".json").read_text())["config"]["channel_order"] == config["channel_order"]
    image = Path(terracodec.__file__).parent / "weights" / "tec-fp-s2l2a.safetensors"
    res = CliRunner().invoke(main, ["train-flextec", str(src), "-o", str(tmp_path / "bad"), "--init", str(image), *small])
    assert res.exit_code != 0 and "not a FlexTEC" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(main, ["train-flextec", str(src), "-o", str(tmp_path / "none" / "m"), "--base-quality", "9"])
    assert res.exit_code != 0 and "no quality 9" in res.output and not (tmp_path / "none").exists()
