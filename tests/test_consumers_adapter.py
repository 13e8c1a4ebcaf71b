"""The latent adapter (TerraFM from a stream's latents): real streams of the bundled L1C sample,
a real (random-weight) TerraFM-B, a short distillation that must lower its loss."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import terracodec
from terracodec.cli.errors import ErrorHandlingGroup
from terracodec.cli.train_adapter import train_adapter_command
from terracodec.consumers.adapter import (
    check_adapter, latent_tokens, load_adapter, new_adapter, save_adapter, terrafm_identity)
from terracodec.consumers.distill import DistillConfig, loss_terms, make_pairs, train
from terracodec.consumers.terrafm import TerraFM, TerraFMSize, build_terrafm, init_random
from terracodec.consumers.windows import run_windows
from terracodec.errors import InputError, ModelError

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
MODEL = "tec-fp-s2l1c"


@pytest.fixture(scope="module")
def terrafm():
    return build_terrafm("b", seed=0)


@pytest.fixture(scope="module")
def pairs(terrafm):
    cfg = DistillConfig(crop=96, crop_min=64, crops_per_input=2, qualities=(1, 5))
    return make_pairs([str(f) for f in SAMPLE[:2]], MODEL, terrafm, cfg)


def _adapter(pairs, terrafm, seed: int = 0):
    _, info, modality = pairs
    torch.manual_seed(seed)
    return new_adapter(encoder="terrafm-b", terrafm_weights=terrafm_identity(None, 0), modality=modality,
                       codec_model=info["model"], codec_weights_hash=info["weights_hash"],
                       latent_channels=96, dim=terrafm.dim, width=32)


def _pair_loss(adapter, pairs) -> float:
    with torch.no_grad():
        mse = [loss_terms(adapter(p.latents[None]), p.target.flatten(1).T[None], p.valid.flatten()[None])[0]
               for p in pairs]
    return float(torch.stack(mse).mean())


def test_pairs_are_the_pixel_paths_embedded_patches(pairs, terrafm):
    found, info, modality = pairs
    assert modality == "s2_l1c" and info["model"] == MODEL and len(found) == 4
    assert {p.quality for p in found} <= {1, 5}
    for p in found:
        assert p.latents.shape[0] == 96 and p.target.shape[0] == 768
        assert p.latents.shape[1:] == p.target.shape[1:] == p.valid.shape
        assert 4 <= p.latents.shape[1] <= 6 and bool(p.valid.all())


def test_training_lowers_the_loss(pairs, terrafm):
    found = pairs[0]
    adapter = _adapter(pairs, terrafm)
    before = _pair_loss(adapter, found)
    history = train(adapter, found, DistillConfig(steps=40, batch_size=4, lr=3e-3), log_every=10)
    after = _pair_loss(adapter, found)
    assert after < 0.5 * before, (before, after)
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]


def test_save_load_round_trip(tmp_path, pairs, terrafm):
    adapter = _adapter(pairs, terrafm, seed=3).eval()
    adapter.latent_scale.fill_(0.5)
    weights, config = save_adapter(adapter, tmp_path / "a")
    assert (weights.name, config.name) == ("a.safetensors", "a.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.safetensors"]  # no temporary left
    assert weights.stat().st_mode == config.stat().st_mode  # both 0666 less the umask
    loaded = load_adapter(tmp_path / "a.safetensors")
    assert loaded.config == adapter.config
    y = pairs[0][0].latents[None]
    with torch.no_grad():
        assert torch.equal(loaded(y), adapter(y))
    with pytest.raises(InputError, match="exists"):
        save_adapter(adapter, tmp_path / "a")
    save_adapter(adapter, tmp_path / "a", overwrite=True)


def test_bad_files_are_one_line_model_errors(tmp_path, pairs, terrafm):
    save_adapter(_adapter(pairs, terrafm), tmp_path / "a")
    record = json.loads((tmp_path / "a.json").read_text())
    cases = {"missing": None, "not json": "{", "other arch": dict(record, config={"arch": "tec-fp"}),
             "bad width": dict(record, config=dict(record["config"], width="wide"))}
    for text in cases.values():
        (tmp_path / "a.json").unlink(missing_ok=True)
        if text is not None:
            (tmp_path / "a.json").write_text(text if isinstance(text, str) else json.dumps(text))
        with pytest.raises(ModelError) as err:
            load_adapter(tmp_path / "a")
        assert "\n" not in str(err.value)
    (tmp_path / "a.json").write_text(json.dumps(record))
    (tmp_path / "a.safetensors").write_bytes(b"truncated")
    with pytest.raises(ModelError, match="unreadable weights"):
        load_adapter(tmp_path / "a")


def test_mismatches_are_refused(pairs, terrafm):
    _, info, _ = pairs
    adapter = _adapter(pairs, terrafm)
    check_adapter(adapter, info, "random seed 0", encoder="terrafm-b")
    wrong = {"codec model": (dict(info, model="tec-fp-s2l2a"), "random seed 0", None),
             "codec weights": (dict(info, weights_hash="0" * 64), "random seed 0", None),
             "terrafm weights": (info, "random seed 1", None),
             "terrafm checkpoint": (info, "sha256:" + "1" * 64, None),
             "terrafm size": (info, "random seed 0", "terrafm-l")}
    for stream_info, identity, encoder in wrong.values():
        with pytest.raises(ModelError) as err:
            check_adapter(adapter, stream_info, identity, encoder=encoder)
        assert "\n" not in str(err.value)


def test_latent_tokens_shape_and_nan_cells(pairs, terrafm):
    adapter = _adapter(pairs, terrafm).eval()
    y = pairs[0][0].latents.numpy().copy()
    tokens = latent_tokens(adapter, terrafm, y)
    assert tokens.shape == (768, *y.shape[1:]) and tokens.dtype == np.float32 and np.isfinite(tokens).all()
    y[:, 1, 2] = np.nan
    holed = latent_tokens(adapter, terrafm, y)
    assert np.isnan(holed[:, 1, 2]).all()
    assert np.isfinite(np.delete(holed.reshape(768, -1), 1 * y.shape[2] + 2, axis=1)).all()
    with pytest.raises(InputError):
        latent_tokens(adapter, terrafm, y[:10])


class _PixelCells(torch.nn.Module):
    """An exact 'adapter': latents that are a cell's 12 x 16 x 16 pixels, embedded by TerraFM."""

    def __init__(self, terrafm) -> None:
        super().__init__()
        self.terrafm, self.latent_channels, self.dim = terrafm, 12 * 256, terrafm.dim

    def forward(self, y):
        b, _, h, w = y.shape
        x = y.reshape(b, 12, 16, 16, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, 12, 16 * h, 16 * w)
        return self.terrafm.patch_embed(x, "s2_l1c")


