"""Variable-rate TEC-FP (gain vectors per quality), warm start, and the shipped 5-level models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terracodec.zoo import from_config, from_pretrained
from terracodec.errors import InputError
from terracodec.models.base import ImageCodec
from terracodec.weights import save_pretrained
from terracodec.zoo import load_model
from terracodec.training.loop import TrainConfig, train
from terracodec.training.warm_start import warm_start

SMOOTH = torch.linspace(-1, 1, 64)


def _vbr(bands: int = 3, lambdas=(1.0, 4.0, 16.0), seed: int = 0) -> ImageCodec:
    torch.manual_seed(seed)
    model = from_config({"arch": "tec-fp", "bands": bands, "N": 8, "M": 8, "lambdas": list(lambdas)})
    with torch.no_grad():  # widen the latents so that coding is not all zeros
        model.g_a[-1].weight.mul_(100)
    model.update(force=True)
    return model.eval()


def _image(bands: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return (SMOOTH[None, :, None] * SMOOTH[None, None, :] + 0.3 * torch.randn(bands, 64, 64, generator=gen))


def test_each_quality_round_trips_and_rate_grows_with_quality():
    model, x = _vbr(), _image()
    sizes = []
    for q in (1, 2, 3):
        model.set_quality(q)
        payload = model.encode_tile(x)
        latents = model.decode_latents(payload, 64, 64)["y_hat"]
        expected = model.entropy_bottleneck.quantize(
            model.analysis(x[None]), "dequantize", model.entropy_bottleneck._get_medians())[0]
        assert torch.equal(latents, expected)
        assert model.decode_tile(payload, 64, 64).shape == x.shape
        sizes.append(len(payload))
    assert sizes[0] < sizes[1] < sizes[2]


def test_elic_qualities_round_trip_and_rate_grows_with_quality():
    """TEC-ELIC shares the gain units: every level codes its gained latent exactly."""
    torch.manual_seed(0)
    model = from_config({"arch": "tec-elic", "bands": 3, "N": 8, "M": 16, "groups": [4, 4, 8],
                                    "context_widths": [8, 8], "aggregation_width": 16,
                                    "lambdas": [1.0, 4.0, 16.0]})
    with torch.no_grad():
        model.g_a[-2].weight.mul_(30)  # the last analysis conv: wide latents, nonzero symbols
    model.update(force=True)
    model.eval()
    x, sizes = _image(), []
    for q in (1, 2, 3):
        model.set_quality(q)
        payload = model.encode_tile(x)
        _, coded = model.compress_latents(model.analysis(x[None]))
        assert torch.equal(model.decode_latents(payload, 64, 64)["y_hat"], coded["y_hat"][0])
        assert torch.isfinite(model.decode_tile(payload, 64, 64)).all()
        sizes.append(len(payload))
    assert sizes[0] < sizes[1] < sizes[2]
    out = model.train()(x[None], quality_index=2)
    assert set(out["likelihoods"]) == {"y", "z"} and out["x_hat"].shape == (1, 3, 64, 64)


def test_quality_outside_the_levels_is_refused():
    with pytest.raises(ValueError):
        _vbr().set_quality(4)
    with pytest.raises(Exception):
        from_config({"arch": "tec-fp", "bands": 3, "N": 8, "M": 8, "lambdas": [4.0, 1.0]})


@pytest.mark.slow
def test_variable_rate_training_takes_turns_and_logs_every_level(tmp_path):
    model = _vbr()
    model.train()
    gen = torch.Generator().manual_seed(0)
    batches = iter(lambda: _image()[None].repeat(2, 1, 1, 1)[..., :32, :32] + 0.01 * torch.randn(2, 3, 32, 32, generator=gen), None)
    cfg = TrainConfig(lmbda=[1.0, 4.0, 16.0], steps=6, lr=1e-3, warmup_steps=1, log_every=6, checkpoint_every=6)
    before = model.gain.detach().clone()
    state = train(model, batches, cfg, tmp_path, save=lambda m, s: (m.update(force=True), m.save_pretrained(str(s))))
    levels = state.history[-1]["levels"]
    assert [lv["lambda"] for lv in levels] == [1.0, 4.0, 16.0]
    assert all(np.isfinite(lv["bpppb"]) and lv["bpppb"] > 0 for lv in levels)
    assert not torch.equal(model.gain.detach(), before)  # every level's gains were trained
    reloaded = from_pretrained(str(tmp_path / "model"))
    assert torch.equal(reloaded.gain, model.gain)


def test_warm_start_selects_bands_by_name_and_sets_gains():
    source = from_config({"arch": "tec-fp", "bands": 3, "N": 8, "M": 8, "lambda": 4.0,
                                     "band_names": ["B02", "B03", "B04"]})
    target = from_config({"arch": "tec-fp", "bands": 2, "N": 8, "M": 8, "lambdas": [1.0, 16.0],
                                     "band_names": ["B04", "B02"]})
    warm_start(target, source)
    assert torch.equal(target.g_a[0].weight, source.g_a[0].weight[:, [2, 0]])
    assert torch.equal(target.g_s[-1].weight, source.g_s[-1].weight[:, [2, 0]])
    assert torch.equal(target.g_s[-1].bias, source.g_s[-1].bias[[2, 0]])
    assert torch.equal(target.g_a[2].weight, source.g_a[2].weight)
    assert torch.allclose(target.gain[:, 0], torch.tensor([0.5, 2.0]))  # sqrt(lambda / 4)
    wrong = from_config({"arch": "tec-fp", "bands": 1, "N": 8, "M": 8, "band_names": ["B10"]})
    with pytest.raises(InputError, match="too few bands"):
        warm_start(wrong, source)
    # a band the source lacks (B10 of a 4-band target) starts at zero; the others are copied, so
    # the target codes the shared bands as the source does
    wider = from_config({"arch": "tec-fp", "bands": 4, "N": 8, "M": 8, "lambda": 4.0,
                         "band_names": ["B02", "B03", "B04", "B10"]})
    warm_start(wider, source)
    assert torch.equal(wider.g_a[0].weight[:, :3], source.g_a[0].weight)
    assert not wider.g_a[0].weight[:, 3].any() and not wider.g_s[-1].weight[:, 3].any()
    assert torch.equal(wider.g_s[-1].weight[:, :3], source.g_s[-1].weight)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y_src = source.g_a(x)
        y_wide = wider.g_a(torch.cat([x, torch.randn(1, 1, 32, 32)], 1))
    assert torch.allclose(y_src, y_wide, atol=1e-6)


def test_warm_start_moves_quality_levels_to_another_lambda_range():
    """A variable-rate source with lambdas 10, 30, 100 -> a target with 1, 3, 10, 30: each level
    starts from the nearest source level's gains times sqrt(lambda ratio)."""
    source = from_config({"arch": "tec-fp", "bands": 3, "N": 8, "M": 8, "lambdas": [10.0, 30.0, 100.0]})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        source.gain.copy_(torch.rand(3, 8, generator=gen) + 0.5)
        source.inverse_gain.copy_(torch.rand(3, 8, generator=gen) + 0.5)
    target = from_config({"arch": "tec-fp", "bands": 3, "N": 8, "M": 8, "lambdas": [1.0, 3.0, 10.0, 30.0]})
    warm_start(target, source)
    for q, (j, f) in enumerate([(0, 0.1**0.5), (0, 0.3**0.5), (0, 1.0), (1, 1.0)]):
        assert torch.allclose(target.gain[q], source.gain[j] * f)
        assert torch.allclose(target.inverse_gain[q], source.inverse_gain[j] / f)


