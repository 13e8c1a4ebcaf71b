"""Throughput and memory of `tec archive`, and the speed of `tec verify` (issue 19).

A folder of real scenes: both dates of the ten OSCD test cities (Sentinel-2 L1C, 13 bands,
241x385 to 824x716 px at 10 m: 20 scenes, 6.2 MPix), each written once as a 13-band GeoTIFF on the 10 m grid
(`terracodec.io.raster` resampling), archived with default settings (the model chosen for L1C
13 bands, 512-px tiles) by `tec archive` in a fresh process: in-process (1 worker) and with 2
local worker processes. Reported: pixels (H x W x frames, all bands) per second of wall time,
the peak resident memory of the driver process and of the largest worker (`getrusage`), and
whether the two runs wrote identical bytes. Then `tec verify` over the outputs, repeated to
reach a measurable time: MB/s. On this 2-core machine two workers share the two cores with the
driver, so the speed-up says more about overhead than about a cluster.

    python benchmarks/archive.py            # -> benchmarks/results/archive.md, .json

Last line: `summary: mpix_per_s_1=<x> mpix_per_s_2=<x> verify_mb_per_s=<x>`.
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, write_report

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "oscd_s2_l1c"
MIRROR = ROOT / "tests" / "data" / "shared" / "oscd_s2_l1c"


def make_scenes(dest: Path) -> int:
    """13-band GeoTIFFs of the OSCD test cities in `dest`; returns their pixel count."""
    import rasterio

    from terracodec.io.raster import read_stack

    root = SHARED if SHARED.is_dir() else MIRROR
    cities = [c for c in re.split(r"[,\s]+", (root / "test.txt").read_text()) if c] \
        if (root / "test.txt").exists() else sorted(p.name for p in root.iterdir() if p.is_dir())
    pixels = 0
    for city, date in ((c, d) for c in cities for d in (1, 2)):
        files = [root / city / f"img{date}_{r}.tif" for r in ("10m", "20m", "60m")]
        if not all(f.exists() for f in files):
            continue
        with read_stack([files]) as stack:
            g, meta = stack.grid, stack.frames[0]
            data = stack.read(0, 0, 0, g.height, g.width)
        profile = dict(driver="GTiff", width=g.width, height=g.height, count=g.count, dtype=g.dtype,
                       crs=g.crs_wkt, transform=g.affine(), compress="deflate", predictor=2, tiled=True)
        with rasterio.open(dest / f"{city}_{date}.tif", "w", **profile) as ds:
            ds.write(data)
            ds.descriptions = tuple(meta.descriptions)
            ds.update_tags(**meta.tags)
        pixels += g.height * g.width
    return pixels


def child(src: str, out: str, workers: int) -> None:
    """Run one archive in this process; print seconds and peak memory (self, workers) as JSON."""
    from terracodec.archive import archive

    start = time.perf_counter()
    records = archive([src], out, workers=workers)
    seconds = time.perf_counter() - start
    assert all(r["status"] == "ok" for r in records), records
    print(json.dumps({
        "seconds": seconds,
        "driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def run(src: Path, out: Path, workers: int) -> dict:
    text = subprocess.run([sys.executable, __file__, "--child", str(src), str(out), str(workers)],
                          check=True, capture_output=True, text=True).stdout
    return json.loads(text.strip().splitlines()[-1])


def full_tile_stream(path: Path) -> None:
    """A structurally valid stream the size of a whole Sentinel-2 tile (10980 x 10980 x 13 at
    about 0.1 bpppb: 484 tiles of 40 kB): a real header, records of random bytes with their
    checksums. `tec verify` checks structure and checksums, never decodes, so it cannot tell."""
    import numpy as np

    from terracodec.api.prepare import build_header
    from terracodec.api.resolve import resolve_model
    from terracodec.container import FORMAT_MAJOR, ContainerWriter, TileRecord
    from terracodec.header_compact import compact
    from terracodec.io.arrays import ArrayStack

    rng = np.random.default_rng(0)
    stack = ArrayStack(rng.integers(500, 3000, (13, 64, 64), dtype=np.uint16), crs="EPSG:32631",
                       transform=(10.0, 0.0, 300000.0, 0.0, -10.0, 5000040.0), nodata=0)
    codec, name, quality = resolve_model("tec-fp-s2l1c", None, None)
    header = build_header(stack, codec, name, quality, 512, None, False, "auto")
    header.grid.height = header.grid.width = 10980
    with open(path, "wb") as f:
        writer = ContainerWriter(f, compact(header.to_json()), 1, header.tiles_per_frame, major=FORMAT_MAJOR)
        for tile in range(header.tiles_per_frame):
            writer.write_tile(0, tile, TileRecord(rng.bytes(40_000), b"", 0))
        writer.close()


def verify_speed(files: list[Path]) -> tuple[float, int]:
    from terracodec.archive.verify import verify_file

    size = sum(f.stat().st_size for f in files)
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 2.0:
        assert all(verify_file(f).ok for f in files)
        repeats += 1
    return size * repeats / 1e6 / (time.perf_counter() - start), size


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "scenes"
        src.mkdir()
        pixels = make_scenes(src)
        assert pixels > 0, "no OSCD scenes found"
        one = run(src, Path(tmp) / "out1", 1)
        two = run(src, Path(tmp) / "out2", 2)
        outs1 = sorted((Path(tmp) / "out1").rglob("*.tec"))
        identical = all(f.read_bytes() == (Path(tmp) / "out2" / f.relative_to(Path(tmp) / "out1")).read_bytes()
                        for f in outs1)
        mb_s_small, size = verify_speed(outs1)
        big = Path(tmp) / "full_tile.tec"
        full_tile_stream(big)
        mb_s, big_size = verify_speed([big])
    result = {
        "scenes": len(outs1), "mpix": pixels / 1e6, "archive_bytes": size,
        "workers_1": one, "workers_2": two, "identical_bytes": identical,
        "mpix_per_s_1": pixels / 1e6 / one["seconds"], "mpix_per_s_2": pixels / 1e6 / two["seconds"],
        "verify_mb_per_s": mb_s, "verify_full_tile_bytes": big_size, "verify_small_files_mb_per_s": mb_s_small,
        "verify_small_files_per_s": mb_s_small * 1e6 / size * len(outs1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "archive.json").write_text(json.dumps(result, indent=2))
    lines = [
        "# `tec archive` and `tec verify` (benchmarks/archive.py)", "",
        f"{len(outs1)} OSCD test-city scenes (both dates), {pixels / 1e6:.2f} MPix (13 bands), default settings; "
        f"outputs {size} bytes; identical bytes with 1 and 2 workers: {identical}.", "",
        "| workers | seconds | MPix/s | driver peak MB | worker peak MB |", "|---|---|---|---|---|",
        f"| 1 (in-process) | {one['seconds']:.1f} | {result['mpix_per_s_1']:.3f} | {one['driver_mb']:.0f} | - |",
        f"| 2 processes | {two['seconds']:.1f} | {result['mpix_per_s_2']:.3f} | {two['driver_mb']:.0f} | {two['worker_mb']:.0f} |",
        "", f"`tec verify` (checksums and structure, no decoding): {mb_s:.0f} MB/s on a stream the size of a whole "
        f"Sentinel-2 tile ({big_size / 1e6:.1f} MB, 484 tiles); on the {len(outs1)} small outputs above "
        f"{mb_s_small:.0f} MB/s = {result['verify_small_files_per_s']:.0f} files/s (per-file cost dominates).", "",
    ]
    write_report("archive", lines, f"summary: mpix_per_s_1={result['mpix_per_s_1']:.3f} "
                 f"mpix_per_s_2={result['mpix_per_s_2']:.3f} verify_mb_per_s={mb_s:.0f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
