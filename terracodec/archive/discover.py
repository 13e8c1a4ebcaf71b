"""What an archive run codes: the inputs found under each SRC, and where each one's stream goes.

Inputs are GeoTIFFs (`.tif`, `.tiff`) and Sentinel-2 products (SAFE folders, zips of one),
found recursively; a SAFE folder is one input, never searched inside. Each input is its own
stream, written to `OUT/<its path relative to SRC, suffix replaced by .tec>` (a product: its
name without `.SAFE` / `.SAFE.zip`, plus `.tec`). With `series_by="folder"` the inputs of each
folder form one time series, in acquisition order (the frames' timestamps, then names), written
to `OUT/<the folder's path relative to SRC>.tec` (SRC itself: `OUT/<SRC's name>.tec`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from terracodec.errors import InputError
from terracodec.io.safe import is_product

RASTER_SUFFIXES = (".tif", ".tiff")
SERIES_BY = ("none", "folder")


@dataclass
class Job:
    """One stream to write: its frames (paths, in time order) and its output."""

    source: str                     # what the manifest calls it (a path, or a folder for a series)
    frames: list[str]
    output: Path
    timestamps: list[str | None] = field(default_factory=list)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".SAFE.zip", ".SAFE", ".zip", *RASTER_SUFFIXES):
        if name.lower().endswith(suffix.lower()):
            return name[: -len(suffix)]
    return path.stem


def _walk(src: Path) -> list[Path]:
    """Inputs under `src` (sorted, so every run finds them in one order)."""
    if is_product(src):
        return [src]
    if src.is_file():
        if src.suffix.lower() in RASTER_SUFFIXES:
            return [src]
        raise InputError(f"{src}: not a GeoTIFF or a Sentinel-2 product")
    found = []
    for root, dirs, files in os.walk(src):
        here = Path(root)
        keep = []
        for d in sorted(dirs):
            if d.startswith("."):
                continue
            if is_product(here / d):
                found.append(here / d)  # one input, not searched inside
            else:
                keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            p = here / f
            if f.startswith("."):
                continue
            if p.suffix.lower() in RASTER_SUFFIXES or (p.suffix.lower() == ".zip" and is_product(p)):
                found.append(p)
    return sorted(found)


def _timestamp(path: Path) -> str | None:
    from terracodec.io.raster import read_stack

    with read_stack([path]) as stack:
        return stack.frames[0].timestamp


def find_jobs(sources: list[str | os.PathLike], out: str | os.PathLike, series_by: str = "none") -> list[Job]:
    """The jobs of a run; InputError for a missing SRC or two inputs with one output."""
    if series_by not in SERIES_BY:
        raise InputError(f"--series-by must be one of {', '.join(SERIES_BY)}, got {series_by!r}")
    out_dir = Path(out)
    jobs: list[Job] = []
    for src in map(Path, sources):
        if not src.exists():
            raise InputError(f"no such file or folder: {src}")
        inputs = _walk(src)
        base = src.parent if src.is_file() or is_product(src) else src
        if series_by == "none":
            for p in inputs:
                rel = p.relative_to(base)
                jobs.append(Job(str(p), [str(p)], out_dir / rel.parent / f"{_stem(p)}.tec"))
            continue
        groups: dict[Path, list[Path]] = defaultdict(list)
        for p in inputs:
            groups[p.parent].append(p)
        for folder, members in sorted(groups.items()):
            stamps = {p: _timestamp(p) for p in members}
            members.sort(key=lambda p: (stamps[p] or "", p.name))
            rel = folder.relative_to(base)
            target = out_dir / (f"{rel}.tec" if str(rel) != "." else f"{_stem(src)}.tec")
            jobs.append(Job(str(folder), [str(p) for p in members], target, [stamps[p] for p in members]))
    outputs: dict[Path, str] = {}
    for job in jobs:
        if job.output in outputs:
            raise InputError(f"{job.source} and {outputs[job.output]} would both be written to {job.output}")
        outputs[job.output] = job.source
    return jobs


__all__ = ["Job", "RASTER_SUFFIXES", "SERIES_BY", "find_jobs"]
