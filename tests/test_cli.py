"""The `tec` command line: round trips, partial decode, info/models, and every error path.

Plumbing tests run the CLI in-process (click's CliRunner) with the toy codec standing in for a
registry model; the real registry model gets its own round trip, and one test runs the
installed `tec` entry point in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _rasters import copy_raster
from _toycodec import ToyCodec
from click.testing import CliRunner

import terracodec
from terracodec import api
from terracodec.api import resolve
from terracodec.cli.main import main


@pytest.fixture()
def toy(monkeypatch):
    """Make `--model toy` load the toy codec (other names go to the real registry)."""
    real = resolve._load_named

    def load(name, quality, weights, device="cpu"):
        return ToyCodec() if name == "toy" else real(name, quality, weights, device)

    monkeypatch.setattr(resolve, "_load_named", load)


def tec(*args: str):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def assert_one_line_error(result, pattern: str | None = None):
    assert result.exit_code != 0, result.output
    err = result.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    if pattern:
        assert pattern in err, err


@pytest.fixture()
def pair(shared_data, tmp_path):
    """Two dates of real OSCD 10 m bands, cropped small, with a nodata corner (nodata 0)."""
    city = shared_data / "oscd_s2_l1c" / "paris"

    def hole(px):
        px[:, :9, :13] = 0

    return [
        copy_raster(city / "img1_10m.tif", tmp_path / "img1_10m.tif", rows=100, cols=90, nodata=0, edit=hole),
        copy_raster(city / "img2_10m.tif", tmp_path / "img2_10m.tif", rows=100, cols=90, nodata=0),
    ]


def test_round_trip_and_info(toy, pair, tmp_path):
    r = tec("encode", *pair, "-o", tmp_path / "s.tec", "--model", "toy", "--tile-size", "64")
    assert r.exit_code == 0, r.output
    assert "wrote" in r.stdout and "bpppb" in r.stdout
    r = tec("decode", tmp_path / "s.tec", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    for src in pair:
        with rasterio.open(src) as a, rasterio.open(tmp_path / "out" / src.name) as b:
            pa, pb = a.read(), b.read()
            assert pb.shape == pa.shape and pb.dtype == pa.dtype
            assert (a.crs, a.transform, a.nodata, a.descriptions) == (b.crs, b.transform, b.nodata, b.descriptions)
            assert a.tags() == b.tags()
            np.testing.assert_array_equal(pb[pa == 0], 0)
            assert np.abs(pb.astype(int) - pa).max() <= 11
    d = json.loads(tec("info", tmp_path / "s.tec", "--json").stdout)
    assert (d["frames"], d["height"], d["width"], d["bands"], d["dtype"]) == (2, 100, 90, 4, "uint16")
    assert d["model"] == "toy" and d["quality"] == 0.02 and d["epsg"] == 4326
    assert d["bytes"] == (tmp_path / "s.tec").stat().st_size
    assert d["bpppb"] == pytest.approx(8 * d["bytes"] / (2 * 100 * 90 * 4))
    assert [f["timestamp"] for f in d["frame_info"]] == ["2016-11-30", "2017-11-07"]
    assert sum(f["bytes"] for f in d["frame_info"]) < d["bytes"]
    text = tec("info", tmp_path / "s.tec").stdout
    assert "EPSG:4326" in text and "img2_10m.tif" in text and "bits per pixel per band" in text


def test_partial_decode_to_single_cog(toy, pair, tmp_path):
    tec("encode", *pair, "-o", tmp_path / "s.tec", "--model", "toy", "--tile-size", "64")
    full = api.decode(tmp_path / "s.tec").pixels
    r = tec("decode", tmp_path / "s.tec", "-o", tmp_path / "w.tif", "--frames", "1",
            "--window", "10,20,50,70", "--cog")
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "w.tif") as ds:
        np.testing.assert_array_equal(ds.read(), full[1, :, 20:90, 10:60])
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        with rasterio.open(pair[1]) as src:
            assert ds.transform == src.window_transform(((20, 90), (10, 60)))


def test_every_corruption_fails_cleanly(toy, pair, tmp_path):
    """Flip bytes everywhere in the header/index and through the payload; cut the file short."""
    good = tmp_path / "s.tec"
    tec("encode", *pair, "-o", good, "--model", "toy", "--tile-size", "64")
    data = good.read_bytes()
    assert int.from_bytes(data[8:10], "little") == 7  # the compact layout, image payloads chained
    header_len = int.from_bytes(data[12:16], "little")
    head_end = 20 + header_len
    index_start = len(data) - 16 - int.from_bytes(data[-16:-12], "little")
    positions = (list(range(head_end)) + list(range(index_start, len(data)))
                 + list(range(head_end, index_start, max(1, (index_start - head_end) // 150))))
    bad, out = tmp_path / "bad.tec", tmp_path / "out"
    runner = CliRunner()
    for pos in positions:
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x5A
        bad.write_bytes(corrupt)
        r = runner.invoke(main, ["decode", str(bad), "-o", str(out)], catch_exceptions=False)
        assert_one_line_error(r)
        assert r.exit_code == 1 and not out.exists(), pos
    for cut in [0, 5, 19, 20 + header_len // 2, head_end - 1, head_end + 10, len(data) // 2, len(data) - 1]:
        bad.write_bytes(data[:cut])
        r = runner.invoke(main, ["decode", str(bad), "-o", str(out / "x.tif"), "--frames", "0"])
        assert_one_line_error(r)
        assert not out.exists()
    r = runner.invoke(main, ["decode", str(good), "-o", str(out)])
    assert r.exit_code == 0  # the original is still fine


def test_input_errors(toy, pair, tmp_path):
    out = tmp_path / "x.tec"
    assert_one_line_error(tec("encode", tmp_path / "missing.tif", "-o", out, "--model", "toy"), "no such file")
    (tmp_path / "text.tif").write_text("not an image")
    assert_one_line_error(tec("encode", tmp_path / "text.tif", "-o", out, "--model", "toy"), "not a raster")
    other = copy_raster(pair[1], tmp_path / "smaller.tif", rows=80, cols=90)
    assert_one_line_error(tec("encode", pair[0], other, "-o", out, "--model", "toy"), "different grids")
    with rasterio.open(tmp_path / "c.tif", "w", driver="GTiff", height=4, width=4, count=4,
                       dtype="complex64") as ds:
        ds.write(np.ones((4, 4, 4), np.complex64))
    assert_one_line_error(tec("encode", tmp_path / "c.tif", "-o", out, "--model", "toy"), "unsupported data type")
    assert_one_line_error(tec("encode", *pair, "-o", tmp_path / "text.tif" / "x.tec", "--model", "toy"),
                          "not a directory")
    assert_one_line_error(tec("encode", *pair, "-o", tmp_path, "--model", "toy"), "cannot write")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif", "img1_10m.tif", "img2_10m.tif", "smaller.tif", "text.tif"]


def test_decode_errors(toy, pair, tmp_path):
    tec("encode", *pair, "-o", tmp_path / "s.tec", "--model", "toy")
    assert_one_line_error(tec("decode", tmp_path / "none.tec", "-o", tmp_path / "o"), "no such file")
    assert_one_line_error(tec("decode", pair[0], "-o", tmp_path / "o"), "not a .tec file")
    assert_one_line_error(tec("decode", tmp_path / "s.tec", "-o", tmp_path / "o.tif"), "one frame")
    assert_one_line_error(tec("decode", tmp_path / "s.tec", "-o", tmp_path / "o", "--frames", "5"), "outside")
    assert_one_line_error(tec("decode", tmp_path / "s.tec", "-o", tmp_path / "o", "--window", "1,2,3"), "--window")
    assert_one_line_error(tec("decode", tmp_path / "s.tec", "-o", tmp_path / "o", "--window", "0,0,91,10"), "outside")
    assert_one_line_error(tec("decode", tmp_path / "s.tec", "-o", pair[0] / "sub"), "cannot")
    assert_one_line_error(tec("decode", tmp_path / "s.tec", "-o", tmp_path / "o", "--device", "nope"), "device")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.tif").exists()


# ----------------------------------------------------------------------------- real registry


def _registry():
    return pytest.importorskip("terracodec.zoo")


def test_models_lists_names_qualities_bands_kind():
    _registry()
    r = tec("models", "--json")
    assert r.exit_code == 0, r.output
    table = json.loads(r.stdout)
    names = [m["name"] for m in table]
    assert "tec-fp-tiny" in names
    for m in table:
        assert m["qualities"] and m["kind"] in ("image", "temporal")
        assert isinstance(m["bands"], int) or (m["bands"] is None and m["requires_weights"])  # any
    assert "tec-fp-tiny" in tec("models").stdout


def test_unknown_model_and_quality(pair, tmp_path):
    _registry()
    sample = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
    out = tmp_path / "x.tec"
    assert_one_line_error(tec("encode", *sample, "-o", out, "--model", "no-such-model"), "no-such-model")
    assert_one_line_error(tec("encode", *sample, "-o", out, "--model", "tec-fp-tiny", "--quality", "12345"))
    assert_one_line_error(tec("encode", *sample, "-o", out, "--weights", tmp_path / "none.safetensors"))
    assert not out.exists()


def test_real_model_round_trip_of_bundled_series(tmp_path):
    """The bundled 5-date, 13-band L1C series through the registry's tiny model.

    Two frames get a no-data swath edge and saturated pixels, which must come back exactly.
    """
    _registry()
    sample = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
    assert len(sample) == 5

    def swath(px):
        px[:, :30, :20] = 0
        px[4, 50:53, 60:70] = 65535

    inputs = [copy_raster(p, tmp_path / p.name, rows=101, cols=100, edit=swath if i in (1, 3) else None)
              for i, p in enumerate(sample)]
    r = tec("encode", *inputs, "-o", tmp_path / "s.tec", "--model", "tec-fp-tiny", "--tile-size", "64")
    assert r.exit_code == 0, r.output
    r = tec("decode", tmp_path / "s.tec", "-o", tmp_path / "out")
    assert r.exit_code == 0, r.output
    for src in inputs:
        with rasterio.open(src) as a, rasterio.open(tmp_path / "out" / src.name) as b:
            assert (a.count, a.height, a.width, a.dtypes) == (b.count, b.height, b.width, b.dtypes)
            assert (a.crs, a.transform, a.nodata, a.descriptions) == (b.crs, b.transform, b.nodata, b.descriptions)
            assert a.tags() == b.tags()
            pa, pb = a.read(), b.read()
            exact = (pa == 0) | (pa == 65535)
            np.testing.assert_array_equal(pb[exact], pa[exact])
            assert not (pb[~exact] == 0).any() and pb[~exact].max() <= 32767
    with rasterio.open(tmp_path / "out" / inputs[1].name) as ds:
        assert (ds.read() == 0).sum() == 13 * 30 * 20
    d = json.loads(tec("info", tmp_path / "s.tec", "--json").stdout)
    assert d["model"] == "tec-fp-tiny" and d["frames"] == 5 and d["bands"] == 13
    assert d["band_names"][8] == "B8A"
    assert [f["timestamp"] for f in d["frame_info"]] == sorted(f["timestamp"] for f in d["frame_info"])


def test_installed_entry_point_runs(tmp_path):
    exe = shutil.which("tec") or str(Path(sys.executable).parent / "tec")
    if not os.path.exists(exe):
        pytest.skip("the tec entry point is not installed")
    ok = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "0.1.0" in ok.stdout
    bad = subprocess.run([exe, "encode", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "x.tec")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("error: no such file") and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.tec").exists()
