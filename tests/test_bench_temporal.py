"""Temporal models (TEC-TT) in `tec bench`: multi-date inputs coded as a series through the API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import terracodec
from _rasters import copy_raster
from _tinytt import tiny_tt, one_thread  # noqa: F401  (autouse fixture)
from terracodec.bench import Sample, make_codecs, run_benchmark
from terracodec.bench.learned import TerracodecModel
from terracodec.bench.metrics import PEAK_10K, psnr
from terracodec.bench.registry import assign_weights, unavailable_codecs
from terracodec.bands import S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.errors import InputError
from terracodec import zoo as registry
from terracodec.normalization import Normalization

TT_V1 = Path(__file__).parent / "fixtures" / "reference_tt" / "tt.pt"  # tiny v1 checkpoint, 12 bands
L2A = list(S2_L2A_BANDS)


def _tec(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _tiny_weights(path: Path, seed: int, bands: list[str] = L2A, **overrides) -> Path:
    """A tiny random TEC-TT saved in our format (config with normalisation and band names)."""
    model = tiny_tt(seed=seed, bands=len(bands), **overrides)
    model.config.update(band_names=bands, normalization=Normalization(
        (1500.0,) * len(bands), (1000.0,) * len(bands), "test").to_config())
    model.save_pretrained(str(path))
    return path.with_suffix(".safetensors")


@pytest.fixture(scope="module")
def series_dir(shared_data, tmp_path_factory) -> Path:
    """Two dates of one 64 x 64 place, 12 L2A bands: the second with a changed patch."""
    src = shared_data / "terramind_examples" / "S2L2A" / "282D_485L_3_3.tif"
    folder = tmp_path_factory.mktemp("series")

    def change(px: np.ndarray) -> None:
        px[:, 16:40, 20:48] = (px[:, 16:40, 20:48] * 0.7).astype(px.dtype)

    copy_raster(src, folder / "t1.tif", rows=64, cols=64)
    copy_raster(src, folder / "t2.tif", rows=64, cols=64, edit=change)
    return folder


def _series(series_dir: Path) -> Sample:
    from terracodec.bench import load_inputs

    (sample,) = load_inputs([series_dir], series=True)
    return sample


def test_list_names_temporal_models_with_the_reason(tmp_path):
    needy = [n for n, e in registry.MODELS.items() if e.get("requires_weights")]
    assert "tec-tt" in needy  # the v1 TEC-TT entry: its published weights are not shipped here
    r = _tec("bench", "--list")
    assert r.exit_code == 0, r.output
    lines = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.strip()}
    assert set(lines) >= {m["name"] for m in terracodec.api.models()}
    for name in needy:
        assert "unavailable" in lines[name] and "--weights" in lines[name]
    r = _tec("bench", "--list", "--codecs", "tec-tt", "--weights", TT_V1)
    lines = {ln.split()[0]: ln for ln in r.output.splitlines() if ln.strip()}
    assert r.exit_code == 0 and lines["tec-tt"].split()[1] == "available"
    assert all("unavailable" in lines[n] for n in needy if n != "tec-tt")
    assert "tec-tt" in unavailable_codecs() and "tec-tt" not in unavailable_codecs(
        {"tec-tt": {None: TT_V1}})


def test_bench_cli_codes_the_dates_as_one_temporal_series(series_dir, tmp_path):
    tiny = _tiny_weights(tmp_path / "tiny", seed=3)
    out = tmp_path / "out"
    r = _tec("bench", series_dir, "--series", "--codecs", "jpeg2000,tec-tt", "--out", out, "-q",
             "--no-ms-ssim", "--qualities", "jpeg2000=50,60",
             "--weights", f"tec-tt@1={TT_V1}", "--weights", f"tec-tt@2={tiny}")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["samples"][0]["shape"] == [2, 12, 64, 64]
    tt = {p["quality"]: p for p in res["points"] if p["codec"] == "tec-tt"}
    assert sorted(tt) == [1, 2]
    settings = res["codecs"]["tec-tt"]["settings"]
    assert settings["kind"] == "temporal" and settings["weights"] == {"1": str(TT_V1), "2": str(tiny)}
    rows = {r["quality"]: r for r in res["per_sample"] if r["codec"] == "tec-tt"}

    # Each point is what the public API gives for the same series, weights and quality.
    x = _series(series_dir).pixels
    for quality, weights in ((1, TT_V1), (2, tiny)):
        stream = terracodec.encode(x, model="tec-tt", quality=quality, weights=weights, band_names=L2A)
        y = np.asarray(terracodec.decode(stream, weights=weights))
        row = rows[quality]
        assert row["bytes"] == len(stream) == tt[quality]["bytes"]
        assert row["frame_bytes"] == [f["bytes"] for f in terracodec.info(stream)["frame_info"]]
        assert sum(row["frame_bytes"]) == row["payload_bytes"] < row["bytes"]
        assert row["frame_psnr10k"] == pytest.approx([psnr(x[t], y[t], PEAK_10K) for t in range(2)])
        assert tt[quality]["bpppb"] == pytest.approx(8 * len(stream) / x.size)


def test_temporal_codec_conditions_each_date_on_the_previous_ones(series_dir, tmp_path):
    """The first date is coded alone; the second is predicted from the first, so coding it in
    the series gives another stream and reconstruction than coding it on its own."""
    weights = _tiny_weights(tmp_path / "tiny", seed=5)
    (codec,), _ = make_codecs(["tec-tt"], weights={"tec-tt": {None: weights}})
    assert codec.default_qualities() == [4]  # one fixed-rate file: the registry's default quality
    x = _series(series_dir).pixels
    codec.band_names = L2A
    series = codec.encode(x, 4)
    first, second = codec.encode(x[:1], 4), codec.encode(x[1:], 4)
    y = codec.decode(series)
    assert np.array_equal(y[0], codec.decode(first)[0])
    assert codec.frame_bytes(series)[0] == codec.frame_bytes(first)[0]
    alone = codec.decode(second)[0]
    assert not np.array_equal(y[1], alone)
    from terracodec.container import ContainerReader

    with ContainerReader(series) as a, ContainerReader(second) as b:
        assert a.read_tile(1, 0).code != b.read_tile(0, 0).code


def test_a_registered_temporal_model_runs_by_name(series_dir, tmp_path, monkeypatch):
    """A temporal model with shipped weights (as `tec-tt-small` will be) needs no --weights;
    each quality loads its own file."""
    for q, seed in ((1, 11), (2, 12)):
        _tiny_weights(tmp_path / f"tt-q{q}", seed=seed, gain=6.0 * q)
    import terracodec.zoo.loading as loading

    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(registry.MODELS, "tec-tt-benchtest", {
        "kind": "temporal", "config": {"arch": "tec-tt", "bands": 12},
        "normalization": "ssl4eo-s12-l2a", "weights": {1: "tt-q1", 2: "tt-q2"},
        "trained": False, "description": "test",
    })
    assert "tec-tt-benchtest" not in unavailable_codecs()
    codecs, _ = make_codecs(["jpeg2000", "tec-tt-benchtest"])
    sample = _series(series_dir)
    result = run_benchmark([sample], codecs, {"jpeg2000": [55]}, with_ms_ssim=False)
    assert not result["skipped"]
    pts = [p for p in result["points"] if p["codec"] == "tec-tt-benchtest"]
    assert [p["quality"] for p in pts] == [1, 2] and pts[0]["bytes"] != pts[1]["bytes"]
    assert all(p["frames"] == 2 and np.isfinite(p["psnr10k"]) for p in pts)
    # 13-band input: refused before coding, with the reason
    x13 = np.concatenate([sample.pixels, sample.pixels[:, :1]], axis=1)
    skipped = run_benchmark([Sample("x13", x13)], codecs[1:], with_ms_ssim=False)["skipped"]
    assert "12 bands" in skipped["tec-tt-benchtest"]


@pytest.mark.parametrize("extra, message", [
    (["--codecs", "jpeg2000,tec-tt"], "tec-tt cannot run here: ships no weights"),
    (["--codecs", "jpeg2000,tec-tt", "--weights", "/no/such.pt"], "no such weights file"),
    (["--codecs", "jpeg2000,tec-tt,tec-tt-l1c", "--weights", str(TT_V1)], "exactly one terracodec model"),
    (["--codecs", "jpeg2000,tec-tt", "--weights", f"tec-tt@9={TT_V1}"], "no quality 9"),
    (["--codecs", "jpeg2000,tec-tt", "--weights", f"tec-tt@1={TT_V1}", "--weights", f"tec-tt@1={TT_V1}"],
     "two files for tec-tt quality 1"),
])
def test_temporal_bench_errors_are_one_line(tmp_path, extra, message):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(500, 3000, (2, 12, 64, 64)).astype(np.uint16))
    out = tmp_path / "out"
    r = _tec("bench", tmp_path / "x.npy", "--out", out, "--bands", "L2A", *extra)
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], r.output
    assert not out.exists()


def test_weights_items_are_assigned_to_models():
    spec = [("tec-tt", 1, str(TT_V1)), (None, None, str(TT_V1))]
    with pytest.raises(InputError, match="exactly one"):
        assign_weights(spec, ["jpeg2000"])
    got = assign_weights(spec, ["jpeg2000", "tec-fp-tiny", "tec-tt-l1c"])  # the one without weights
    assert got == {"tec-tt": {1: TT_V1}, "tec-tt-l1c": {None: TT_V1}}
    with pytest.raises(InputError, match="exactly one"):
        assign_weights(spec[1:], ["tec-tt", "tec-tt-l1c"])
    assert TerracodecModel(registry.list_models()[0] | {"requires_weights": True}).missing_weights()
