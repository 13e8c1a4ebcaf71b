"""The Python API end to end with a deterministic toy codec (plumbing, not model quality).

Real Sentinel-2 rasters (OSCD Paris, 10 m bands, two dates) go through encode -> .tec ->
decode; the toy codec's error bound is known, so every pixel can be checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from _rasters import copy_raster
from _toycodec import ToyCodec

import terracodec
from terracodec import api
from terracodec.container import FLAG_EXACT_ONLY, ContainerReader
from terracodec.errors import CorruptStreamError, InputError, ModelError

TOY_TOLERANCE = 0.02 / 2 * 1000 + 0.5  # step/2 * std, plus rounding to integers


@pytest.fixture()
def oscd_pair(shared_data, tmp_path):
    """Paris img1/img2 (B02 B03 B04 B08) with nodata 0, a no-data swath edge and saturated pixels."""
    city = shared_data / "oscd_s2_l1c" / "paris"

    def swath(px):
        px[:, :37, :] = 0
        px[:, 37:120, :25] = 0

    def saturate(px):
        px[2, 150:153, 100:140] = 65535  # inside the mirror's 192 x 192 crop too
        px[0, 5, 5] = 0

    a = copy_raster(city / "img1_10m.tif", tmp_path / "img1_10m.tif", edit=swath, nodata=0)
    b = copy_raster(city / "img2_10m.tif", tmp_path / "img2_10m.tif", edit=saturate, nodata=0)
    return [a, b]


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, list(ds.descriptions), ds.tags()


def test_round_trip_real_stack_keeps_everything(oscd_pair, tmp_path):
    toy = ToyCodec()
    summary = api.encode(oscd_pair, tmp_path / "s.tec", model=toy, tile_size=128)
    assert summary["frames"] == 2 and summary["bands"] == 4 and summary["dtype"] == "uint16"
    assert summary["frame_info"][1]["timestamp"] == "2017-11-07"
    paths = api.decode(tmp_path / "s.tec", tmp_path / "out", model=toy)
    assert [p.name for p in paths] == ["img1_10m.tif", "img2_10m.tif"]
    for src, out in zip(oscd_pair, paths):
        a, pa, da, ta = _read(src)
        b, pb, db, tb = _read(out)
        assert a.shape == b.shape and b.dtype == a.dtype
        assert pb["crs"] == pa["crs"] and pb["transform"] == pa["transform"]
        assert pb["nodata"] == pa["nodata"] == 0
        assert db == da and tb == ta
        exact = (a == 0) | (a > 32767)
        assert exact.any()
        np.testing.assert_array_equal(b[exact], a[exact])  # nodata + saturated: bit-exact
        assert not (b[~exact] == 0).any()                  # no new nodata invented
        assert np.abs(b.astype(int) - a.astype(int)).max() <= TOY_TOLERANCE


def test_arrays_bytes_and_files_agree(oscd_pair, tmp_path):
    toy = ToyCodec()
    blob = api.encode(oscd_pair, model=toy, tile_size=128)
    assert isinstance(blob, bytes)
    api.encode(oscd_pair, tmp_path / "s.tec", model=toy, tile_size=128)
    assert (tmp_path / "s.tec").read_bytes() == blob  # deterministic
    dec = api.decode(blob, model=toy)
    with rasterio.open(oscd_pair[0]) as ds:  # 408 x 390 in ../shared/data, cropped in the mirror
        assert dec.pixels.shape == (2, 4, ds.height, ds.width)
    assert dec.frame_names == ["img1_10m.tif", "img2_10m.tif"]
    assert dec.band_descriptions[0] == ["B02", "B03", "B04", "B08"]
    assert dec.timestamps == ["2016-11-30", "2017-11-07"] and dec.nodata == [0.0, 0.0]
    files = api.decode(blob, tmp_path / "o", model=toy)
    for k, p in enumerate(files):
        np.testing.assert_array_equal(_read(p)[0], np.asarray(dec)[k])


def test_partial_decode_reads_only_needed_tiles(oscd_pair, tmp_path, monkeypatch):
    toy = ToyCodec()
    api.encode(oscd_pair, tmp_path / "s.tec", model=toy, tile_size=64)
    full = api.decode(tmp_path / "s.tec", model=toy).pixels
    across = -(-full.shape[-1] // 64)  # tiles per row: 7 for the whole Paris, 3 in the mirror
    reads = []
    original = ContainerReader.read_tile
    monkeypatch.setattr(ContainerReader, "read_tile",
                        lambda self, f, t: reads.append((f, t)) or original(self, f, t))
    win = (70, 70, 60, 40)  # col_off, row_off, width, height: 2 x 1 tiles of 64 px
    part = api.decode(tmp_path / "s.tec", model=toy, frames=[1], window=win)
    assert sorted(reads) == [(1, 1 * across + 1), (1, 1 * across + 2)]
    np.testing.assert_array_equal(part.pixels[0], full[1, :, 70:110, 70:130])
    with rasterio.open(oscd_pair[1]) as ds:
        assert part.transform == ds.window_transform(rasterio.windows.Window(*win))
    out = api.decode(tmp_path / "s.tec", tmp_path / "w.tif", model=toy, frames=[1], window=win, cog=True)
    b, profile, _, _ = _read(out[0])
    np.testing.assert_array_equal(b, part.pixels[0])
    assert profile["transform"] == part.transform


def test_bands_are_matched_by_name_and_restored_in_file_order(oscd_pair, tmp_path):
    shuffled = copy_raster(oscd_pair[1], tmp_path / "shuffled.tif", band_order=[3, 0, 2, 1])
    toy = ToyCodec()
    a = api.decode(api.encode([shuffled], model=toy), model=toy)
    b = api.decode(api.encode([oscd_pair[1]], model=toy), model=toy)
    assert a.band_descriptions[0] == ["B08", "B02", "B04", "B03"]
    np.testing.assert_array_equal(a.pixels[0], b.pixels[0][[3, 0, 2, 1]])


def test_unmatchable_bands_are_refused(oscd_pair):
    with pytest.raises(InputError, match="lacks B05"):
        api.encode(oscd_pair, model=ToyCodec(band_names=("B02", "B03", "B04", "B05")))


def test_tiles_are_pure_functions_of_tile_and_model(shared_data):
    with rasterio.open(shared_data / "oscd_s2_l1c" / "paris" / "img1_10m.tif") as ds:
        px = ds.read()
    assert px.shape[1] >= 128 and px.shape[2] >= 192  # the tile compared below is inside
    across = -(-px.shape[2] // 64)  # tiles per row: 7 for the whole Paris, 3 in the mirror
    toy = ToyCodec()
    scene = api.encode(px, model=toy, tile_size=64, band_names=["B02", "B03", "B04", "B08"])
    alone = api.encode(px[:, 64:128, 128:192], model=toy, tile_size=64,
                       band_names=["B02", "B03", "B04", "B08"])
    with ContainerReader(scene) as r1, ContainerReader(alone) as r2:
        assert r1.read_tile(0, 1 * across + 2) == r2.read_tile(0, 0)


def test_float_nan_and_all_nodata_tiles_come_back_exactly():
    rng = np.random.default_rng(3)
    px = rng.normal(1500, 300, (2, 4, 40, 50)).astype(np.float32)
    px[0, 1, 3, 4] = np.nan
    px[1, :, :16, :16] = -9999.0  # one whole tile of nodata
    px[1, 2, 30, 30] = np.inf
    toy = ToyCodec()
    blob = api.encode(px, model=toy, tile_size=16, nodata=-9999.0)
    with ContainerReader(blob) as r:
        assert r.read_tile(1, 0).flags & FLAG_EXACT_ONLY and r.read_tile(1, 0).code == b""
    out = api.decode(blob, model=toy).pixels
    assert np.isnan(out[0, 1, 3, 4]) and np.isnan(out).sum() == 1
    assert (out[1, :, :16, :16] == -9999.0).all() and out[1, 2, 30, 30] == np.inf
    finite = np.isfinite(px) & (px != -9999.0)
    assert np.abs(out[finite] - px[finite]).max() <= 10.01


def test_other_weights_are_refused(oscd_pair):
    blob = api.encode(oscd_pair, model=ToyCodec())
    with pytest.raises(ModelError, match="weights"):
        api.decode(blob, model=ToyCodec(step=0.05))


def test_bad_requests(oscd_pair, tmp_path):
    toy = ToyCodec()
    blob = api.encode(oscd_pair, model=toy)
    with pytest.raises(InputError, match="outside"):
        api.decode(blob, model=toy, window=(300, 0, 100, 10))
    with pytest.raises(InputError, match="outside"):
        api.decode(blob, model=toy, frames=[2])
    with pytest.raises(InputError, match="one frame"):
        api.decode(blob, tmp_path / "x.tif", model=toy)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(InputError, match="not a directory"):  # under a file
        api.encode(oscd_pair, tmp_path / "file" / "x.tec", model=toy)
    with pytest.raises(InputError, match="no such file"):
        api.decode(tmp_path / "none.tec", model=toy)
    with pytest.raises(InputError, match="timestamps"):
        api.encode(oscd_pair, model=toy, timestamps=["2020-01-01"])
    with pytest.raises(CorruptStreamError):
        api.decode(blob[:-1], model=toy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "img1_10m.tif", "img2_10m.tif"]


def test_unsafe_frame_names_stay_inside_the_output_directory(tmp_path):
    px = np.full((2, 4, 16, 16), 1000, np.uint16)
    toy = ToyCodec()
    blob = api.encode(px, model=toy, frame_names=["../../evil.tif", "sub/evil.tif"])
    paths = api.decode(blob, tmp_path / "out", model=toy)
    assert all(p.parent == tmp_path / "out" for p in paths)
    assert sorted(p.name for p in paths) == ["000_evil.tif", "001_evil.tif"]


def test_top_level_reexports():
    assert terracodec.encode is api.encode and terracodec.decode is api.decode
    assert terracodec.info is api.info


def test_real_model_decode_does_not_depend_on_thread_count():
    """Same stream, 1 vs 2 torch threads: identical pixels (decoding is bit-exact everywhere)."""
    import torch

    pytest.importorskip("terracodec.zoo")
    from pathlib import Path

    sample = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))[:2]
    blob = api.encode(sample, model="tec-fp-tiny", tile_size=64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = api.decode(blob).pixels
        torch.set_num_threads(2)
        two = api.decode(blob).pixels
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    assert api.encode(sample, model="tec-fp-tiny", tile_size=64) == blob  # encoding is deterministic here
