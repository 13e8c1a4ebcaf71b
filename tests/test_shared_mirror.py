"""tests/data/shared, the mirror of the files of ../shared/data that the tests read: complete,
documented, consistent, and (where ../shared/data is present) an exact window of each source."""

from __future__ import annotations

import importlib.util
import re
import sys
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from conftest import SHARED_DATA, SHARED_MIRROR


def _mirror_script():
    spec = importlib.util.spec_from_file_location("make_mirror", SHARED_MIRROR / "make_mirror.py")
    module = importlib.util.module_from_spec(spec)
    write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the mirror
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = write
    return module


FILES = _mirror_script().FILES
RASTERS = [(rel, win) for rel, win in FILES if rel.endswith(".tif")]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)  # OSCD change masks have no CRS
        yield


def test_every_listed_file_is_there_and_nothing_else():
    listed = {rel for rel, _ in FILES} | {"make_mirror.py", "LICENSE.md"}
    present = {p.relative_to(SHARED_MIRROR).as_posix() for p in SHARED_MIRROR.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert present == listed
    total = sum((SHARED_MIRROR / rel).stat().st_size for rel in listed)
    assert total < 5_000_000, total  # the mirror stays small


def test_the_licence_file_names_every_source_folder_and_crop():
    text = (SHARED_MIRROR / "LICENSE.md").read_text()
    for rel, win in FILES:
        assert f"`{rel.split('/')[0]}/`" in text, rel
        if rel.startswith("oscd_s2_l1c/"):  # cities and dates are listed as {a,b,c}
            city, name = rel.split("/")[1:]
            assert city in text and re.sub(r"^img\d_", "img{1,2}_", name) in text, rel
        else:
            assert f"`{rel}`" in text, rel
        if win is not None:
            assert f"{win[2]} × {win[3]} from ({win[0]}, {win[1]})" in text, rel


@pytest.mark.parametrize("city", ["paris", "bercy", "norcia"])
@pytest.mark.parametrize("date", [1, 2])
def test_oscd_resolution_groups_cover_one_extent(city, date):
    folder = SHARED_MIRROR / "oscd_s2_l1c" / city
    with rasterio.open(folder / f"img{date}_10m.tif") as ten:
        ref, res, day = ten.bounds, ten.res[0], ten.tags()["DATE"]
        assert ten.tags()["LEVEL"] == "L1C" and ten.crs.to_epsg() == 4326
        assert list(ten.descriptions) == ten.tags()["BANDS"].split(",") == ["B02", "B03", "B04", "B08"]
        for name, factor in (("20m", 2), ("60m", 6)):
            with rasterio.open(folder / f"img{date}_{name}.tif") as ds:
                assert (ds.height * factor, ds.width * factor) == (ten.height, ten.width)
                assert ds.crs == ten.crs and ds.dtypes == (ten.dtypes[0],) * ds.count
                assert list(ds.descriptions) == ds.tags()["BANDS"].split(",")
                assert ds.tags()["DATE"] == day
                assert np.allclose(tuple(ds.bounds), tuple(ref), atol=res)  # within a 10 m pixel
    dates = (folder / "dates.txt").read_text().split()
    assert day == dates[1 if date == 1 else 3]  # "date_1: YYYYMMDD date_2: YYYYMMDD"


def test_mirror_files_are_exact_windows_of_their_sources():
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present: the mirror's provenance cannot be checked")
    for rel, window in RASTERS:
        with rasterio.open(SHARED_DATA / rel) as src, rasterio.open(SHARED_MIRROR / rel) as got:
            r, c, h, w = window if window is not None else (0, 0, src.height, src.width)
            win = Window(c, r, w, h)
            np.testing.assert_array_equal(got.read(), src.read(window=win), err_msg=rel)
            assert (got.count, got.dtypes, got.crs, got.nodata) == (src.count, src.dtypes, src.crs, src.nodata), rel
            if src.crs is not None:
                assert got.transform == src.window_transform(win), rel
            assert got.descriptions == src.descriptions and got.tags() == src.tags(), rel
            assert [got.tags(i) for i in range(1, got.count + 1)] == [src.tags(i) for i in range(1, src.count + 1)]
            structure = got.tags(ns="IMAGE_STRUCTURE")
            assert structure["COMPRESSION"] == "DEFLATE", rel
            if np.issubdtype(np.dtype(got.dtypes[0]), np.integer):
                assert structure.get("PREDICTOR") == "2", rel
    for rel, _ in FILES:  # text files: unchanged copies
        if not rel.endswith(".tif"):
            assert (SHARED_MIRROR / rel).read_bytes() == (SHARED_DATA / rel).read_bytes(), rel
