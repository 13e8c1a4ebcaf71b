"""Smoke test of benchmarks/consumers.py's pieces on real EuroSAT patches: latent pooling, rate
from file sizes, JPEG2000 rate matching, TerraFM band order and the OSCD cell labels."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PATCHES = ("train/Forest/Forest_", "train/SeaLake/SeaLake_", "train/Industrial/Industrial_")


@pytest.fixture(scope="module")
def bench():
    pytest.importorskip("imagecodecs")
    pytest.importorskip("sklearn")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _consumers_tools
        import consumers
    finally:
        sys.path.remove(str(BENCHMARKS))
    return consumers, _consumers_tools


@pytest.fixture(scope="module")
def patches(shared_data):
    import csv

    import rasterio

    root = shared_data / "eurosat_ms_subset"
    if not (root / "labels.csv").is_file():
        pytest.skip("the EuroSAT subset of ../shared/data is not here")
    with (root / "labels.csv").open(newline="") as fh:
        paths = [r["path"] for r in csv.DictReader(fh)]
    chosen = [root / next(p for p in sorted(paths) if p.startswith(prefix)) for prefix in PATCHES]
    out = []
    for p in chosen:
        with rasterio.open(p) as ds:
            out.append((p, ds.read(), list(ds.descriptions)))
    return out


def test_latent_pooling_rate_and_jpeg2000_match(bench, patches, tmp_path):
    import terracodec
    from terracodec.bench.classical import Jpeg2000

    consumers, tools = bench
    feats, j2k = [], Jpeg2000(threads=1)
    for k, (path, x, _) in enumerate(patches):
        tec = tmp_path / f"p{k}.tec"
        decoded, latents, nbytes, payload = consumers.code_tec(path, tec, 3)
        assert decoded.shape == x.shape and decoded.dtype == x.dtype
        h, w = x.shape[1:]
        assert latents.shape == (96, -(-h // 16), -(-w // 16)) and np.isfinite(latents).all()
        # bpppb from the real file size, header included; the payload is the smaller part
        assert nbytes == tec.stat().st_size and 0 < payload < nbytes
        assert tools.bpppb(nbytes, x.shape) == pytest.approx(8 * nbytes / x.size)
        assert tools.bpppb(nbytes, x.shape) == pytest.approx(terracodec.info(tec)["bpppb"])
        f = tools.latent_stats(latents)
        assert f.shape == (192,)
        np.testing.assert_allclose(f[:96], latents.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
        feats.append(f)
        # JPEG2000 at the .tec file's size, within the tolerance, and a decodable stream
        tried: dict[float, int] = {}
        m = tools.match_rate(lambda lv: j2k.encode(x, lv), nbytes, tried=tried)
        assert abs(m["ratio"] - 1) <= tools.RATE_TOL, (m, tried)
        assert m["bytes"] == len(m["data"]) and m["trials"] <= len(tried)
        assert j2k.decode(m["data"]).shape == x.shape
    # the latent features separate the classes: forest, water and industry are far apart
    d = [np.linalg.norm(feats[i] - feats[j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert min(d) > 0.1 * np.linalg.norm(feats[0])


def test_pixel_features_band_order_and_cells(bench, patches):
    _, tools = bench
    _, x, names = patches[0]
    stats = tools.band_stats(x)
    assert stats.shape == (2 * x.shape[0],)
    assert stats[0] == pytest.approx(x[0].mean() / 10000) and stats[x.shape[0]] == pytest.approx(x[0].std() / 10000)
    order = tools.terrafm_order(names)  # EuroSAT keeps B8A last; TerraFM wants it after B08, no B10
    assert [names[i] for i in order][7:10] == ["B08", "B8A", "B09"] and "B10" not in [names[i] for i in order]
    stack = np.stack([x for _, x, _ in patches])
    assert tools.band_stats(stack).shape == (len(patches), 2 * x.shape[0])
    # cells: >= 5 % of a 16 x 16 cell's pixels (13 of 256) make it "changed"
    mask = np.ones((32, 48), np.uint8)
    mask[:13, 0] = 2  # cell (0, 0): 13 px
    mask[16:28, 16] = 2  # cell (1, 1): 12 px
    np.testing.assert_array_equal(tools.cell_labels(mask, 2, 3), [[1, 0, 0], [0, 0, 0]])
    grid = tools.cell_pixel_features(x, x, 4, 4)
    assert grid.shape == (6 * x.shape[0], 4, 4)
    np.testing.assert_allclose(grid[4 * x.shape[0]:], 0)  # no difference between identical dates
