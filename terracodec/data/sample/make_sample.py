"""Rebuild the bundled sample from ../shared/data/eolearn_reference_scenes (see LICENSE.md).

eo-learn's REFERENCE_SCENES.npy holds 5 dates of Sentinel-2 L1C TOA reflectance (float, DN/10000)
over 1 km x 1 km in Slovenia, bands in Sentinel Hub order. We write one GeoTIFF per date in
time order: uint16 DN (reflectance x 10000, rounded), EPSG:32633 grid from bbox.geojson, band
descriptions, and the acquisition date in the DATE tag (what `tec encode` reads as timestamp).

    python terracodec/data/sample/make_sample.py ../shared/data/eolearn_reference_scenes
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_bounds

BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def main(source: Path, target: Path) -> None:
    scenes = np.load(source / "REFERENCE_SCENES.npy")  # [T, H, W, C] float32 reflectance
    stamps = json.loads((source / "timestamps.json").read_text())["REFERENCE_SCENES_index_to_timestamp"]
    ring = json.loads((source / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    t, h, w, c = scenes.shape
    transform = from_bounds(min(xs), min(ys), max(xs), max(ys), w, h)
    for i in np.argsort(stamps):  # time order
        stamp = stamps[i]
        dn = np.clip(np.rint(scenes[i].astype(np.float64) * 10000), 1, 65534).astype(np.uint16)
        path = target / f"S2L1C_{stamp[:10].replace('-', '')}.tif"
        with rasterio.open(
            path, "w", driver="GTiff", height=h, width=w, count=c, dtype="uint16",
            crs="EPSG:32633", transform=transform, nodata=0, compress="deflate", predictor=2,
        ) as ds:
            ds.write(dn.transpose(2, 0, 1))
            ds.descriptions = BANDS
            ds.update_tags(
                DATE=stamp[:10].replace("-", ""), DATETIME=stamp, LEVEL="L1C",
                SENSOR="Sentinel-2 MSI", SOURCE="eo-learn REFERENCE_SCENES.npy", BANDS=",".join(BANDS),
            )
        print(path, path.stat().st_size)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent)
