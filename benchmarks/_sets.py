"""The benchmark data sets (from ../shared/data, see its MANIFEST.md): where each lies and how
it is read into `terracodec.bench.data.Sample`s, and which of them the shipped models trained on.

Held-out Level-2A sets (never trained on by any shipped model; the training inputs are listed
in docs/MODELS.md): two TerraMesh L2A scenes, the six BigEarthNet L2A patches, WorldCereal site
0000280849BAC91C (clear dates) and the four iota2 Theia L2A stacks. The last two have 10 bands
(no B01, B09): models trained on band subsets code them as they are (`terracodec.centring`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

import numpy as np

from _common import SHARED_DATA, eolearn_series, oscd_test_series
from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS

L1C, L2A = list(S2_L1C_BANDS), list(S2_L2A_BANDS)
ALL = "all"
STILL = ["jpeg2000", "htj2k", "jpegxl", "avif"]
#: TerraMesh L2A scenes kept out of training (the other three are training inputs).
TERRAMIND_HELD_OUT = ("609U_541L_3_0", "637U_59R_1_3")
#: The WorldCereal site kept out of training.
WORLDCEREAL_HELD_OUT = "0000280849BAC91C"


def _folder(sub: str, bands: list[str], crop: int | None) -> list[Any]:
    from terracodec.bench import load_inputs

    return load_inputs([SHARED_DATA / sub], bands=bands, crop=crop)


def _files(paths: list[Path], bands: list[str] | None, crop: int | None) -> list[Any]:
    from terracodec.bench import load_inputs

    return load_inputs(paths, bands=bands, crop=crop)


def _sample(name: str, found: dict[str, np.ndarray], crop: int | None) -> Any:
    """A one-frame sample of the bands in `found` (L2A order) on their finest grid."""
    from terracodec.bench.data import Sample, center_crop
    from terracodec.training.data import on_finest_grid

    names = [b for b in L2A if b in found]
    px = on_finest_grid(found, names).astype(np.uint16)[None]
    return Sample(name, center_crop(px, crop) if crop else px, names)


def bigearthnet(crop: int | None) -> list[Any]:
    """The six BigEarthNet L2A patches (one GeoTIFF per band; 20/60 m bands resampled to 10 m)."""
    import rasterio

    out = []
    for d in sorted((SHARED_DATA / "bigearthnet_examples" / "BigEarthNet-S2-Example").iterdir()):
        found = {}
        for b in L2A:
            with rasterio.open(d / f"{d.name}_{b}.tif") as ds:
                found[b] = ds.read(1).astype(np.int32)
        out.append(_sample(d.name, found, crop))
    return out


def worldcereal_held_out(crop: int | None) -> list[Any]:
    """WorldCereal's held-out site, every date the SCL table calls at least 95 % clear, 10 bands
    (10 m and 20 m groups, the 20 m bands resampled to 10 m)."""
    import rasterio

    site = SHARED_DATA / "worldcereal_s2l2a_dense_ts" / WORLDCEREAL_HELD_OUT
    with (site / "s2_dates.csv").open(newline="") as fh:
        clear = [r["datetime"] for r in csv.DictReader(fh) if float(r["clear_fraction_scl"]) >= 0.95]
    stacks: dict[str, dict[str, np.ndarray]] = {d: {} for d in clear}
    for group in ("s2_l2a_10m.tif", "s2_l2a_20m.tif"):
        with rasterio.open(site / group) as ds:
            for i, text in enumerate(ds.descriptions, start=1):
                date, band = text.rsplit(" ", 1)
                if date in stacks:
                    stacks[date][band] = ds.read(i).astype(np.int32)
    return [_sample(f"{WORLDCEREAL_HELD_OUT}@{d[:10]}", found, crop)
            for d, found in stacks.items() if (min(a.min() for a in found.values()) > 0)]


def iota2(crop: int | None) -> list[Any]:
    """The four iota2 Theia L2A FRE stacks (10 bands, 256 x 256, band names in the files)."""
    return _files(sorted((SHARED_DATA / "iota2_theia_l2a_T38K_3dates").glob("*.tif")), None, crop)


SETS: dict[str, dict[str, Any]] = {
    "oscd13": {
        "title": "OSCD test cities (10), both dates as 2-frame series, 13 bands L1C",
        "load": lambda crop: oscd_test_series(L1C, crop), "codecs": ALL, "series": True, "level": "L1C",
    },
    "oscd12": {
        "title": "OSCD test cities (10), both dates, 12 bands (L1C without B10)",
        "load": lambda crop: oscd_test_series(L2A, crop), "codecs": ["jpeg2000", "htj2k"], "series": True,
        "level": "L1C",
    },
    "terramind_l1c": {
        "title": "TerraMesh examples (5 x 224^2), S2 L1C, 13 bands",
        "load": lambda crop: _folder("terramind_examples/S2L1C", L1C, crop), "codecs": STILL, "level": "L1C",
    },
    "terramind_l2a": {
        "title": "TerraMesh examples (5 x 224^2), S2 L2A, 12 bands (3 of them are training inputs "
                 "of the L2A models)",
        "load": lambda crop: _folder("terramind_examples/S2L2A", L2A, crop), "codecs": STILL, "level": "L2A",
    },
    "terramind_l2a_heldout": {
        "title": "TerraMesh L2A scenes kept out of training (609U: snow and cloud; 637U), 12 bands",
        "load": lambda crop: _files([SHARED_DATA / "terramind_examples" / "S2L2A" / f"{s}.tif"
                                     for s in TERRAMIND_HELD_OUT], L2A, crop),
        "codecs": ["jpeg2000", "htj2k"], "level": "L2A", "held_out": True,
    },
    "bigearthnet_l2a": {
        "title": "BigEarthNet L2A patches (6 x 120^2, 20/60 m bands resampled), 12 bands",
        "load": bigearthnet, "codecs": ["jpeg2000", "htj2k"], "level": "L2A", "held_out": True,
    },
    "worldcereal_l2a_heldout": {
        "title": f"WorldCereal site {WORLDCEREAL_HELD_OUT} (Brabant), clear dates, 64^2, 10 bands "
                 "(no B01, B09)",
        "load": worldcereal_held_out, "codecs": ["jpeg2000"], "level": "L2A", "held_out": True,
    },
    "iota2_l2a": {
        "title": "iota2 Theia L2A FRE stacks (Madagascar, 4 x 256^2), 10 bands (no B01, B09)",
        "load": iota2, "codecs": ["jpeg2000", "htj2k"], "level": "L2A", "held_out": True,
    },
    "sen1floods11": {
        "title": "Sen1Floods11 S2 chip (Spain), L1C, 13 bands",
        # The file has no band descriptions; MANIFEST.md documents the L1C order.
        "load": lambda crop: _files([SHARED_DATA / "sen1floods11_sample/Spain_7370579_S2Hand.tif"], L1C, crop),
        "codecs": STILL, "level": "L1C",
    },
    "eolearn_series": {
        "title": "eo-learn reference scenes: 5-date L1C series (101 x 100), 13 bands",
        "load": lambda crop: eolearn_series(L1C, crop), "codecs": ["jpeg2000", "hevc", "av1"],
        "series": True, "level": "L1C",
    },
}

#: Sets whose worst BD-rate the summary line reports (held-out Level-2A).
HELD_OUT_L2A = [k for k, v in SETS.items() if v.get("held_out") and v["level"] == "L2A"]

Loader = Callable[[int | None], list[Any]]
