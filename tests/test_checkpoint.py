"""Weights on disk: safetensors + JSON round trips, TerraCodec v1 `.pt` loading, bad files."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from terracodec.errors import ModelError
from terracodec.models.base import ImageCodec
from terracodec.models.v1 import infer_v1_config
from terracodec.weights import derived_keys, read_v1_state_dict, save_pretrained
from terracodec.zoo import from_pretrained
from terracodec.zoo import load_checkpoint as load_v1_checkpoint

from test_models import make, small_config, tile  # noqa: E402  (tests/ is on sys.path)

FIXTURES = Path(__file__).parent / "fixtures" / "reference"


def save_v1(model: ImageCodec, path: Path, wrap: bool = False) -> Path:
    """A checkpoint laid out like TerraCodec v1's published files (`model.` prefix)."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state} if wrap else state, path)
    return path


@pytest.mark.parametrize("arch", ["tec-fp", "tec-elic"])
def test_save_and_load_pretrained(tmp_path: Path, arch: str) -> None:
    model = make(arch, 13)
    model.config.update(name="unit", quality=2)
    weights, config = save_pretrained(model, tmp_path / "unit")
    assert weights.name == "unit.safetensors" and config.name == "unit.json"
    loaded = from_pretrained(tmp_path / "unit.safetensors")
    assert loaded.config == model.config
    assert loaded.weights_hash() == model.weights_hash()
    x = tile(13, 64, 64)
    assert loaded.encode_tile(x) == model.encode_tile(x)
    assert from_pretrained(str(tmp_path / "unit")).weights_hash() == model.weights_hash()


def test_files_omit_what_loading_rebuilds_and_old_files_still_load(tmp_path: Path) -> None:
    """TEC-ELIC's Gaussian tables and checkerboard masks are left out of the file and rebuilt
    exactly on loading (same hash, same bytes); a file that carries them loads as before."""
    from safetensors.torch import load_file, save_file

    model = make("tec-elic", 12)
    skipped = derived_keys(model)
    assert any(k.endswith("_quantized_cdf") for k in skipped) and any(k.endswith(".mask") for k in skipped)
    weights, _ = save_pretrained(model, tmp_path / "m")
    assert not skipped & set(load_file(str(weights)))
    loaded = from_pretrained(tmp_path / "m")
    assert loaded.weights_hash() == model.weights_hash()
    x = tile(12, 64, 64)
    assert loaded.encode_tile(x) == model.encode_tile(x)
    full = {k: v.contiguous() for k, v in model.state_dict().items()}  # the older, complete layout
    save_file(full, str(weights))
    assert from_pretrained(tmp_path / "m").weights_hash() == model.weights_hash()


def test_from_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        from_pretrained(tmp_path / "absent")
    save_pretrained(make("tec-fp", 12), tmp_path / "m")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError):
        from_pretrained(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ModelError):
        from_pretrained(tmp_path / "m")


@pytest.mark.parametrize("arch,bands", [("tec-fp", 13), ("tec-fp", 2), ("tec-elic", 12), ("tec-elic", 2)])
def test_v1_checkpoint_sizes_are_inferred(tmp_path: Path, arch: str, bands: int) -> None:
    model = make(arch, bands)
    path = save_v1(model, tmp_path / "v1.pt")
    loaded = load_v1_checkpoint(path, name="v1", quality=3)
    expected = {k: v for k, v in small_config(arch, bands).items()}
    assert {k: loaded.config[k] for k in expected} == expected
    assert loaded.config["name"] == "v1" and loaded.config["quality"] == 3
    assert loaded.config["normalization"]["mean"][0] == pytest.approx(
        {13: 1607.345, 12: 793.243, 2: 0.0}[bands]  # the reference README's statistics
    )
    assert not loaded.training
    x = tile(bands, 64, 64)
    assert loaded.decode_tile(loaded.encode_tile(x), 64, 64).shape == x.shape


def test_v1_lightning_wrapper_and_old_key_names(tmp_path: Path) -> None:
    model = make("tec-fp", 12)
    reference = load_v1_checkpoint(save_v1(model, tmp_path / "plain.pt"))
    wrapped = load_v1_checkpoint(save_v1(model, tmp_path / "wrapped.pt", wrap=True))
    assert wrapped.weights_hash() == reference.weights_hash()
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    old = {}
    for key, value in state.items():  # CompressAI < 1.1 names: _matrix0, _bias0, _factor0
        for new, prefix in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
            key = key.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{prefix}")
        old[key] = value
    assert any("_matrix0" in k for k in old)
    buffer = io.BytesIO()
    torch.save(old, buffer)
    buffer.seek(0)
    assert load_v1_checkpoint(buffer).weights_hash() == reference.weights_hash()


