"""Peak memory and throughput of `tec encode` + `tec decode` on a large scene.

The scene is a mosaic of real Sentinel-2 L1C crops (OSCD, all 13 bands; 20 m and 60 m bands
repeated to 10 m) packed side by side into one N x N x 13 uint16 GeoTIFF (default N = 4096;
`--size 10980` for a full Sentinel-2 tile), with a no-data swath edge (0) in one corner as in
real L1C tiles. Encode and decode each run in a fresh child process so that the peak resident
memory (`ru_maxrss`) is theirs alone. Writes `benchmarks/results/large_scene.md`; the last line
printed is `summary: peak_mb=<x> mpix_per_s=<x>` (encode + decode throughput in megapixels of
the H x W grid per second, all bands included).

    python benchmarks/large_scene.py [--size 4096] [--model tec-fp-tiny] [--tile-size 512]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "oscd_s2_l1c"
RESULTS = Path(__file__).resolve().parent / "results" / "large_scene.md"
L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def _city_13_bands(city: Path, date: int) -> np.ndarray:
    """[13, H, W] uint16 of one OSCD image, every band at 10 m (nearest-neighbour repeat)."""
    import rasterio

    bands: dict[str, np.ndarray] = {}
    shape = None
    for res, factor in (("10m", 1), ("20m", 2), ("60m", 6)):
        with rasterio.open(city / f"img{date}_{res}.tif") as ds:
            px = ds.read()
            names = ds.descriptions
        if factor > 1:
            px = px.repeat(factor, axis=1).repeat(factor, axis=2)
        for name, band in zip(names, px):
            bands[name] = band
        shape = band.shape if shape is None else (min(shape[0], band.shape[0]), min(shape[1], band.shape[1]))
    h, w = shape
    return np.stack([bands[b][:h, :w] for b in L1C])


def build_scene(path: Path, size: int) -> dict:
    """Shelf-pack OSCD crops (both dates of every city, repeated) into a size x size mosaic."""
    import rasterio
    from rasterio.transform import from_origin

    cities = sorted(p for p in DATA.iterdir() if (p / "img1_10m.tif").exists())
    crops = [(c, d) for c in cities for d in (1, 2)]
    profile = dict(
        driver="GTiff", height=size, width=size, count=13, dtype="uint16", nodata=0,
        crs="EPSG:32633", transform=from_origin(399960.0, 5100000.0, 10.0, 10.0),
        tiled=True, blockxsize=512, blockysize=512, compress="deflate", predictor=2, BIGTIFF="IF_SAFER",
    )
    used = 0
    with rasterio.open(path, "w", **profile) as ds:
        ds.descriptions = L1C
        row, k = 0, 0
        while row < size:
            col, shelf_h = 0, 0
            pieces = []
            while col < size:
                city, date = crops[k % len(crops)]
                k += 1
                px = _city_13_bands(city, date)
                pieces.append((col, px))
                col += px.shape[2]
                shelf_h = max(shelf_h, px.shape[1])
            shelf_h = min(shelf_h, size - row)
            shelf = np.zeros((13, shelf_h, size), np.uint16)
            for c0, px in pieces:
                h, w = min(px.shape[1], shelf_h), min(px.shape[2], size - c0)
                shelf[:, :h, c0 : c0 + w] = px[:, :h, :w]
                # crops shorter than the shelf: mirror them down so there is no artificial flat area
                if h < shelf_h:
                    fill = np.flip(px[:, :h, :w], axis=1)
                    reps = math.ceil((shelf_h - h) / h)
                    shelf[:, h:shelf_h, c0 : c0 + w] = np.concatenate([fill] * reps, axis=1)[:, : shelf_h - h]
            # a no-data swath edge: a triangle in the top-left corner (about 2 % of the scene)
            rows = np.arange(row, row + shelf_h)[:, None]
            cols = np.arange(size)[None, :]
            shelf[shelf == 0] = 1  # a real 0 DN would read as no-data
            shelf[:, (rows + cols) < size // 5] = 0
            ds.write(shelf, window=((row, row + shelf_h), (0, size)))
            row += shelf_h
            used += len(pieces)
    return {"crops_used": used, "distinct_crops": len(crops), "bytes": path.stat().st_size}


def _child(stage: str, scene: Path, stream: Path, decoded: Path, model: str, tile: int) -> None:
    """One stage in this (fresh) process; prints a JSON line with its time and peak memory."""
    import torch

    from terracodec import api

    torch.set_num_threads(int(os.environ.get("TEC_THREADS", torch.get_num_threads())))
    t0 = time.perf_counter()
    if stage == "encode":
        api.encode([scene], stream, model=model, tile_size=tile)
    else:
        api.decode(stream, decoded)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"stage": stage, "seconds": seconds, "peak_mb": peak_kb / 1024}))


def _run_stage(stage: str, *args: str) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _check(scene: Path, decoded: Path) -> dict:
    """Same grid, nodata exact, PSNR-10k over valid pixels (read in strips)."""
    import rasterio

    sq, n, nodata_ok = 0.0, 0, True
    with rasterio.open(scene) as a, rasterio.open(decoded) as b:
        assert (a.shape, a.count, a.dtypes, a.crs, a.transform, a.nodata) == (
            b.shape, b.count, b.dtypes, b.crs, b.transform, b.nodata)
        for r0 in range(0, a.height, 512):
            win = ((r0, min(r0 + 512, a.height)), (0, a.width))
            x, y = a.read(window=win).astype(np.float64), b.read(window=win).astype(np.float64)
            hole = x == 0
            nodata_ok &= bool((y[hole] == 0).all()) and not bool((y[~hole] == 0).any())
            d = x[~hole] - y[~hole]
            sq += float(d @ d)
            n += d.size
    mse = sq / max(n, 1)
    return {"nodata_exact": nodata_ok, "psnr10k": 10 * math.log10(1e8 / mse) if mse else math.inf}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=4096, help="scene side in pixels (10980 = full S2 tile)")
    p.add_argument("--model", default="tec-fp-tiny")
    p.add_argument("--tile-size", type=int, default=512)
    p.add_argument("--keep", type=Path, default=None, help="directory to keep the scene and outputs in")
    p.add_argument("--stage", choices=["encode", "decode"], help=argparse.SUPPRESS)
    p.add_argument("--paths", nargs=3, type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.stage:
        _child(a.stage, *a.paths, a.model, a.tile_size)
        return

    tmp = tempfile.TemporaryDirectory(prefix="tec-large-") if a.keep is None else None
    work = Path(tmp.name) if tmp else a.keep
    work.mkdir(parents=True, exist_ok=True)
    scene, stream, decoded = work / "scene.tif", work / "scene.tec", work / "decoded.tif"
    t0 = time.perf_counter()
    built = build_scene(scene, a.size)
    print(f"scene: {a.size}x{a.size}x13 uint16 mosaic of {built['crops_used']} real OSCD crops "
          f"({built['distinct_crops']} distinct), {built['bytes'] / 1e6:.0f} MB on disk, "
          f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    paths = [str(scene), str(stream), str(decoded)]
    common = ["--paths", *paths, "--model", a.model, "--tile-size", str(a.tile_size)]
    enc = _run_stage("encode", *common)
    print(f"encode: {enc['seconds']:.1f} s, peak {enc['peak_mb']:.0f} MB", flush=True)
    dec = _run_stage("decode", *common)
    print(f"decode: {dec['seconds']:.1f} s, peak {dec['peak_mb']:.0f} MB", flush=True)
    check = _check(scene, decoded)
    mpix = a.size * a.size / 1e6
    tec_bytes = stream.stat().st_size
    bpppb = 8 * tec_bytes / (a.size * a.size * 13)
    peak = max(enc["peak_mb"], dec["peak_mb"])
    both = mpix / (enc["seconds"] + dec["seconds"])
    threads = os.environ.get("TEC_THREADS") or str(__import__("torch").get_num_threads())
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"""# Large scene: peak memory and throughput

