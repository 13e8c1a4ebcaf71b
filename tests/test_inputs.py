"""Inputs users have, coded as what they are (issue 13, items 4, 5, 11, 13, 14 and the baseline
warning of 15): reflectance and 8-bit data, nodata, ground control points, API misuse, band
names given by position, frames made of several files at different resolutions."""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS

import terracodec
from terracodec.bands import S2_L1C_BANDS
from terracodec.cli.main import main
from terracodec.errors import InputError, TerracodecWarning

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


def _read(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as ds:
        return ds.read(), dict(ds.profile)


def _write(path: Path, pixels: np.ndarray, profile: dict, descriptions=None, **extra) -> Path:
    profile = dict(profile, count=pixels.shape[0], dtype=pixels.dtype.name, **extra)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(pixels)
        if descriptions:
            ds.descriptions = tuple(descriptions)
    return path


def _psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


# ----------------------------------------------------------------------------- item 4
def test_float_reflectance_is_coded_as_dn_and_comes_back_as_reflectance(tmp_path) -> None:
    dn, profile = _read(SAMPLE[0])
    refl = (dn / 10000.0).astype(np.float32)
    path = _write(tmp_path / "refl.tif", refl, profile, S2_L1C_BANDS, nodata=None)
    with pytest.warns(TerracodecWarning, match="reflectance"):
        stream = terracodec.encode(path, model="tec-fp-s2l1c", quality=5)
    info = terracodec.info(stream)
    assert info["frame_info"][0]["dn_scale"] == 10000 and info["format_version"] == "7.0"
    out = terracodec.decode(stream).pixels[0]
    assert out.dtype == np.float32
    assert np.corrcoef(out.ravel(), refl.ravel())[0, 1] > 0.99
    assert _psnr(out * 10000, dn, 10000) > 33  # the DN-coded quality, within its 0..1 units
    reference = terracodec.decode(terracodec.encode(SAMPLE[0], model="tec-fp-s2l1c", quality=5)).pixels[0]
    assert abs(_psnr(out * 10000, dn, 10000) - _psnr(reference, dn, 10000)) < 0.5


def test_eight_bit_data_is_refused_unless_a_scale_is_given(tmp_path) -> None:
    dn, profile = _read(SAMPLE[0])
    u8 = np.clip(dn / 16, 0, 255).astype(np.uint8)
    path = _write(tmp_path / "u8.tif", u8, profile, S2_L1C_BANDS, nodata=None)
    with pytest.raises(InputError, match="Sentinel-2 DN"):
        terracodec.encode(path, model="tec-fp-s2l1c")
    result = CliRunner().invoke(main, ["encode", str(path), "-o", str(tmp_path / "u8.tec")])
    assert result.exit_code == 1 and result.stderr.strip().splitlines()[-1].startswith("error: u8.tif")
    stream = terracodec.encode(path, model="tec-fp-s2l1c", scale=16)  # stated: DN = 16 x value
    back = terracodec.decode(stream).pixels[0]
    assert np.corrcoef(back.ravel().astype(float), u8.ravel().astype(float))[0, 1] > 0.98


# ----------------------------------------------------------------------------- item 5
@pytest.mark.parametrize("dtype", ["uint16", "int16"])
def test_valid_pixels_never_decode_to_nodata(dtype) -> None:
    dn, _ = _read(SAMPLE[0])
    dark = np.clip(dn.astype(np.int32) - np.int32(900), 1, None).astype(dtype)  # water-like lows
    dark[:, :10, :10] = 0
    stream = terracodec.encode(dark, model="tec-fp-s2l1c", quality=1, nodata=0,
                               band_names=list(S2_L1C_BANDS), baseline_offset=False)
    out = terracodec.decode(stream).pixels[0]
    assert (out[:, :10, :10] == 0).all()  # nodata exact
    valid = dark != 0
    assert not (out[valid] == 0).any()
    nudged = valid & (out == 1)
    assert nudged.any()  # values that rounded to nodata moved to the next value


def test_sen1floods11_valid_lows_stay_valid(shared_data, tmp_path) -> None:
    src = shared_data / "sen1floods11_sample" / "Spain_7370579_S2Hand.tif"
    stream = terracodec.encode(src, model="tec-fp-s2l1c", band_names=list(S2_L1C_BANDS), nodata=0,
                               baseline_offset=False)
    out = terracodec.decode(stream).pixels[0]
    original, _ = _read(src)
    assert not ((original != 0) & (out == 0)).any()


# ----------------------------------------------------------------------------- item 11
def test_ground_control_points_are_kept(tmp_path) -> None:
    dn, profile = _read(SAMPLE[0])
    gcps = [GroundControlPoint(row=r, col=c, x=14.5 + c * 1e-4, y=46.0 - r * 1e-4, z=300.0)
            for r, c in [(0, 0), (0, 99), (100, 0), (100, 99)]]
    profile = {k: v for k, v in profile.items() if k not in ("crs", "transform")}
    path = tmp_path / "gcp.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(dn)
        ds.descriptions = tuple(S2_L1C_BANDS)
        ds.gcps = (gcps, CRS.from_epsg(4326))
    stream = tmp_path / "gcp.tec"
    terracodec.encode(path, stream, model="tec-fp-s2l1c")
    assert terracodec.info(stream)["gcps"] == 4
    terracodec.decode(stream, tmp_path / "out.tif")
    with rasterio.open(tmp_path / "out.tif") as ds:
        back, crs = ds.gcps
    assert crs == CRS.from_epsg(4326)
    assert [(g.row, g.col, g.x, g.y, g.z) for g in back] == [(g.row, g.col, g.x, g.y, g.z) for g in gcps]
    part = terracodec.decode(stream, window=(10, 20, 50, 40))
    assert part.gcps[0][:2] == [-20.0, -10.0]  # shifted with the window


# ----------------------------------------------------------------------------- item 13
def test_api_misuse_is_one_clear_error() -> None:
    stream = terracodec.encode(SAMPLE[0], model="tec-fp-tiny")
    for bad in (None, 3, ["x.tec"]):
        with pytest.raises(InputError, match="path or bytes"):
            terracodec.decode(bad)
    for frames in ("10", [1.9], [True], 1.0, [[0]]):
        with pytest.raises(InputError, match="frame"):
            terracodec.decode(stream, frames=frames)
    for quality in (True, [1], float("nan")):
        with pytest.raises(InputError, match="quality"):
            terracodec.encode(SAMPLE[0], model="tec-fp-tiny", quality=quality)
    for window in ("0,0,10,10", (0, 0, 10), (0, 0, 10.5, 10)):
        with pytest.raises(InputError, match="window"):
            terracodec.decode(stream, window=window)
    with pytest.raises(InputError, match="inputs"):
        terracodec.encode(42, model="tec-fp-tiny")
    assert terracodec.decode(stream, frames=0).pixels.shape[0] == 1  # one integer is one frame


def test_models_lists_on_every_call() -> None:
    first = terracodec.models()
    importlib.import_module("terracodec.models.elic")  # must not hide the function

    assert terracodec.models() == first and {m["name"] for m in first} >= {"tec-fp-s2l1c", "tec-tt-small"}


def test_metadata_arguments_apply_to_files_too(tmp_path) -> None:
    dn, profile = _read(SAMPLE[0])
    bare = {k: v for k, v in profile.items() if k not in ("crs", "transform", "nodata")}
    path = _write(tmp_path / "bare.tif", dn, bare)
    stream = terracodec.encode(path, model="tec-fp-s2l1c", band_names=list(S2_L1C_BANDS), nodata=0,
                               crs="EPSG:32633", transform=(10, 0, 500000, 0, -10, 5100000),
                               timestamps=["2015-07-11"], baseline_offset=False)
    info = terracodec.info(stream)
    assert info["epsg"] == 32633 and info["transform"][:3] == [10.0, 0.0, 500000.0]
    f = info["frame_info"][0]
    assert f["nodata"] == 0 and f["band_descriptions"] == list(S2_L1C_BANDS) and f["timestamp"] == "2015-07-11"
    with pytest.raises(InputError, match="band names"):
        terracodec.encode(path, model="tec-fp-s2l1c", band_names=["B01"])


# ----------------------------------------------------------------------------- item 14
def test_bands_named_by_position(tmp_path) -> None:
    """A EuroSAT-like file (B8A last) without band names: coded by position with a warning;
    `--bands` names them and the file's order is restored."""
    dn, profile = _read(SAMPLE[0])
    order = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 8]  # B8A last
    path = _write(tmp_path / "eurosat.tif", dn[order], profile)
    names = [S2_L1C_BANDS[i] for i in order]
    with pytest.warns(TerracodecWarning, match="do not name their bands"):
        positional = terracodec.decode(terracodec.encode(path, model="tec-fp-s2l1c")).pixels[0]
    runner = CliRunner()
    out = tmp_path / "named.tec"
    result = runner.invoke(main, ["encode", str(path), "-o", str(out), "--bands", ",".join(names)])
    assert result.exit_code == 0 and "warning" not in result.stderr, result.output
    named = terracodec.decode(out).pixels[0]
    assert _psnr(named, dn[order], 10000) > _psnr(positional, dn[order], 10000) + 3


