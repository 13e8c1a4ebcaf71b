"""Training data for temporal codecs: co-registered multi-date scenes -> random sequence crops.

Why its own module: a temporal model learns what changes between dates, so every frame of a
training sequence must show the same ground: one random crop, flip and transpose for all dates
of a scene (`CropSampler` draws them per image). A *sequence* is the scenes (see
`terracodec.training.data`) of one folder, in date order: OSCD ships each city as `img1_*` and
`img2_*` in its own folder. Dates come from the rasters' date tags (`DATE`, as OSCD writes it,
or another tag that `terracodec.io.raster.parse_timestamp` knows), else from the file names.
Co-registered dates of one footprint may differ by a few pixels in size (OSCD's `img2` was
registered onto `img1` and sometimes lost a border): all frames are cut to their common top-left
extent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
import torch

from terracodec.errors import InputError
from terracodec.normalization import Normalization
from terracodec.io.raster import parse_timestamp
from terracodec.training.data import discover_scenes, random_flips, read_scene


def _date_key(paths: Sequence[Path]) -> str:
    """Sort key of one scene: its acquisition date when the files' tags carry one (as the
    container reads it, `parse_timestamp`), else its file name."""
    for path in paths:
        try:
            with rasterio.open(path) as ds:
                date = parse_timestamp(ds.tags())
        except rasterio.RasterioIOError:
            date = None
        if date:
            return date
    return paths[0].name


def discover_sequences(inputs: Sequence[str | Path]) -> list[list[list[Path]]]:
    """Scenes grouped by folder, each group in date order (one group = one sequence)."""
    folders: dict[Path, list[list[Path]]] = defaultdict(list)
    for scene in discover_scenes(inputs):
        folders[scene[0].parent].append(scene)
    return [sorted(scenes, key=lambda s: (_date_key(s), s[0].name)) for _, scenes in sorted(folders.items())]


def load_sequences(
    inputs: Sequence[str | Path], bands: Sequence[str], min_frames: int = 2
) -> list[np.ndarray]:
    """Every sequence under `inputs` with at least `min_frames` dates, as int32 DN
    `[T, C, H, W]` cut to the dates' common extent; files without any wanted band (change masks)
    are skipped. A one-line `InputError` when nothing multi-date is found."""
    sequences, single = [], []
    for scenes in discover_sequences(inputs):
        frames = [f for f in (read_scene(s, bands) for s in scenes) if f is not None]
        if not frames:
            continue
        if len(frames) < min_frames:
            single.append(scenes[0][0].parent.name)
            continue
        sequences.append(common_extent(frames))
    if not sequences:
        where = ", ".join(map(str, inputs))
        detail = f" (single-date: {', '.join(single)})" if single else ""
        raise InputError(
            f"temporal training needs folders with >= {min_frames} dates of bands "
            f"{','.join(bands)}; none under {where}{detail}"
        )
    return sequences


def common_extent(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Co-registered dates `[C, H_i, W_i]` cut to their common top-left extent: `[T, C, H, W]`."""
    h = min(f.shape[1] for f in frames)
    w = min(f.shape[2] for f in frames)
    return np.stack([f[:, :h, :w] for f in frames])


@dataclass
class SequenceSampler:
    """Random `frames`-date windows of `crop` x `crop` pixels, one crop/flip/transpose for all
    dates, normalised: batches `[B, T, C, crop, crop]`.

    `reverse` also plays sequences backwards half of the time: the model should predict a date
    from another in either direction (OSCD has two dates per city, so this doubles the pairs).
    """

    sequences: list[np.ndarray]
    normalization: Normalization
    crop: int = 128
    frames: int = 2
    reverse: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise InputError(f"--frames must be at least 1, got {self.frames}")
        self.sequences = [
            s for s in self.sequences
            if s.shape[0] >= self.frames and s.shape[2] >= self.crop and s.shape[3] >= self.crop
        ]
        if not self.sequences:
            raise InputError(
                f"no training sequence has {self.frames} dates of at least {self.crop}x{self.crop} pixels"
            )
        # Sequences weighted by area x number of windows: every pixel-date is equally likely.
        sizes = np.array(
            [s.shape[2] * s.shape[3] * (s.shape[0] - self.frames + 1) for s in self.sequences],
            dtype=np.float64,
        )
        self._weights = sizes / sizes.sum()
        self._rng = np.random.default_rng(self.seed)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        while True:
            yield torch.stack([self.sample() for _ in range(batch_size)])

    def sample(self) -> torch.Tensor:
        """One normalised sequence crop `[T, C, crop, crop]`."""
        rng = self._rng
        seq = self.sequences[rng.choice(len(self.sequences), p=self._weights)]
        t, _, h, w = seq.shape
        first = int(rng.integers(0, t - self.frames + 1))
        top = int(rng.integers(0, h - self.crop + 1))
        left = int(rng.integers(0, w - self.crop + 1))
        patch = seq[first : first + self.frames, :, top : top + self.crop, left : left + self.crop]
        if self.reverse and rng.random() < 0.5:
            patch = patch[::-1]
        patch = random_flips(patch, rng)
        x = torch.from_numpy(np.ascontiguousarray(patch).astype(np.float32))
        return torch.stack([self.normalization.normalize(frame) for frame in x])