def test_weights_file_codes_at_the_asked_quality(tmp_path):
    model = _vbr(bands=13, lambdas=(1.0, 2.0, 4.0, 8.0, 16.0))
    save_pretrained(model, tmp_path / "vbr")
    low = load_model("tec-fp-s2l1c", 1, weights=tmp_path / "vbr.safetensors")
    high = load_model("tec-fp-s2l1c", 5, weights=tmp_path / "vbr.safetensors")
    assert (low.quality_index, high.quality_index) == (0, 4)
    x = _image(13)
    assert len(low.encode_tile(x)) < len(high.encode_tile(x))


@pytest.mark.parametrize("name, drop_b10", [("tec-fp-s2l1c", False), ("tec-fp-s2l2a", True),
                                             pytest.param("tec-elic-s2l2a", True, marks=pytest.mark.slow)])
def test_shipped_models_trade_rate_for_quality_on_real_data(name, drop_b10):
    """The bundled real L1C sample: every level decodes, and rate and PSNR rise with quality."""
    import rasterio

    from terracodec.demo import SAMPLE_DIR

    size = 64 if name.startswith("tec-elic") else 96  # a multiple of the model's 64 or 16 (sample: 100 x 101)
    with rasterio.open(sorted(SAMPLE_DIR.glob("*.tif"))[0]) as ds:
        dn = torch.from_numpy(ds.read()[:, :size, :size].astype(np.float32))
    if drop_b10:
        dn = torch.cat([dn[:10], dn[11:]])
    sizes, psnrs = [], []
    for q in (1, 2, 3, 4, 5):
        model = load_model(name, q)
        norm = model_normalization(model)
        payload = model.encode_tile(norm.normalize(dn))
        decoded = norm.denormalize(model.decode_tile(payload, size, size))
        mse = torch.mean((decoded - dn) ** 2).item()
        sizes.append(len(payload))
        psnrs.append(10 * np.log10(10000**2 / mse))
    assert sizes == sorted(sizes) and len(set(sizes)) == 5
    assert psnrs == sorted(psnrs)


def model_normalization(model):
    from terracodec.normalization import Normalization

    return Normalization.from_config(model.config["normalization"])
