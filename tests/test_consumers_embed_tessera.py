"""`tec embed --encoder tessera` on a real L2A series with real S1: a WorldCereal site's dates as
one-date GeoTIFFs, coded with the shipped L2A model (10 of its 12 bands), embedded with the
reduced TESSERA of the parity fixtures (tests/fixtures/make_tessera_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

import terracodec
from terracodec.cli.main import main
from terracodec.consumers.tessera import load_tessera
from terracodec.consumers.tessera_inputs import embed_grid, tessera_inputs

WEIGHTS = Path(__file__).parent / "fixtures" / "tessera" / "weights.safetensors"
SITE = "00002806639B424A"
CROP, DATES = 32, (3, 9, 20, 30)


def _stack(path: Path, per_frame: int) -> tuple[np.ndarray, list[str], list[str], rasterio.Affine, str]:
    with rasterio.open(path) as src:
        data = src.read()
        stamps, names = zip(*(d.split(" ") for d in src.descriptions))
        shape = (data.shape[0] // per_frame, per_frame, *data.shape[1:])
        return data.reshape(shape), list(stamps[::per_frame]), list(names[:per_frame]), src.transform, src.crs


def _write(path: Path, values: np.ndarray, names: list[str], transform, crs, stamp: str) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[2], height=values.shape[1],
                       count=values.shape[0], dtype=values.dtype, transform=transform, crs=crs) as dst:
        dst.write(values)
        dst.descriptions = names
        dst.update_tags(DATE=stamp)
    return path


@pytest.fixture(scope="module")
def series(shared_data, tmp_path_factory):
    site = shared_data / "worldcereal_s2l2a_dense_ts" / SITE
    if not (site / "s2_l2a_10m.tif").is_file():
        pytest.skip(f"WorldCereal site {SITE} is not in {shared_data}")
    fine, stamps, fine_names, transform, crs = _stack(site / "s2_l2a_10m.tif", 4)
    coarse, _, coarse_names, _, _ = _stack(site / "s2_l2a_20m.tif", 6)
    s1, s1_stamps, _, _, _ = _stack(site / "s1_grd_asc_20m.tif", 2)
    up = lambda a: a.repeat(2, axis=-2).repeat(2, axis=-1)[..., :CROP, :CROP]  # noqa: E731
    tmp = tmp_path_factory.mktemp("wc")
    s2_files = [_write(tmp / f"s2_{t:03d}.tif", np.concatenate([fine[t, :, :CROP, :CROP], up(coarse[t])]),
                       fine_names + coarse_names, transform, crs, stamps[t]) for t in DATES]
    s1_files = [_write(tmp / f"s1_{t:03d}.tif", (up(s1[t]) / 10000.0).astype(np.float32), ["VV", "VH"],
                       transform, crs, s1_stamps[t]) for t in (5, 12)]
    stream = tmp / "series.tec"
    result = CliRunner().invoke(main, ["encode", *map(str, s2_files), "-o", str(stream), "--model",
                                       "tec-fp-s2l2a", "-q"])
    assert result.exit_code == 0, result.output
    return stream, s1_files, tmp


def test_series_with_s1_equals_the_model_on_the_decoded_frames(series, tmp_path):
    stream, s1_files, _ = series
    out = tmp_path / "year.tif"
    result = CliRunner().invoke(main, ["embed", str(stream), "--encoder", "tessera", "--weights", str(WEIGHTS),
                                       "--s1-asc", str(s1_files[1]), "--s1-asc", str(s1_files[0]),
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    decoded = terracodec.decode(str(stream))
    info = terracodec.info(str(stream))
    s1 = []
    for f in s1_files:
        with rasterio.open(f) as src:
            s1.append(src.read().astype(np.float64))
    inputs = tessera_inputs(decoded.pixels.astype(np.float64), decoded.band_descriptions[0],
                            decoded.timestamps, nodata=0,
                            has_offset=[f["dn_offset"] > 0 for f in info["frame_info"]],
                            s1_asc=(np.stack(s1), [str(s) for s in _dates(s1_files)]))
    expected = np.moveaxis(embed_grid(load_tessera(WEIGHTS), inputs, seed=0), -1, 0)
    with rasterio.open(out) as ds:
        got = ds.read()
        assert ds.transform == decoded.transform and ds.crs.to_wkt() == rasterio.crs.CRS.from_wkt(decoded.crs).to_wkt()
        assert ds.tags()["S1"] == "ascending" and ds.tags()["FRAMES"] == str(len(DATES))
    assert got.shape == expected.shape == (16, CROP, CROP)
    assert np.array_equal(got, expected.astype(np.float32))
    # S1 changes the embedding (the branch is not ignored)
    without = tmp_path / "no_s1.tif"
    result = CliRunner().invoke(main, ["embed", str(stream), "--encoder", "tessera", "--weights", str(WEIGHTS),
                                       "-o", str(without)])
    assert result.exit_code == 0, result.output
    with rasterio.open(without) as ds:
        assert ds.tags()["S1"] == "none" and float(np.abs(ds.read() - got).max()) > 1e-3


def _dates(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        with rasterio.open(f) as src:
            out.append(src.tags()["DATE"])
    return out


def test_s1_on_another_grid_and_undated_s1_are_refused(series, tmp_path):
    stream, s1_files, tmp = series
    with rasterio.open(s1_files[0]) as src:
        values, profile = src.read(), src.profile
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(shifted, "w", **dict(profile, transform=profile["transform"] * rasterio.Affine.translation(1, 0))) as dst:
        dst.write(values)
    undated = tmp_path / "undated.tif"
    with rasterio.open(undated, "w", **profile) as dst:
        dst.write(values)
    for bad, words in ((shifted, "not on the S2 stream's grid"), (undated, "acquisition time")):
        out = tmp_path / "never.tif"
        result = CliRunner().invoke(main, ["embed", str(stream), "--encoder", "tessera", "--weights", str(WEIGHTS),
                                           "--s1-asc", str(bad), "-o", str(out)])
        assert result.exit_code == 1 and words in result.output and result.output.count("\n") == 1, result.output
        assert not out.exists()


def test_s1_as_a_tec_series(series, tmp_path):
    """S1 archived as `.tec` (a 2-band TerraCodec v1 model, random weights, given with
    --s1-weights): the embedding is that of the decoded S1 frames."""
    from test_checkpoint import save_v1
    from test_models import make

    stream, s1_files, _ = series
    checkpoint = save_v1(make("tec-fp", 2), tmp_path / "s1_model.pt")
    s1_stream = tmp_path / "s1.tec"
    terracodec.encode([str(f) for f in s1_files], str(s1_stream), weights=str(checkpoint))
    s1 = terracodec.decode(str(s1_stream), weights=str(checkpoint))
    out = tmp_path / "year.tif"
    result = CliRunner().invoke(main, ["embed", str(stream), "--encoder", "tessera", "--weights", str(WEIGHTS),
                                       "--s1-desc", str(s1_stream), "--s1-weights", str(checkpoint), "-o", str(out)])
    assert result.exit_code == 0, result.output
    decoded = terracodec.decode(str(stream))
    info = terracodec.info(str(stream))
    inputs = tessera_inputs(decoded.pixels.astype(np.float64), decoded.band_descriptions[0], decoded.timestamps,
                            nodata=0, has_offset=[f["dn_offset"] > 0 for f in info["frame_info"]],
                            s1_desc=(s1.pixels.astype(np.float64), s1.timestamps))
    expected = np.moveaxis(embed_grid(load_tessera(WEIGHTS), inputs, seed=0), -1, 0)
    with rasterio.open(out) as ds:
        assert ds.tags()["S1"] == "descending" and np.array_equal(ds.read(), expected.astype(np.float32))
    result = CliRunner().invoke(main, ["embed", str(stream), "--encoder", "tessera", "--weights", str(WEIGHTS),
                                       "--s1-desc", str(s1_stream), "-o", str(tmp_path / "never.tif")])
    assert result.exit_code == 1 and "weights" in result.output and result.output.count("\n") == 1, result.output
    assert not (tmp_path / "never.tif").exists()
