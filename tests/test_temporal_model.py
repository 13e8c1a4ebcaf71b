"""TEC-TT model plumbing: configuration, TerraCodec v1 checkpoint reading, weights round trip,
training pass."""

from __future__ import annotations

import pytest
import torch

from _tinytt import TINY, frames, tiny_tt, one_thread  # noqa: F401  (autouse fixture)
from terracodec.zoo import from_pretrained
from terracodec.errors import ModelError
from terracodec.models.base import ImageCodec
from terracodec.temporal import PUBLISHED, TemporalCodec
from terracodec.temporal.checkpoint import infer_tt_config, load_tt_checkpoint, tt_model_from_state




def test_published_configuration_parameter_count() -> None:
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = TemporalCodec({"bands": 12})
    assert PUBLISHED["d_model"] == 768 and PUBLISHED["layers"] == [6, 4, 5]
    assert model.multiple == 64 and model.num_streams == 16
    params = sum(p.numel() for p in model.parameters())
    assert 220e6 < params < 230e6  # ~225 M, as the paper's TEC-TT


def test_v1_checkpoint_round_trip(tmp_path) -> None:
    model = tiny_tt(seed=2)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    # the reference's conditional buffers, as the published files carry them
    state["model.entropy_model.bottleneck._entropy_model.scale_bound"] = torch.tensor([0.01])
    state["model.entropy_model.bottleneck._entropy_model._quantized_cdf"] = torch.zeros(0, dtype=torch.int32)
    del state["model.entropy_model.bottleneck.likelihood_lower_bound.bound"]
    torch.save(state, tmp_path / "tt.pt")
    loaded = load_tt_checkpoint(tmp_path / "tt.pt", num_heads=TINY["num_heads"])
    assert {k: loaded.config[k] for k in TINY} == TINY
    assert loaded.config["normalization"]["name"] == "identity"  # 12 bands: L2A, 13: L1C
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = frames(1, 1, 4, 64, 64)[0]
    assert loaded.encode_frame(loaded.start_state(), x[0])[0] == model.encode_frame(model.start_state(), x[0])[0]


def test_checkpoint_errors(tmp_path) -> None:
    model = tiny_tt()
    state = dict(model.state_dict())
    with pytest.raises(ModelError, match="not divisible"):
        infer_tt_config(state, num_heads=3)
    bad = dict(state)
    bad["entropy_model.bottleneck._entropy_model.scale_bound"] = torch.tensor([0.11])
    with pytest.raises(ModelError, match="scale bound"):
        tt_model_from_state(bad, num_heads=2)
    missing = {k: v for k, v in state.items() if "mean_head.4" not in k}
    with pytest.raises(ModelError, match="missing"):
        tt_model_from_state(missing, num_heads=2)
    torch.save({"g_a.0.weight": torch.zeros(1)}, tmp_path / "fp.pt")
    with pytest.raises(ModelError, match="not a TEC-TT"):
        load_tt_checkpoint(tmp_path / "fp.pt")


def test_config_errors() -> None:
    with pytest.raises(ValueError):
        TemporalCodec(dict(TINY, transform_channels=[8, 8, 8, 12]))
    with pytest.raises(ValueError):
        TemporalCodec(dict(TINY, layers=[1, 1]))
    with pytest.raises(ValueError):
        TemporalCodec(dict(TINY, d_model=15))


def test_save_pretrained_round_trip(tmp_path) -> None:
    model = tiny_tt(seed=4)
    model.config.update(name="tt-test", quality=1)
    model.save_pretrained(str(tmp_path / "tt"))
    loaded = from_pretrained(str(tmp_path / "tt"))
    assert isinstance(loaded, TemporalCodec)
    assert loaded.weights_hash() == model.weights_hash()


def test_training_pass_has_gradients_everywhere_that_matters() -> None:
    model = tiny_tt().train()
    x = frames(2, 3, 4, 64, 64)
    out = model(x.transpose(0, 1))
    assert out["x_hat"].shape == (2, 3, 4, 64, 64)
    assert out["likelihoods"]["y"].shape == (3, 2, 16, 16)
    bits = -torch.log2(out["likelihoods"]["y"]).sum()
    loss = bits / x.numel() + 100 * torch.mean((out["x_hat"] - x.transpose(0, 1)) ** 2)
    loss.backward()
    for name in ("_temporal_pad_token_maker.weight", "entropy_model.learned_zero.sym",
                 "entropy_model.encoder_sep.layers.encoder_layer_0.mlp1.fc1.weight",
                 "entropy_model.encoder_joint.layers.encoder_layer_0.self_attention.q.weight",
                 "entropy_model.decoder.layers.encoder_layer_0.cross_attention.k.weight",
                 "entropy_model.scale_head.4.weight", "_dequantizer.process_conv.0.weight",
                 "transform.analysis_transform.transforms.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and bool(grad.abs().sum() > 0), name