def test_a_frame_of_several_files_at_different_resolutions(shared_data, tmp_path) -> None:
    city = shared_data / "oscd_s2_l1c" / "bercy"
    frames = [",".join(str(city / f"img{d}_{r}.tif") for r in ("10m", "20m", "60m")) for d in (1, 2)]
    out = tmp_path / "bercy.tec"
    result = CliRunner().invoke(main, ["encode", "--frame", frames[0], "--frame", frames[1], "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = terracodec.info(out)
    with rasterio.open(city / "img1_10m.tif") as ds:
        ten = ds.read()
        assert (info["height"], info["width"], info["bands"]) == (ds.height, ds.width, 13)
        assert info["transform"] == list(ds.transform)[:6]
    assert [f["name"] for f in info["frame_info"]] == ["img1.tif", "img2.tif"]
    decoded = terracodec.decode(out)
    assert decoded.band_descriptions[0][:4] == ["B02", "B03", "B04", "B08"]
    assert _psnr(decoded.pixels[0, :4], ten, 10000) > 30
    from terracodec.io.raster import read_stack

    with read_stack([frames[0].split(",")]) as stack:  # the frame as coded: 13 bands at 10 m
        frame = stack.read(0, 0, 0, stack.grid.height, stack.grid.width)
    assert _psnr(decoded.pixels[0], frame, 10000) > 30
    with rasterio.open(city / "img1_20m.tif") as ds:  # a 20 m band, resampled, still the band
        b05 = ds.read(1).astype(float)
    h, w = min(frame.shape[1] // 2, b05.shape[0]), min(frame.shape[2] // 2, b05.shape[1])
    assert np.corrcoef(frame[4, ::2, ::2][:h, :w].ravel(), b05[:h, :w].ravel())[0, 1] > 0.95


def test_several_files_of_one_frame_must_agree(shared_data, tmp_path) -> None:
    city = shared_data / "oscd_s2_l1c" / "bercy"
    other = shared_data / "oscd_s2_l1c" / "paris"
    with pytest.raises(InputError, match="cover|CRS"):
        terracodec.encode([[city / "img1_10m.tif", other / "img1_20m.tif"]], model="tec-fp-tiny")


# ----------------------------------------------------------------------------- item 15
def test_undetectable_baseline_offset_warns() -> None:
    dn, _ = _read(SAMPLE[0])
    l2a = np.delete(dn, 10, axis=0)  # 12 bands, no B10, no tags, no date
    with pytest.warns(TerracodecWarning, match="cannot tell whether"):
        terracodec.encode(l2a, model="tec-fp-s2l2a", band_names=[b for b in S2_L1C_BANDS if b != "B10"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TerracodecWarning)
        terracodec.encode(l2a, model="tec-fp-s2l2a", baseline_offset=False,
                          band_names=[b for b in S2_L1C_BANDS if b != "B10"])
