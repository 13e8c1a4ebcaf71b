"""Benchmark inputs: GeoTIFFs, scene folders or .npy arrays -> uint16 samples [T, C, H, W].

* A GeoTIFF is one image. Files of one scene that differ only by a resolution suffix
  (`img1_10m.tif`, `img1_20m.tif`, `img1_60m.tif`, as OSCD ships) are one image, the coarse
  bands resampled to 10 m (`terracodec.training.data.read_scene`, bilinear).
* A folder holds the scenes found under it; scenes whose bands carry no Sentinel-2 names (change
  masks, labels) are left out. With `series=True` the scenes of one folder are the dates of one
  time series (name order; cropped top-left to their common size, as OSCD's second dates are a
  few pixels smaller); otherwise every scene is an image on its own.
* A .npy file holds [C, H, W] or [T, C, H, W] integers.

Bands are selected by S2 name (`bands`), default: every S2 band present, in the L1C order.
Files without band names are taken as they are (`bands` then names them by position).
The classical codecs take uint16, so values must fit it (negative DN are refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio

from terracodec.bands import S2_L1C_BANDS
from terracodec.errors import InputError
from terracodec.training.data import discover_scenes, file_band_names, read_scene


@dataclass
class Sample:
    """One benchmark item: a time series of T >= 1 frames."""

    name: str
    pixels: np.ndarray                      # [T, C, H, W] uint16
    band_names: list[str | None] | None = None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.pixels.shape)  # type: ignore[return-value]


def as_uint16(x: np.ndarray, what: str) -> np.ndarray:
    """Integer DN as uint16, or InputError when they do not fit."""
    if x.dtype == np.uint16:
        return x
    if x.dtype.kind not in "iu":
        raise InputError(f"{what}: the benchmark takes integer DN, got {x.dtype}")
    lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise InputError(f"{what}: values {lo}..{hi} do not fit uint16")
    return x.astype(np.uint16)


def read_image(paths: Sequence[Path], bands: Sequence[str] | None,
               allow_unnamed: bool = True) -> tuple[np.ndarray, list[str | None]] | None:
    """One scene as ([C, H, W] uint16, band names); None when it holds none of `bands`, or
    when its bands carry no S2 names and `allow_unnamed` is off (masks and labels in folders)."""
    named = {p: file_band_names(p) for p in paths}
    all_names = [n for names in named.values() for n in names]
    if all(all_names):
        wanted = list(bands) if bands else [b for b in S2_L1C_BANDS if b in all_names]
        pixels = read_scene(list(paths), wanted)
        if pixels is None:
            return None
        return as_uint16(pixels, str(paths[0])), wanted
    if len(paths) != 1 or not allow_unnamed:
        return None
    with rasterio.open(paths[0]) as ds:
        pixels = ds.read()
    names: list[str | None] = [None] * pixels.shape[0]
    if bands:
        if len(bands) != pixels.shape[0]:
            raise InputError(f"{paths[0]} has {pixels.shape[0]} unnamed bands; --bands names {len(bands)}")
        names = list(bands)
    return as_uint16(pixels, str(paths[0])), names


def _npy(path: Path, bands: Sequence[str] | None) -> Sample:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise InputError(f"{path}: expected [C, H, W] or [T, C, H, W], got shape {x.shape}")
    names = list(bands) if bands else None
    if names and len(names) != x.shape[1]:
        raise InputError(f"{path} has {x.shape[1]} bands; --bands names {len(names)}")
    return Sample(path.stem, as_uint16(x, str(path)), names)


def _stack(frames: list[np.ndarray]) -> np.ndarray:
    """Dates of one series cropped top-left to their common size."""
    h = min(f.shape[1] for f in frames)
    w = min(f.shape[2] for f in frames)
    return np.stack([f[:, :h, :w] for f in frames])


def center_crop(x: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of [..., H, W] (a side already smaller stays whole)."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return np.ascontiguousarray(x[..., top : top + size, left : left + size])


def load_inputs(inputs: Sequence[str | Path], *, bands: Sequence[str] | None = None,
                series: bool = False, crop: int | None = None) -> list[Sample]:
    """Every input as samples (see the module docstring); `crop` takes the central crop x crop."""
    if crop is not None and crop < 1:
        raise InputError(f"crop must be positive, got {crop}")
    samples: list[Sample] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise InputError(f"no such file or folder: {path}")
        if path.suffix.lower() == ".npy":
            samples.append(_npy(path, bands))
            continue
        images = []
        for scene in discover_scenes([path]):
            got = read_image(scene, bands, allow_unnamed=path.is_file())
            if got is None:
                if path.is_file():
                    raise InputError(f"{path} holds none of the bands {','.join(bands or [])}")
                continue
            images.append((scene, got))
        if not images:
            raise InputError(f"no Sentinel-2 image under {path}")
        if series and len(images) > 1:
            counts = {g[0].shape[0] for _, g in images}
            if len(counts) != 1:
                raise InputError(f"the scenes under {path} have different band counts {sorted(counts)}")
            samples.append(Sample(path.name, _stack([g[0] for _, g in images]), images[0][1][1]))
        else:
            for scene, (pixels, names) in images:
                stem = scene[0].stem.rsplit("_", 1)[0] if len(scene) > 1 else scene[0].stem
                name = stem if path.is_file() else f"{path.name}/{stem}"
                samples.append(Sample(name, pixels[None], names))
    if crop is not None:
        for s in samples:
            s.pixels = center_crop(s.pixels, crop)
    return samples