def test_latent_path_runs_the_pixel_paths_windows():
    """With an exact adapter, the latent path equals `tec embed`'s windowed pixel path (a narrow,
    shallow TerraFM: the windows do not depend on its size)."""
    terrafm = TerraFM(TerraFMSize("terrafm-tiny", 48, 2, 3))
    init_random(terrafm, 0)
    terrafm.eval()
    x = torch.rand(1, 12, 224, 208, generator=torch.Generator().manual_seed(0)) * 0.3
    cells = x.reshape(12, 14, 16, 13, 16).permute(0, 2, 4, 1, 3).reshape(12 * 256, 14, 13)
    got = latent_tokens(_PixelCells(terrafm), terrafm, cells.numpy(), window=160)
    with torch.no_grad():
        want = run_windows(lambda t: terrafm.patch_tokens(t, "s2_l1c"), x, window=160)[0].numpy()
    assert got.shape == want.shape == (48, 14, 13)
    assert float(np.abs(got - want).max()) < 1e-4


@click.group(cls=ErrorHandlingGroup)
def _tec() -> None:
    """`tec` with only this command (cli/main.py registers it)."""


_tec.add_command(train_adapter_command)


def _cli(*args: str):
    return CliRunner().invoke(_tec, ["train-adapter", *args])


def test_cli_trains_and_writes_atomically(tmp_path):
    out = tmp_path / "ad"
    args = [str(SAMPLE[0]), "--model", MODEL, "--seed", "0", "--quality", "2", "--steps", "3", "--crop", "64",
            "--crops-per-input", "1", "-o", str(out), "-q"]
    result = _cli(*args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad.json", "ad.safetensors"]
    assert load_adapter(out).config["training"]["qualities"] == [2]
    again = _cli(*args)
    assert again.exit_code == 1 and "exists" in again.output and len(again.output.strip().splitlines()) == 1
    both = _cli(*args[:-3], "--weights", "w.pt", "-o", str(tmp_path / "b"))
    assert both.exit_code == 1 and "not both" in both.output
    quality = _cli(*args[:-3], "--quality", "9", "-o", str(tmp_path / "c"))
    assert quality.exit_code == 1 and "no quality 9" in quality.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ad.json", "ad.safetensors"]