def test_v1_tables_are_rebuilt_deterministically(tmp_path: Path) -> None:
    model = make("tec-elic", 12)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    for key in state:  # a checkpoint saved before update(): empty tables
        if key.endswith(("_quantized_cdf", "_offset", "_cdf_length")):
            state[key] = state[key].new_zeros(0)
    torch.save(state, tmp_path / "bare.pt")
    loaded = load_v1_checkpoint(tmp_path / "bare.pt")
    assert loaded.weights_hash() == load_v1_checkpoint(save_v1(model, tmp_path / "full.pt")).weights_hash()


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


def test_incompatible_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "missing.pt")
    one_line(exc)
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "junk.pt")
    one_line(exc)

    class Evil:  # unpickling this would run code; weights_only refuses it
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model.g_a.0.weight": Evil()}))
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "evil.pt")
    one_line(exc)

    torch.save({"model.foo.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "other.pt")
    assert "no checkpoint kind" in one_line(exc)

    state = {f"model.{k}": v for k, v in make("tec-fp", 12).state_dict().items()}
    missing = dict(state)
    del missing["model.g_s.2.weight"]
    torch.save(missing, tmp_path / "missing_key.pt")
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "missing_key.pt")
    assert "g_s.2.weight" in one_line(exc)

    bad_shape = dict(state)
    bad_shape["model.g_s.2.weight"] = torch.zeros(3, 3, 5, 5)
    torch.save(bad_shape, tmp_path / "bad_shape.pt")
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "bad_shape.pt")
    one_line(exc)

    mixed = dict(state)
    mixed["model.g_s.6.weight"] = torch.zeros(16, 5, 5, 5)  # decoder gives 5 bands, encoder takes 12
    torch.save(mixed, tmp_path / "mixed.pt")
    with pytest.raises(ModelError) as exc:
        load_v1_checkpoint(tmp_path / "mixed.pt")
    one_line(exc)


@pytest.mark.reference
def test_reference_fixture_checkpoints_are_recognised() -> None:
    fp = infer_v1_config(read_v1_state_dict(FIXTURES / "fp.pt"))
    elic = infer_v1_config(read_v1_state_dict(FIXTURES / "elic.pt"))
    assert fp == {"arch": "tec-fp", "bands": 12, "N": 24, "M": 32}
    assert elic == {
        "arch": "tec-elic", "bands": 12, "N": 32, "M": 160, "groups": [16, 16, 32, 64, 32],
        "context_widths": [224, 128], "aggregation_width": 512,
    }


@pytest.mark.parametrize("arch, name", [("tec-fp", "tec-fp-v1"), ("tec-elic", "tec-elic-v1")])
def test_a_published_checkpoint_alone_picks_its_model(tmp_path: Path, arch: str, name: str) -> None:
    """`--weights FILE.pt` without `--model`: the kind, sizes and bands come from the file (a
    12-band L2A checkpoint codes 12-band L2A input, not the 13-band default model), the stream
    records the kind's zoo name, `tec info` names it, and decoding needs only the file again."""
    import numpy as np
    from click.testing import CliRunner

    import terracodec
    from terracodec.bands import S2_L2A_BANDS
    from terracodec.cli.main import main

    path = save_v1(make(arch, 12), tmp_path / "TerraCodec_v1_S2L2A.pt")
    x = np.clip(np.random.default_rng(1).normal(1500, 300, (12, 128, 128)), 1, 9000).astype(np.uint16)
    stream = terracodec.encode(x, weights=path, band_names=list(S2_L2A_BANDS), baseline_offset=False)
    info = terracodec.info(stream)
    assert info["model"] == name and "TerraCodec v1" in info["model_description"]
    assert info["normalization"] == "ssl4eo-s12-l2a-no-offset"  # the reference README's statistics
    assert terracodec.decode(stream, weights=path).pixels.shape == (1, 12, 128, 128)
    (tmp_path / "s.tec").write_bytes(stream)
    result = CliRunner().invoke(main, ["info", str(tmp_path / "s.tec")])
    assert "TerraCodec v1" in result.stdout


def test_a_published_tt_checkpoint_alone_picks_tec_tt(tmp_path: Path) -> None:
    import terracodec
    from terracodec.zoo import checkpoint_model_name

    pt = Path(__file__).resolve().parent / "fixtures" / "reference_tt" / "tt.pt"
    assert checkpoint_model_name(pt) == "tec-tt"
    from safetensors.torch import load_file

    dn = load_file(str(pt.parent / "data.safetensors"))["dn"].numpy()[:2]
    stream = terracodec.encode(dn, weights=pt, tile_size=128, baseline_offset=False)
    assert terracodec.info(stream)["model"] == "tec-tt" and terracodec.info(stream)["kind"] == "temporal"
