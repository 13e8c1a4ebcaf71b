"""`tec bench`: outputs, tables, BD against the anchor, and one-line errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from terracodec.cli.main import main


def _write_tif(path, bands=("B02", "B03", "B04", "B08"), size=48, seed=0):
    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 20, (len(bands), size, size)), axis=1), axis=2)
    walk = (walk - walk.min()) / (walk.max() - walk.min())
    data = (400 + 5000 * walk).astype(np.uint16)
    with rasterio.open(path, "w", driver="GTiff", height=size, width=size, count=len(bands),
                       dtype="uint16", crs="EPSG:32632", transform=from_origin(500000, 4e6, 10, 10)) as ds:
        ds.write(data)
        for i, b in enumerate(bands, start=1):
            ds.set_band_description(i, b)
    return data


def _run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def test_bench_writes_json_csv_plots_and_bd(tmp_path):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    _write_tif(a, seed=0)
    _write_tif(b, seed=1)
    out = tmp_path / "out"
    r = _run(["bench", str(a), str(b), "--codecs", "jpeg2000,htj2k,zstd", "--out", str(out),
              "--qualities", "jpeg2000=50,60,70,80", "--qualities", "htj2k=0.008,0.002,0.0005,0.000125"])
    assert r.exit_code == 0, r.output
    assert "Bjontegaard" in r.output and "htj2k" in r.output
    for name in ("results.json", "points.csv", "per_sample.csv", "bd.csv",
                 "rd_psnr10k.png", "rd_psnr65k.png", "rd_ms_ssim_db.png", "rd_sam_deg.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "rd_psnr10k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = json.loads((out / "results.json").read_text())
    assert [s["name"] for s in res["samples"]] == ["a", "b"]
    assert res["anchor"] == "jpeg2000"
    jp = [p for p in res["points"] if p["codec"] == "jpeg2000"]
    assert [p["quality"] for p in jp] == [50, 60, 70, 80]
    assert all(p["psnr65k"] - p["psnr10k"] == pytest.approx(20 * math.log10(6.5535)) for p in jp)
    bd = {row["codec"]: row for row in res["bd"]}
    assert set(bd) == {"htj2k"}  # zstd is lossless: a single point, no BD
    assert math.isfinite(bd["htj2k"]["bd_rate_psnr10k"])
    rows = list(csv.DictReader(open(out / "points.csv")))
    assert len(rows) == 4 + 4 + 1
    assert {"psnr10k_B02", "psnr10k_B08"} <= set(rows[0])
    zstd = [row for row in rows if row["codec"] == "zstd"][0]
    assert zstd["psnr10k"] == "inf" and zstd["exact"] == "True"


def test_bench_list_shows_every_codec_and_registered_model():
    from terracodec import api

    r = _run(["bench", "--list"])
    assert r.exit_code == 0
    for name in ["jpeg2000", "jpegxl", "hevc", "av1", "zstd"] + [m["name"] for m in api.models()]:
        assert name in r.output


@pytest.mark.parametrize("extra, message", [
    (["--codecs", "jpeg2000,nope"], "unknown codec nope"),
    (["--codecs", "htj2k"], "anchor jpeg2000 is not among the codecs"),
    (["--qualities", "jpeg2000"], "--qualities takes CODEC=v1,v2"),
    (["--codecs", "jpeg2000", "--qualities", "webp=50"], "not benchmarked: webp"),
    (["--codecs", "jpeg2000", "--crop", "0"], "crop must be positive"),
    (["--codecs", "jpeg2000", "--bands", "B99"], "--bands takes"),
])
def test_bench_errors_are_one_line(tmp_path, extra, message):
    a = tmp_path / "a.tif"
    _write_tif(a, size=16)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["bench", str(a), "--out", str(out)] + extra)
    assert r.exit_code == 1
    assert message in r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert not out.exists()  # nothing half-written


def test_bench_missing_input_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["bench", str(tmp_path / "none.tif"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and r.output.startswith("error: no such file")


def test_bench_oscd_city_as_a_series(shared_data, tmp_path):
    from terracodec.bench.video import Hevc

    city = shared_data / "oscd_s2_l1c" / "norcia"
    out = tmp_path / "out"
    codecs = ["jpeg2000"] + (["hevc"] if Hevc.unavailable() is None else [])
    r = _run(["bench", str(city), "--series", "--crop", "64", "--codecs", ",".join(codecs),
              "--qualities", "jpeg2000=55,65", "--out", str(out), "-q"]
             + (["--qualities", "hevc=34,22"] if "hevc" in codecs else []))
    assert r.exit_code == 0, r.output
    res = json.loads((out / "results.json").read_text())
    assert res["samples"][0]["shape"] == [2, 13, 64, 64]  # both dates, 13 bands at 10 m
    assert res["samples"][0]["band_names"][10] == "B10"
    assert {p["codec"] for p in res["points"]} == set(codecs)