`python benchmarks/large_scene.py --size {a.size} --model {a.model} --tile-size {a.tile_size}`

Scene: {a.size} x {a.size} pixels x 13 bands, uint16 ({mpix:.1f} MPix, {mpix * 26:.0f} MB raw), a
mosaic of real Sentinel-2 L1C crops from OSCD (all 13 bands, 20/60 m bands repeated to 10 m;
{built['crops_used']} crops, {built['distinct_crops']} distinct) with a no-data corner (0), tiled
deflate GeoTIFF. Encode: GeoTIFF -> `.tec`; decode: `.tec` -> GeoTIFF; each in a fresh process
(peak = `ru_maxrss`, which includes the Python interpreter, torch and GDAL's block cache).

Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch threads {threads}, Python {platform.python_version()};
load average at the end of the run {load} (other jobs sharing the cores slow the figures down).

| stage | seconds | MPix/s | peak resident memory (MB) |
|---|---|---|---|
| encode | {enc['seconds']:.1f} | {mpix / enc['seconds']:.3f} | {enc['peak_mb']:.0f} |
| decode | {dec['seconds']:.1f} | {mpix / dec['seconds']:.3f} | {dec['peak_mb']:.0f} |
| encode + decode | {enc['seconds'] + dec['seconds']:.1f} | {both:.3f} | {peak:.0f} |

Stream: {tec_bytes} bytes, {bpppb:.4f} bpppb; no-data pixels restored exactly: {check['nodata_exact']};
PSNR-10k over valid pixels {check['psnr10k']:.2f} dB (model `{a.model}`: see `tec models` for whether
its weights are trained).

MPix counts pixels of the H x W grid (all 13 bands together). Memory is bounded by design: a
scene streams through one row of tiles of one frame at a time (tile_size x W x C samples in
the input dtype), tiles are coded one by one, and GDAL's block cache is capped at 256 MB, so a
wider scene adds only its wider row strip (about 150 MB for 10980 x 13 uint16 at 512-pixel
tiles; an estimate, run `--size 10980` to measure it).

summary: peak_mb={peak:.0f} mpix_per_s={both:.3f}
""")
    print(f"stream: {tec_bytes} bytes, {bpppb:.4f} bpppb, nodata exact: {check['nodata_exact']}, "
          f"PSNR-10k {check['psnr10k']:.2f} dB")
    print(f"wrote {RESULTS}")
    if tmp:
        tmp.cleanup()
    print(f"summary: peak_mb={peak:.0f} mpix_per_s={both:.3f}")


if __name__ == "__main__":
    main()
