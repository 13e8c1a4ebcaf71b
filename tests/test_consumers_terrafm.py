"""TerraFM against the public code (fixtures from tests/fixtures/make_terrafm_fixtures.py, made in
a separate virtual environment with the public `terrafm.py`), and loading users' checkpoints."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from terracodec.consumers.terrafm import TerraFM, SIZES, build_terrafm
from terracodec.errors import InputError, ModelError

FIXTURES = Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "terrafm" / "meta.json").read_text())


def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_terrafm_fixtures", FIXTURES / "make_terrafm_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIX = _fixture_module()


@pytest.fixture(scope="module")
def reference() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "terrafm" / "tensors.safetensors"))


@pytest.fixture(scope="module")
def model_b() -> TerraFM:
    model = TerraFM(SIZES["b"]).eval()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    model.load_state_dict(FIX.seeded_state(shapes, META["seed"]), strict=True)
    return model


def _input(reference, name: str) -> torch.Tensor:
    return reference[f"input.{name}"].float() * FIX.INPUT_STEP


@pytest.mark.parametrize("size", ["b", "l"])
def test_state_dict_is_the_published_layout(size):
    ours = {k: list(v.shape) for k, v in TerraFM(SIZES[size]).state_dict().items()}
    assert ours == META["state_shapes"][size]


@pytest.mark.parametrize("case, modality", [("l1c", "s2_l1c"), ("l2a", "s2_l2a"), ("s1", "s1")])
def test_patch_tokens_match_the_public_code(reference, model_b, case, modality):
    with torch.no_grad():
        ours = model_b.patch_tokens(_input(reference, case), modality)
    theirs = reference[f"output.{case}_tokens"]
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().max()) < 1e-4


def test_l2a_and_l1c_embeddings_differ(reference, model_b):
    x = _input(reference, "l2a")
    with torch.no_grad():
        l2a, l1c = model_b.patch_tokens(x, "s2_l2a"), model_b.patch_tokens(x, "s2_l1c")
    assert float((l2a - l1c).abs().max()) > 0.1


def test_cls_feature_at_the_pretraining_size(reference, model_b):
    with torch.no_grad():
        ours = model_b(_input(reference, "square"), "s2_l1c")
    assert float((ours - reference["output.square_cls"]).abs().max()) < 1e-4


def test_batch_rows_are_independent(reference, model_b):
    x = _input(reference, "l1c")
    with torch.no_grad():
        both = model_b.patch_tokens(x, "s2_l1c")
        second = model_b.patch_tokens(x[1:], "s2_l1c")
    assert float((both[1:] - second).abs().max()) < 1e-5


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_checkpoint_files_load(tmp_path, model_b, reference, suffix):
    state = {f"module.{k}": v for k, v in model_b.state_dict().items()}  # a DDP-style prefix
    path = tmp_path / f"terrafm-b{suffix}"
    if suffix == ".pt":
        torch.save({"teacher": state, "epoch": 3}, path)
    else:
        save_file(state, str(path))
    loaded = build_terrafm("b", weights=path)
    x = _input(reference, "s1")
    with torch.no_grad():
        assert torch.equal(loaded.patch_tokens(x, "s1"), model_b.patch_tokens(x, "s1"))


def test_wrong_checkpoints_are_one_line_errors(tmp_path, model_b):
    small = tmp_path / "small.safetensors"
    save_file({"cls_token": torch.zeros(1, 1, 384), "pos_embed": torch.zeros(1, 197, 384),
               "blocks.0.norm1.weight": torch.ones(384)}, str(small))
    with pytest.raises(ModelError, match="neither TerraFM-B nor TerraFM-L"):
        build_terrafm("b", weights=small)
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(4, 4)}, str(other))
    with pytest.raises(ModelError, match="not a TerraFM checkpoint"):
        build_terrafm("b", weights=other)
    state = {k: v for k, v in model_b.state_dict().items() if k != "patch_embed.s1_embed"}
    missing = tmp_path / "missing.safetensors"
    save_file(state, str(missing))
    with pytest.raises(ModelError, match="missing"):
        build_terrafm("b", weights=missing)
    with pytest.raises(ModelError, match="is terrafm-b, not terrafm-l"):
        build_terrafm("l", weights=missing)
    pickle = tmp_path / "evil.pt"
    torch.save({"model": {"x": object()}}, pickle)
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        build_terrafm("b", weights=pickle)


def test_bad_inputs(model_b):
    with pytest.raises(InputError, match="takes 12 bands"):
        model_b.patch_tokens(torch.zeros(1, 13, 32, 32), "s2_l1c")
    with pytest.raises(InputError, match="multiples of 16"):
        model_b.patch_tokens(torch.zeros(1, 12, 40, 32), "s2_l2a")
    with pytest.raises(InputError, match="unknown TerraFM modality"):
        model_b.patch_tokens(torch.zeros(1, 12, 32, 32), "s2")
