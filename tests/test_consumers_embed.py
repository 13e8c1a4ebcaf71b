"""`tec embed` with TerraFM: real streams in, georeferenced embeddings out, equal to the public
TerraFM code run on the decoded frames (fixtures: tests/fixtures/make_terrafm_*.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

import terracodec
from terracodec.cli.main import main
from terracodec.consumers.terrafm import SIZES, TerraFM, build_terrafm
from terracodec.consumers.windows import run_windows

FIXTURES = Path(__file__).parent / "fixtures"
TERRAFM = FIXTURES / "terrafm"
SAMPLE = Path(terracodec.__file__).parent / "data" / "sample"


def _fixture_module():
    spec = importlib.util.spec_from_file_location("make_terrafm_fixtures", FIXTURES / "make_terrafm_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """The fixtures' seeded TerraFM-B weights as a user's checkpoint file."""
    shapes = {k: tuple(v.shape) for k, v in TerraFM(SIZES["b"]).state_dict().items()}
    seed = json.loads((TERRAFM / "meta.json").read_text())["seed"]
    path = tmp_path_factory.mktemp("w") / "TerraFM-B.safetensors"
    save_file(_fixture_module().seeded_state(shapes, seed), str(path))
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_real_l2a_stream_matches_the_public_code(tmp_path, weights):
    stream = TERRAFM / "l2a_sample.tec"
    decoded = terracodec.decode(str(stream))
    stored = load_file(str(TERRAFM / "l2a_sample_decoded.safetensors"))["decoded_dn"].numpy()
    assert np.array_equal(decoded.pixels.astype(np.float32), stored)  # the fixture's input is still ours
    code, out = _run("embed", str(stream), "-o", str(tmp_path / "emb"), "--weights", str(weights))
    assert code == 0, out
    (path,) = sorted((tmp_path / "emb").glob("*.tif"))
    expected = load_file(str(TERRAFM / "tensors.safetensors"))["output.sample_tokens"][0].numpy()
    with rasterio.open(path) as ds:
        tokens = ds.read()
        assert ds.count == 768 and ds.dtypes[0] == "float32"
        assert ds.transform == decoded.transform * Affine.scale(16)
        assert ds.crs.to_wkt() == rasterio.crs.CRS.from_wkt(decoded.crs).to_wkt()
        assert ds.tags()["MODALITY"] == "s2_l2a" and ds.descriptions[0] == "terrafm-b_0000"
    assert tokens.shape == expected.shape == (768, 6, 5)
    assert float(np.abs(tokens - expected).max()) < 1e-3


def test_l1c_stream_drops_b10_and_uses_the_l1c_embedding(tmp_path):
    frames = sorted(SAMPLE.glob("*.tif"))[:2]
    stream = tmp_path / "s.tec"
    terracodec.encode([str(f) for f in frames], str(stream), model="tec-fp-s2l1c")
    code, out = _run("embed", str(stream), "-o", str(tmp_path / "emb"), "--frames", "1", "--seed", "3")
    assert code == 0, out
    (path,) = sorted((tmp_path / "emb").glob("*.tif"))
    assert path.name == f"{frames[1].stem}.terrafm-b.tif"
    pixels = terracodec.decode(str(stream), frames=[1]).pixels[0].astype(np.float64)
    x = torch.from_numpy(np.delete(pixels, 10, axis=0) / 10000.0).float()[None]  # B10 is band 10
    x = torch.nn.functional.pad(x, (0, 12, 0, 11), mode="replicate")  # 101 x 100 -> 112 x 112
    with torch.no_grad():
        expected = build_terrafm("b", seed=3).patch_tokens(x, "s2_l1c")[0].numpy()
    with rasterio.open(path) as ds:
        got = ds.read()
        assert ds.tags()["MODALITY"] == "s2_l1c" and ds.tags()["WEIGHTS"].startswith("random")
    assert got.shape == (768, 7, 7)
    assert float(np.abs(got - expected).max()) < 1e-4


def test_windows_stitch_a_local_function_exactly():
    """A function that only looks inside each 16-px cell gives the same tokens in windows as in
    one pass, so any misplaced window shows."""
    x = torch.rand(1, 3, 400, 290)

    def cellwise(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(t, 16) * torch.arange(1, 4).view(1, 3, 1, 1)

    whole = run_windows(cellwise, x, window=1024)
    assert whole.shape == (1, 3, 25, 19)
    for window, margin in ((128, 32), (96, 16), (64, 16)):
        assert torch.equal(run_windows(cellwise, x, window=window, margin=margin), whole)


def test_windows_give_each_token_its_margin_of_context():
    seen: list[tuple[int, int]] = []

    def record(t: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(t.shape[-2:]))
        return t[:, :1, ::16, ::16]

    run_windows(record, torch.zeros(1, 1, 1040, 512), window=512, margin=64)
    assert seen == [(512, 512)] * 3  # rows start at 0, 384, 528


def test_refusals_write_nothing(tmp_path, weights):
    frames = sorted(SAMPLE.glob("*.tif"))[:2]
    stream = tmp_path / "s.tec"
    terracodec.encode([str(f) for f in frames], str(stream), model="tec-fp-s2l1c")
    (tmp_path / "s.tec.tif").write_bytes(b"someone's file")
    cases = [
        (["-o", str(tmp_path / "one.tif")], "can hold one frame"),
        (["-o", str(tmp_path / "d"), "--weights", str(tmp_path / "none.pt")], "no such checkpoint"),
        (["-o", str(tmp_path / "d"), "--frames", "5"], "outside the stream"),
        (["-o", str(stream)], "it exists and is not a directory"),
        (["-o", str(tmp_path / "s.tec.tif"), "--frames", "0"], "exists (use --overwrite"),
        (["-o", str(tmp_path / "d"), "--encoder", "terrafm-l", "--weights", str(weights)], "not terrafm-l"),
    ]
    for extra, message in cases:
        code, out = _run("embed", str(stream), *extra)
        assert code == 1 and message in out and out.count("\n") == 1, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tec", "s.tec.tif"]


def test_a_stream_without_terrafm_bands_is_refused(tmp_path):
    src = sorted(SAMPLE.glob("*.tif"))[0]
    ten = tmp_path / "ten.tif"
    with rasterio.open(src) as ds:
        keep = [i for i, d in enumerate(ds.descriptions) if d not in ("B01", "B09", "B10")]
        profile = dict(ds.profile, count=len(keep))
        with rasterio.open(ten, "w", **profile) as out:
            out.write(ds.read([i + 1 for i in keep]))
            out.descriptions = [ds.descriptions[i] for i in keep]
            out.update_tags(**ds.tags())
    stream = tmp_path / "ten.tec"
    terracodec.encode([str(ten)], str(stream), model="tec-fp-s2l2a")
    code, out = _run("embed", str(stream), "-o", str(tmp_path / "emb"))
    assert code == 1 and "lacks B01, B09" in out, out
    assert not (tmp_path / "emb").exists()


def test_latent_path_through_an_adapter(tmp_path):
    from terracodec.consumers.adapter import latent_tokens, load_adapter, new_adapter, save_adapter

    frames = sorted(SAMPLE.glob("*.tif"))[:2]
    stream = tmp_path / "s.tec"
    terracodec.encode([str(f) for f in frames], str(stream), model="tec-fp-s2l1c")
    info = terracodec.info(str(stream))
    latents = terracodec.decode_latents(str(stream), space="synthesis")
    torch.manual_seed(0)
    adapter = new_adapter(encoder="terrafm-b", terrafm_weights="random seed 5", modality="s2_l1c",
                          codec_model=info["model"], codec_weights_hash=info["weights_hash"],
                          latent_channels=latents.y_hat.shape[1], dim=768)
    save_adapter(adapter, tmp_path / "adapter")
    code, out = _run("embed", str(stream), "-o", str(tmp_path / "emb"), "--seed", "5", "--from", "latents",
                     "--adapter", str(tmp_path / "adapter.safetensors"))
    assert code == 0, out
    expected = latent_tokens(load_adapter(tmp_path / "adapter"), build_terrafm("b", seed=5), latents.y_hat[1])
    with rasterio.open(tmp_path / "emb" / f"{frames[1].stem}.terrafm-b.tif") as ds:
        assert ds.tags()["NORMALIZATION"] == "latents" and ds.transform == latents.transform
        assert np.array_equal(ds.read(), expected)
    # another TerraFM, or no adapter: refused before anything is written
    for extra, words in ((["--seed", "6", "--adapter", str(tmp_path / "adapter.safetensors")], "imitates terrafm-b"),
                         ([], "needs a TerraFM encoder and --adapter")):
        code, out = _run("embed", str(stream), "-o", str(tmp_path / "never"), "--from", "latents", *extra)
        assert code == 1 and words in out and out.count("\n") == 1, out
    assert not (tmp_path / "never").exists()
