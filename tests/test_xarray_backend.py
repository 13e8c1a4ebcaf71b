"""`xarray.open_dataset(path, engine="terracodec")`: lazy, tile-exact, georeferenced, picklable.

A real stream: the bundled sample (three dates of 13-band Sentinel-2 L1C, 101 x 100 px, EPSG
32633) coded with tiles of 32 px, so a window touches a few of its 16 tiles per frame.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr

import terracodec
from terracodec.container import ContainerReader
from terracodec.errors import CorruptStreamError, InputError, TerracodecWarning
from terracodec.tiling import window_tiles
from terracodec.xarray_backend import VARIABLE, TerracodecBackendEntrypoint

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))[:3]
TILE = 32


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("xr") / "series.tec"
    terracodec.encode(SAMPLE, path, model="tec-fp-tiny", tile_size=TILE)
    return path


@pytest.fixture(scope="module")
def decoded(series):
    return terracodec.decode(series)


@pytest.fixture()
def tile_reads(monkeypatch) -> list[tuple[int, int]]:
    """(frame, tile) of every tile record read, by the real reader."""
    reads: list[tuple[int, int]] = []
    real = ContainerReader.read_tile

    def spy(self, frame, tile):
        reads.append((int(frame), int(tile)))
        return real(self, frame, tile)

    monkeypatch.setattr(ContainerReader, "read_tile", spy)
    return reads


def test_values_are_decodes_pixels(series, decoded):
    da = xr.open_dataarray(series, engine="terracodec")
    assert da.name == VARIABLE and da.dims == ("time", "band", "y", "x")
    assert da.dtype == decoded.pixels.dtype == np.uint16
    np.testing.assert_array_equal(da.values, decoded.pixels)
    masked = xr.open_dataarray(series, engine="terracodec", mask_and_scale=True)
    assert masked.dtype == np.float32 and masked.encoding["_FillValue"] == 0  # nodata -> NaN
    np.testing.assert_array_equal(masked.values, np.where(decoded.pixels == 0, np.nan, decoded.pixels))


def test_coordinates_and_attributes(series, decoded):
    ds = xr.open_dataset(series, engine="terracodec")
    with rasterio.open(SAMPLE[0]) as src:
        descriptions, (a, _, c, _, e, f) = list(src.descriptions), tuple(src.transform)[:6]
        height, width = src.height, src.width
    assert list(ds.band.values) == descriptions == decoded.band_descriptions[0]
    assert ds.time.dtype == np.dtype("datetime64[ns]")
    assert list(ds.time.values) == [np.datetime64(d) for d in ("2015-07-11", "2015-07-31", "2015-08-20")]
    assert list(ds.frame_name.values) == [p.name for p in SAMPLE]
    np.testing.assert_allclose(ds.x.values, c + a * (np.arange(width) + 0.5))
    np.testing.assert_allclose(ds.y.values, f + e * (np.arange(height) + 0.5))
    var = ds[VARIABLE]
    assert var.attrs["_FillValue"] == 0 and var.attrs["grid_mapping"] == "spatial_ref"
    info = terracodec.info(series)
    assert var.attrs["model"] == ds.attrs["model"] == "tec-fp-tiny"
    assert var.attrs["quality"] == info["quality"]
    assert var.attrs["bpppb"] == pytest.approx(info["bpppb"])
    assert var.encoding["preferred_chunks"] == {"time": 1, "band": 13, "y": TILE, "x": TILE}


def test_rioxarray_reads_crs_transform_and_nodata(series):
    pytest.importorskip("rioxarray")
    ds = xr.open_dataset(series, engine="terracodec")
    with rasterio.open(SAMPLE[0]) as src:
        crs, transform = src.crs, src.transform
    assert ds.rio.crs == crs and ds[VARIABLE].rio.crs == crs
    assert ds.rio.transform().almost_equals(transform, precision=1e-9)
    assert ds[VARIABLE].rio.nodata == 0


def test_a_window_reads_only_its_tiles(series, decoded, tile_reads):
    ds = xr.open_dataset(series, engine="terracodec")
    assert tile_reads == []  # opening reads the header only
    rows, cols = slice(10, 20), slice(40, 70)
    part = ds[VARIABLE].isel(time=1, y=rows, x=cols).values
    np.testing.assert_array_equal(part, decoded.pixels[1, :, rows, cols])
    needed = window_tiles(101, 100, TILE, 16, (40, 10, 30, 10))
    assert len(needed) == 2
    assert sorted(tile_reads) == sorted((1, t.index) for t in needed)

    tile_reads.clear()  # two frames of one row of pixels, bands picked: one decode
    part = ds[VARIABLE].isel(time=[0, 2], band=[3, 1], y=70).values
    np.testing.assert_array_equal(part, decoded.pixels[[0, 2]][:, [3, 1], 70])
    assert len(tile_reads) == 2 * len(window_tiles(101, 100, TILE, 16, (0, 70, 100, 1)))


def test_chunks_follow_the_tiles(series, decoded):
    da = xr.open_dataarray(series, engine="terracodec", chunks={})
    import dask.array

    assert isinstance(da.data, dask.array.Array)
    assert da.chunks == ((1, 1, 1), (13,), (32, 32, 32, 5), (32, 32, 32, 4))
    np.testing.assert_array_equal(da.compute().values, decoded.pixels)


def test_pickles_and_computes_in_other_processes(series, decoded):
    import dask

    da = xr.open_dataarray(series, engine="terracodec", chunks={}, lock=True)
    restored = pickle.loads(pickle.dumps(da))
    lazy = pickle.loads(pickle.dumps(xr.open_dataarray(series, engine="terracodec").variable))
    np.testing.assert_array_equal(lazy[2, :, 50:60].values, decoded.pixels[2, :, 50:60])
    with dask.config.set(scheduler="processes", num_workers=2):
        values = restored.isel(y=slice(0, 64)).compute().values
    np.testing.assert_array_equal(values, decoded.pixels[:, :, :64])


def test_temporal_stream_decodes_each_frame_from_its_sequence(tmp_path):
    with rasterio.open(SAMPLE[0]) as src:
        crs, transform = src.crs, src.transform
    stack = np.stack([rasterio.open(p).read(window=((0, 64), (0, 64))) for p in SAMPLE[:2]])
    path = tmp_path / "tt.tec"
    terracodec.encode(stack, path, model="tec-tt-small", tile_size=64, crs=crs, transform=transform,
                      band_names=list(rasterio.open(SAMPLE[0]).descriptions),
                      timestamps=["2015-07-11T10:00:08Z", "2015-07-31T10:00:00Z"])
    full = terracodec.decode(path).pixels
    da = xr.open_dataarray(path, engine="terracodec", chunks={})
    assert da.attrs["model_kind"] == "temporal"
    assert da.chunks[0] == (2,)  # a chunk holds a tile's whole sequence
    assert list(da.time.values) == [np.datetime64("2015-07-11T10:00:08"), np.datetime64("2015-07-31T10:00")]
    np.testing.assert_array_equal(da.isel(time=1).values, full[1])
    np.testing.assert_array_equal(da.values, full)


def test_unnamed_bands_and_odd_timestamps(tmp_path):
    pixels = np.full((2, 13, 32, 32), 1200, np.uint16)
    path = tmp_path / "odd.tec"
    with pytest.warns(TerracodecWarning, match="do not name their bands"):
        terracodec.encode(pixels, path, model="tec-fp-tiny", tile_size=32, frame_names=["a", "b"],
                          timestamps=["2020-01-01", "spring"], baseline_offset=False)
    ds = xr.open_dataset(path, engine="terracodec")
    assert list(ds.time.values) == ["a", "b"] and list(ds.frame_name.values) == ["a", "b"]
    assert list(ds.band.values) == terracodec.info(path)["band_names"]  # coded by position
    assert "crs_wkt" not in ds.spatial_ref.attrs and "_FillValue" not in ds[VARIABLE].attrs


def test_not_a_stream_is_an_error_not_garbage(series, tmp_path):
    with pytest.raises(CorruptStreamError, match="not a .tec file"):
        xr.open_dataset(SAMPLE[0], engine="terracodec")
    cut = tmp_path / "cut.tec"
    cut.write_bytes(series.read_bytes()[:-40])
    with pytest.raises(CorruptStreamError):
        xr.open_dataset(cut, engine="terracodec")
    with pytest.raises(InputError, match="no such"):
        xr.open_dataset(tmp_path / "missing.tec", engine="terracodec")


def test_guess_can_open(series, tmp_path):
    entry = TerracodecBackendEntrypoint()
    renamed = tmp_path / "stream.bin"
    renamed.write_bytes(series.read_bytes())
    assert entry.guess_can_open("scene.tec") and entry.guess_can_open(series)
    assert entry.guess_can_open(renamed)  # by its magic number
    assert not entry.guess_can_open(SAMPLE[0]) and not entry.guess_can_open(b"bytes")
    assert xr.open_dataset(renamed)[VARIABLE].shape == (3, 13, 101, 100)  # found without engine=
