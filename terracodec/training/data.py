"""Training data: real Sentinel-2 GeoTIFFs -> random normalised crops.

Why its own module: training reads scenes whole (they are small crops of real products, tens of
MB at most) and keeps them in memory as int32 DN, so that a step costs a crop and a flip, not a
disk read. Encoding real scenes of any size goes through `terracodec.io.raster` instead.

A *scene* is one or more GeoTIFFs of the same footprint whose band descriptions together hold
the model's bands. Files in one folder whose names differ only by a resolution suffix
(`img1_10m.tif`, `img1_20m.tif`, `img1_60m.tif`, as OSCD ships) form one scene; the coarser
bands are resampled (bilinear) to the finest grid, as Sentinel-2 users do for 10 m products.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
import torch
import torch.nn.functional as F

from terracodec.bands import normalize_band_name
from terracodec.errors import InputError
from terracodec.normalization import Normalization

_RES_SUFFIX = re.compile(r"_(\d+)m$")


def discover_scenes(inputs: Sequence[str | Path]) -> list[list[Path]]:
    """Expand folders (recursively, *.tif / *.tiff) and group resolution siblings into scenes."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in (".tif", ".tiff")))
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"no such file or folder: {p}")
    groups: dict[tuple[Path, str], list[Path]] = defaultdict(list)
    for f in files:
        stem = _RES_SUFFIX.sub("", f.stem)
        groups[(f.parent, stem)].append(f)
    return [sorted(g) for _, g in sorted(groups.items())]


def _open(path: Path) -> rasterio.DatasetReader:
    try:
        return rasterio.open(path)
    except rasterio.RasterioIOError as exc:
        raise InputError(f"not a readable raster: {path} ({str(exc).splitlines()[0]})") from None


def band_names(ds: rasterio.DatasetReader) -> list[str | None]:
    """S2 names of an open raster's bands, from its descriptions or else its `BANDS` tag (as
    OSCD ships them); None for bands that carry no S2 name."""
    names = [normalize_band_name(d) for d in ds.descriptions]
    if not any(names) and ds.tags().get("BANDS"):
        names = [normalize_band_name(n) for n in ds.tags()["BANDS"].split(",")]
    return names if len(names) == ds.count else [None] * ds.count


def file_band_names(path: Path) -> list[str | None]:
    """`band_names` of the raster at `path`."""
    with _open(path) as ds:
        return band_names(ds)


def load_scenes(inputs: Sequence[str | Path], bands: Sequence[str]) -> list[np.ndarray]:
    """Every scene under `inputs` as int32 DN `[C, H, W]`; files without any wanted band
    (change masks, labels) are skipped, scenes with only some of them are refused."""
    scenes = [s for s in (read_scene(g, bands) for g in discover_scenes(inputs)) if s is not None]
    if not scenes:
        raise InputError(f"no raster under {', '.join(map(str, inputs))} holds bands {','.join(bands)}")
    return scenes


def read_scene(paths: Sequence[Path], bands: Sequence[str]) -> np.ndarray | None:
    """Read `bands` (S2 names) of one scene as int32 DN on the finest grid, [C, H, W]; None when
    the files hold none of them."""
    found: dict[str, np.ndarray] = {}
    for path in paths:
        with _open(path) as ds:
            for i, name in enumerate(band_names(ds), start=1):
                if name in bands and name not in found:
                    found[name] = ds.read(i).astype(np.int32)
    if not found:
        return None
    missing = [b for b in bands if b not in found]
    if missing:
        raise InputError(f"scene {paths[0]} lacks bands {','.join(missing)}")
    return on_finest_grid(found, bands)


def on_finest_grid(found: dict[str, np.ndarray], bands: Sequence[str]) -> np.ndarray:
    """Bands `[H, W]` of one scene at their native resolutions -> int32 `[C, H, W]` in `bands`
    order on the finest grid (coarser bands resampled bilinearly and rounded)."""
    height = max(b.shape[0] for b in found.values())
    width = max(b.shape[1] for b in found.values())
    out = np.empty((len(bands), height, width), dtype=np.int32)
    for c, name in enumerate(bands):
        band = found[name]
        if band.shape != (height, width):
            t = torch.from_numpy(band.astype(np.float32))[None, None]
            t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
            band = t[0, 0].round().numpy().astype(np.int32)
        out[c] = band
    return out


def random_flips(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`patch` (any leading axes) under one random symmetry of its square last two axes:
    a horizontal flip, a vertical flip and a transpose, each with probability 1/2, drawn in
    that order. Leading axes (bands, dates) all get the same one, so dates stay co-registered."""
    if rng.random() < 0.5:
        patch = patch[..., ::-1]
    if rng.random() < 0.5:
        patch = patch[..., ::-1, :]
    if rng.random() < 0.5:
        patch = np.swapaxes(patch, -1, -2)
    return patch


@dataclass
class CropSampler:
    """Random `crop` x `crop` patches with random flips/transposes, normalised, as batches."""

    scenes: list[np.ndarray]
    normalization: Normalization
    crop: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        self.scenes = [s for s in self.scenes if s.shape[1] >= self.crop and s.shape[2] >= self.crop]
        if not self.scenes:
            raise InputError(f"no training scene is at least {self.crop}x{self.crop} pixels")
        # Sample scenes in proportion to their area so that every pixel is equally likely.
        areas = np.array([s.shape[1] * s.shape[2] for s in self.scenes], dtype=np.float64)
        self._weights = areas / areas.sum()
        self._rng = np.random.default_rng(self.seed)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        while True:
            yield torch.stack([self._one() for _ in range(batch_size)])

    def _one(self) -> torch.Tensor:
        scene = self.scenes[self._rng.choice(len(self.scenes), p=self._weights)]
        _, h, w = scene.shape
        top = int(self._rng.integers(0, h - self.crop + 1))
        left = int(self._rng.integers(0, w - self.crop + 1))
        patch = random_flips(scene[:, top : top + self.crop, left : left + self.crop], self._rng)
        x = torch.from_numpy(np.ascontiguousarray(patch).astype(np.float32))
        return self.normalization.normalize(x)
