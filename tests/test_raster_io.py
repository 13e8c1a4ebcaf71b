"""Reading GeoTIFF stacks (lazily, checked), writing GeoTIFF/COG atomically, matching bands."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terracodec.bands import S2_L1C_BANDS, match_bands, normalize_band_name
from terracodec.errors import InputError
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.meta import FrameMeta, Grid, parse_timestamp
from terracodec.io.raster import read_stack
from terracodec.io.writer import RasterWriter, write_raster


def _tif(path, data, *, dtype=None, crs="EPSG:32633", transform=None, nodata=None, desc=None, **tags):
    data = np.asarray(data if dtype is None else data.astype(dtype))
    c, h, w = data.shape
    with rasterio.open(
        path, "w", driver="GTiff", height=h, width=w, count=c, dtype=data.dtype,
        crs=crs, transform=transform or from_origin(500000, 5000000, 10, 10), nodata=nodata,
    ) as ds:
        ds.write(data)
        if desc:
            ds.descriptions = desc
        if tags:
            ds.update_tags(**tags)
    return path


def test_reads_real_stack_metadata_and_windows(shared_data):
    city = shared_data / "oscd_s2_l1c" / "paris"
    with rasterio.open(city / "img1_10m.tif") as ds:  # 408 x 390 in ../shared/data, cropped in the mirror
        shape = (ds.height, ds.width, ds.count)
    assert shape[0] >= 130 and shape[1] >= 90 and shape[2] == 4  # room for the window read below
    with read_stack([city / "img1_10m.tif", city / "img2_10m.tif"]) as stack:
        assert (stack.grid.height, stack.grid.width, stack.grid.count) == shape
        assert stack.grid.dtype == "uint16"
        assert [f.descriptions for f in stack.frames] == [["B02", "B03", "B04", "B08"]] * 2
        assert [f.timestamp for f in stack.frames] == ["2016-11-30", "2017-11-07"]
        assert stack.frames[0].tags["LEVEL"] == "L1C"
        with rasterio.open(city / "img2_10m.tif") as ds:
            full = ds.read()
        np.testing.assert_array_equal(stack.read(1, 100, 50, 30, 40), full[:, 100:130, 50:90])


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_stack([tmp_path / "nope.tif"])


def test_not_a_raster(tmp_path):
    p = tmp_path / "notes.tif"
    p.write_text("hello, I am text")
    with pytest.raises(InputError, match="not a raster"):
        read_stack(p)
    with pytest.raises(InputError, match="not a raster"):
        read_stack(tmp_path)


def test_frames_on_different_grids(tmp_path):
    a = _tif(tmp_path / "a.tif", np.ones((2, 8, 8), np.uint16))
    b = _tif(tmp_path / "b.tif", np.ones((2, 8, 9), np.uint16))
    c = _tif(tmp_path / "c.tif", np.ones((2, 8, 8), np.uint16), transform=from_origin(0, 0, 10, 10))
    d = _tif(tmp_path / "d.tif", np.ones((2, 8, 8), np.uint16), crs="EPSG:32634")
    e = _tif(tmp_path / "e.tif", np.ones((2, 8, 8), np.int16))
    for other in (b, c, d):
        with pytest.raises(InputError, match="different grids"):
            read_stack([a, other])
    with pytest.raises(InputError, match="different data types"):
        read_stack([a, e])


@pytest.mark.parametrize("dtype", ["complex64", "int64"])
def test_unsupported_dtype(tmp_path, dtype):
    p = _tif(tmp_path / "x.tif", np.ones((1, 4, 4)), dtype=dtype)
    with pytest.raises(InputError, match="unsupported data type"):
        read_stack(p)


@pytest.mark.parametrize("cog", [False, True])
def test_write_keeps_georeferencing_and_metadata(tmp_path, cog):
    rng = np.random.default_rng(1)
    px = rng.integers(0, 5000, (3, 70, 90), dtype=np.uint16)
    grid = Grid(70, 90, 3, "uint16", rasterio.crs.CRS.from_epsg(32633).to_wkt(),
                tuple(from_origin(465000, 5080000, 10, 10))[:6])
    meta = FrameMeta("x.tif", nodata=0.0, descriptions=["B02", None, "B8A"], tags={"DATE": "20200101"},
                     band_tags=[{"k": "v"}, {}, {}], scales=[1.0] * 3, offsets=[0.0] * 3)
    out = write_raster(tmp_path / "x.tif", px, grid, meta, cog=cog)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tif"]  # no temporary left
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), px)
        assert ds.crs.to_epsg() == 32633 and tuple(ds.transform)[:6] == grid.transform
        assert ds.nodata == 0 and ds.descriptions == ("B02", None, "B8A")
        assert ds.tags()["DATE"] == "20200101" and ds.tags(1)["k"] == "v"
        layout = ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        assert (layout == "COG") == cog


def test_writer_leaves_nothing_on_error(tmp_path):
    grid = Grid(16, 16, 1, "uint16", None, (1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
    with pytest.raises(RuntimeError):
        with AtomicOutputs() as outputs:
            w = RasterWriter(tmp_path / "y.tif", grid, FrameMeta("y.tif"), outputs)
            w.write(np.ones((1, 16, 16), np.uint16), 0, 0)
            try:
                raise RuntimeError("boom")
            finally:
                w.abandon()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path):
    grid = Grid(4, 4, 1, "uint16", None, (1.0, 0.0, 0.0, 0.0, -1.0, 0.0))
    with pytest.raises(InputError, match="cannot write"):
        write_raster(tmp_path / "missing" / "y.tif", np.ones((1, 4, 4), np.uint16), grid, FrameMeta("y"))


def test_timestamps_from_tags():
    assert parse_timestamp({"DATE": "20161130"}) == "2016-11-30"
    assert parse_timestamp({"datetime": "2019-09-18T10:00:00"}) == "2019-09-18T10:00:00"
    assert parse_timestamp({"OTHER": "x"}) is None


# ----------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    "raw,canon",
    [("B1", "B01"), ("b01", "B01"), ("B8A", "B8A"), ("b8a", "B8A"), ("B08", "B08"), ("B12", "B12"),
     (" B5 ", "B05"), ("B13", None), ("B9A", None), ("VV", None), ("", None), (None, None)],
)
def test_band_name_normalisation(raw, canon):
    assert normalize_band_name(raw) == canon


def test_match_by_name_handles_other_orders():
    eurosat = list(S2_L1C_BANDS[:8]) + ["B09", "B10", "B11", "B12", "B8A"]  # B8A last
    order = match_bands(eurosat, S2_L1C_BANDS, 13)
    assert [eurosat[i] for i in order] == list(S2_L1C_BANDS)
    sen1floods = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]
    assert match_bands(sen1floods, S2_L1C_BANDS, 13) == list(range(13))


def test_match_by_position_without_names():
    assert match_bands([None] * 13, S2_L1C_BANDS, 13) == list(range(13))
    with pytest.raises(InputError, match="without S2 band names"):
        match_bands([None] * 4, S2_L1C_BANDS, 13)


def test_unmatchable_bands_are_refused():
    with pytest.raises(InputError, match="lacks B01"):
        match_bands(["B02", "B03", "B04", "B08"], S2_L1C_BANDS, 13)
    with pytest.raises(InputError, match="does not code: B10"):
        match_bands(list(S2_L1C_BANDS), [b for b in S2_L1C_BANDS if b != "B10"], 12)
    with pytest.raises(InputError, match="more than once"):
        match_bands(["B02", "B2", "B04", "B08"], ["B02", "B03", "B04", "B08"], 4)


def test_one_stack_read_from_many_threads_reads_right():
    """A thread pool given as executor reads one stack from several threads at once: each thread
    gets its own open files (GDAL datasets are not thread-safe), so no read fails or mixes."""
    import pickle
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import terracodec

    sample = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
    stack = read_stack([[p] for p in sample])
    windows = [(f, r, c) for f in range(len(sample)) for r in (0, 5, 37, 64) for c in (0, 29, 60)]
    expected = {w: stack.read(w[0], w[1], w[2], 32, 32) for w in windows}

    def read(w):
        return w, stack.read(w[0], w[1], w[2], 32, 32)

    with ThreadPoolExecutor(8) as pool:
        for _ in range(20):
            for w, px in pool.map(read, windows):
                np.testing.assert_array_equal(px, expected[w])
    clone = pickle.loads(pickle.dumps(stack))
    np.testing.assert_array_equal(clone.read(*windows[-1], 32, 32), expected[windows[-1]])
    stack.close()
    clone.close()
