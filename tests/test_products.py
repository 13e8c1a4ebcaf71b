"""Sentinel-2 products (SAFE folders and zips) as input, and the model chosen for an input.

The products are small but structurally real: real band data at native resolutions written as
JPEG2000 through rasterio, with a minimal valid MTD_MSIL1C/2A.xml (tests/_products.py)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from _products import oscd_bands, terramind_l2a_bands, write_product
from click.testing import CliRunner

import terracodec
from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.errors import InputError
from terracodec.io.meta import FrameMeta
from terracodec.io.raster import read_stack
from terracodec.io.safe import is_product, read_product
from terracodec.zoo.choice import choose_model


@pytest.fixture(scope="module")
def products(shared_data, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("products")
    city = shared_data / "oscd_s2_l1c" / "bercy"
    a1, t1, crs = oscd_bands(city, 1)
    a2, t2, _ = oscd_bands(city, 2)
    l2a = terramind_l2a_bands(shared_data / "terramind_examples" / "S2L2A" / "282D_485L_3_3.tif")
    return {
        "city": city,
        "l1c": write_product(root / "a", "L1C", a1, t1, crs, sensing="2016-11-30T10:50:31.026Z"),
        "l1c_later": write_product(root / "b", "L1C", a2, t2, crs, sensing="2017-08-29T10:50:31.026Z"),
        "l1c_offset_zip": write_product(root / "c", "L1C", a1, t1, crs, sensing="2022-03-01T10:50:31.026Z",
                                        baseline="04.00", add_offset=-1000, as_zip=True),
        "l2a_zip": write_product(root / "d", "L2A", *l2a, as_zip=True),
        "l2a_arrays": l2a,
    }


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


def test_products_are_recognised_folder_and_zip(products):
    assert is_product(products["l1c"]) and is_product(products["l2a_zip"])
    assert not is_product(products["city"] / "img1_10m.tif") and not is_product(products["city"])
    p = read_product(products["l2a_zip"])
    assert p.level == "L2A" and p.bands == list(S2_L2A_BANDS)
    # native resolutions only: B01 from R60m, B05 from R20m (the product's R60m copy is ignored)
    assert p.files[0].endswith("_B01_60m.jp2") and p.files[4].endswith("_B05_20m.jp2")
    assert p.files[0].startswith("/vsizip/{")


def test_l1c_product_codes_like_its_band_files(products, tmp_path):
    """The product path and the GeoTIFF path (--frame of OSCD's 10/20/60 m files) give the same
    bands in the same order on the same grid: the same decoded pixels."""
    city = products["city"]
    code, out = _run(["encode", str(products["l1c"]), "-o", str(tmp_path / "p.tec"), "--tile-size", "256"])
    assert code == 0, out
    assert "tec-elic-s2l1c" in out and "chosen for L1C 13 bands" in out
    frame = [str(city / f"img1_{r}.tif") for r in ("10m", "20m", "60m")]
    # nodata 0 as the product says (valid pixels are then kept off 0)
    terracodec.encode([frame], tmp_path / "g.tec", tile_size=256, model="tec-elic-s2l1c", nodata=0)
    from_product, from_files = terracodec.decode(tmp_path / "p.tec"), terracodec.decode(tmp_path / "g.tec")
    with rasterio.open(city / "img1_10m.tif") as ds:
        assert from_product.pixels.shape == (1, 13, ds.height, ds.width)
        assert from_product.transform.almost_equals(ds.transform)
    assert from_product.band_descriptions[0] == list(S2_L1C_BANDS)
    order = [list(from_files.band_descriptions[0]).index(b) for b in S2_L1C_BANDS]
    np.testing.assert_array_equal(from_product.pixels, from_files.pixels[:, order])


def test_l2a_zip_keeps_metadata_and_grid(products, tmp_path):
    code, out = _run(["encode", str(products["l2a_zip"]), "-o", str(tmp_path / "l2a.tec")])
    assert code == 0, out
    assert "tec-fp-s2l2a" in out and "chosen for L2A 12 bands" in out
    d = terracodec.info(tmp_path / "l2a.tec")
    assert d["bands"] == 12 and (d["width"], d["height"]) == (216, 216)
    assert d["frame_info"][0]["timestamp"] == "2017-06-21T10:50:31.026Z"
    code, out = _run(["decode", str(tmp_path / "l2a.tec"), "-o", str(tmp_path / "out")])
    assert code == 0, out
    (tif,) = (tmp_path / "out").glob("*.tif")
    assert tif.name.startswith("S2A_MSIL2A_20170621") and tif.name.endswith(".tif")
    arrays, transforms, _ = products["l2a_arrays"]
    with rasterio.open(tif) as ds:
        tags = ds.tags()
        assert tags["MGRS_TILE"] == "31UDQ" and tags["PROCESSING_LEVEL"] == "L2A"
        assert tags["PRODUCT_URI"].endswith(".SAFE") and tags["SENSING_TIME"].startswith("2017-06-21")
        assert tags["PROCESSING_BASELINE"] == "02.05" and tags["QUANTIFICATION_VALUE"] == "10000"
        assert list(ds.descriptions) == list(S2_L2A_BANDS) and ds.nodata == 0
        assert ds.transform.almost_equals(transforms["B02"])
        decoded = ds.read()
    for i, b in enumerate(S2_L2A_BANDS):  # each band in its place (10 m bands directly)
        if transforms[b] == transforms["B02"]:
            assert np.corrcoef(decoded[i].ravel(), arrays[b].ravel())[0, 1] > 0.9, b


def test_products_of_one_tile_are_a_series(products, tmp_path):
    out = tmp_path / "series.tec"
    code, text = _run(["encode", str(products["l1c"]), str(products["l1c_later"]), "-o", str(out),
                       "--tile-size", "256", "-q"])
    assert code == 0, text
    frames = terracodec.info(out)["frame_info"]
    assert [f["timestamp"][:10] for f in frames] == ["2016-11-30", "2017-08-29"]


def test_baseline_offset_from_product_metadata(products, tmp_path):
    code, out = _run(["encode", str(products["l1c_offset_zip"]), "-o", str(tmp_path / "o.tec"), "--tile-size", "256"])
    assert code == 0, out
    (frame,) = terracodec.info(tmp_path / "o.tec")["frame_info"]
    assert frame["dn_offset"] == 1000  # baseline 04.00 in the product metadata


def test_broken_products_are_one_line(products, tmp_path):
    broken = tmp_path / "broken.SAFE"
    broken.mkdir()
    (broken / "MTD_MSIL1C.xml").write_text("<not xml")
    code, out = _run(["encode", str(broken), "-o", str(tmp_path / "x.tec")])
    assert code != 0 and out.strip().startswith("error:") and len(out.strip().splitlines()) == 1
    assert "malformed product metadata" in out
    # metadata that lists no band files
    (broken / "MTD_MSIL1C.xml").write_text("<a><PRODUCT_URI>x.SAFE</PRODUCT_URI></a>")
    code, out = _run(["encode", str(broken), "-o", str(tmp_path / "x.tec")])
    assert code != 0 and "lists no file for band(s) B01" in out
    # a zip whose band file is missing
    src = products["l2a_zip"]
    cut = tmp_path / "cut.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(cut, "w") as zout:
        for item in zin.infolist():
            if not item.filename.endswith("_B03_10m.jp2"):
                zout.writestr(item, zin.read(item.filename))
    code, out = _run(["encode", str(cut), "-o", str(tmp_path / "x.tec")])
    assert code != 0 and out.strip().startswith("error:") and "B03_10m" in out
    assert not (tmp_path / "x.tec").exists()


def _meta(bands, **tags) -> FrameMeta:
    return FrameMeta("f.tif", descriptions=list(bands), tags=dict(tags))


@pytest.mark.parametrize("bands, tags, model", [
    (S2_L1C_BANDS, {}, "tec-elic-s2l1c"),
    (S2_L2A_BANDS, {}, "tec-fp-s2l2a"),
    (S2_L2A_BANDS, {"LEVEL": "L1C"}, "tec-elic-s2l2a"),
    (S2_L2A_BANDS, {"PRODUCT_TYPE": "S2MSI2A"}, "tec-fp-s2l2a"),
    ([None] * 13, {}, "tec-elic-s2l1c"),
    ([None] * 12, {"s2:processing_level": "Level-1C"}, "tec-elic-s2l2a"),
    (["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"], {}, "tec-elic-s2l2a"),
])
def test_the_model_that_fits_the_input(bands, tags, model):
    assert choose_model([_meta(bands, **tags)]).model == model


@pytest.mark.parametrize("bands, tags, frames, model", [
    (S2_L2A_BANDS, {}, 2, "tec-tt-s2l2a"),
    (S2_L2A_BANDS, {}, 1, "tec-fp-s2l2a"),
    (S2_L2A_BANDS, {"LEVEL": "L1C"}, 2, "tec-tt-s2l2a"),
    (["B02", "B03", "B04", "B08", "B11", "B12"], {}, 3, "tec-tt-s2l2a"),  # fordead's 6 bands
    (S2_L1C_BANDS, {}, 2, "tec-tt-s2l1c"),
    (S2_L1C_BANDS, {}, 1, "tec-elic-s2l1c"),
])
def test_a_series_gets_the_temporal_model_where_it_wins(bands, tags, frames, model):
    assert choose_model([_meta(bands, **tags)] * frames).model == model


def test_cloud_aware_coding_gets_a_temporal_model_even_for_one_frame():
    assert choose_model([_meta(S2_L1C_BANDS)], temporal=True).model == "tec-tt-s2l1c"
    assert choose_model([_meta(S2_L2A_BANDS)], temporal=True).model == "tec-tt-s2l2a"


def test_no_model_fits_is_one_clear_error():
    with pytest.raises(InputError, match="no shipped model codes 5 bands"):
        choose_model([_meta([None] * 5)])
    with pytest.raises(InputError, match="no shipped model codes 5 bands of L2A"):
        choose_model([_meta(["B02", "B03", "B04", "B08", "B11"])])
    with pytest.raises(InputError, match="mix product levels"):
        choose_model([_meta(S2_L1C_BANDS), _meta(S2_L2A_BANDS)])


def test_l2a_geotiff_without_model(shared_data, tmp_path):
    """A new user's 12-band L2A GeoTIFF without --model: coded, not refused for lacking B10."""
    src = shared_data / "terramind_examples" / "S2L2A" / "282D_485L_3_3.tif"
    code, out = _run(["encode", str(src), "-o", str(tmp_path / "l2a.tec")])
    assert code == 0, out
    assert "(tec-fp-s2l2a, quality 3; chosen for L2A 12 bands, by its band names)" in out
    assert json.loads(json.dumps(terracodec.info(tmp_path / "l2a.tec")))["model"] == "tec-fp-s2l2a"


def test_stack_of_products_pickles_without_handles(products):
    import pickle

    stack = read_stack([products["l2a_zip"]])
    with stack:
        first = stack.read(0, 0, 0, 16, 16)
        again = pickle.loads(pickle.dumps(stack))
        np.testing.assert_array_equal(again.read(0, 0, 0, 16, 16), first)
        again.close()


def test_archive_of_products(products, tmp_path):
    """`tec archive` finds SAFE folders and zips (never searching inside a product) and names
    each stream after its product."""
    import shutil

    src = tmp_path / "src"
    (src / "zips").mkdir(parents=True)
    shutil.copytree(products["l1c"], src / products["l1c"].name)
    shutil.copy(products["l2a_zip"], src / "zips" / products["l2a_zip"].name)
    out = tmp_path / "out"
    code, text = _run(["archive", str(src), "--out", str(out), "-q"])
    assert code == 0, text
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*.tec"))
    l1c_name = products["l1c"].name.removesuffix(".SAFE")
    l2a_name = products["l2a_zip"].name.removesuffix(".SAFE.zip")
    assert names == sorted([f"{l1c_name}.tec", f"zips/{l2a_name}.tec"])
    models = {json.loads(line)["model"] for line in (out / "manifest.jsonl").read_text().splitlines()}
    assert models == {"tec-elic-s2l1c", "tec-fp-s2l2a"}
    # a product given directly as SRC
    code, text = _run(["archive", str(products["l1c"]), "--out", str(tmp_path / "one"), "-q"])
    assert code == 0 and (tmp_path / "one" / f"{l1c_name}.tec").exists()
