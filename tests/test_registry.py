"""The model registry: listing, loading by name and quality, the seeded tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from terracodec.errors import ModelError
from terracodec.weights import save_pretrained
from terracodec.zoo import list_models, load_model


def test_list_models() -> None:
    models = {m["name"]: m for m in list_models()}
    tiny = models["tec-fp-tiny"]
    assert tiny["kind"] == "image" and tiny["bands"] == 13 and tiny["qualities"] == [1]
    assert tiny["trained"] is False


def test_tiny_model_is_deterministic_and_codes() -> None:
    a = load_model("tec-fp-tiny")
    b = load_model("tec-fp-tiny", 1)
    assert a.weights_hash() == b.weights_hash()
    assert a.config["name"] == "tec-fp-tiny" and a.config["quality"] == 1
    assert a.config["normalization"]["name"] == "ssl4eo-s12-l1c"
    with torch.no_grad():  # a fresh object: changing it must not leak into the next load
        a.g_a[0].weight.zero_()
    assert load_model("tec-fp-tiny").weights_hash() == b.weights_hash()
    x = torch.randn(13, 32, 48, generator=torch.Generator().manual_seed(0))
    assert b.decode_tile(b.encode_tile(x), 32, 48).shape == x.shape


def test_unknown_names_and_qualities() -> None:
    with pytest.raises(ModelError):
        load_model("tec-nope")
    with pytest.raises(ModelError):
        load_model("tec-fp-tiny", 7)
    with pytest.raises(ModelError):
        load_model("tec-fp-tiny", "best")


def test_weights_override(tmp_path: Path) -> None:
    tiny = load_model("tec-fp-tiny")
    with torch.no_grad():
        tiny.g_s[0].bias.add_(0.5)
    save_pretrained(tiny, tmp_path / "custom")
    loaded = load_model("tec-fp-tiny", weights=tmp_path / "custom.safetensors")
    assert loaded.weights_hash() == tiny.weights_hash()
    torch.save({f"model.{k}": v for k, v in tiny.state_dict().items()}, tmp_path / "v1.pt")
    from_pt = load_model("tec-fp-tiny", 1, weights=tmp_path / "v1.pt")
    assert from_pt.config["name"] == "tec-fp-tiny"
    assert torch.equal(from_pt.g_s[0].bias, tiny.g_s[0].bias)
