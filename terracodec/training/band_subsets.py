"""Training scenes that hold only some of a model's bands, centred per scene, radiometrically varied.

Why its own module: most Level-2A material that can be trained on (Theia FRE stacks, WorldCereal,
fordead) has 10 or 6 of the 12 L2A bands, and much of it comes as date-major series
(`"<datetime> <band>"` band descriptions, one file per resolution group). A 12-band model still
learns from it: a missing band is filled with the model's centre (zero deviation) and left out
of the distortion, so it costs no gradient and teaches nothing false.

Every scene is centred per band on the model's `centre` (normalised units), the same centring
the encoder applies to every frame (`terracodec.centring`): what the transforms see no longer
depends on the processing level's mean spectrum. A random per-band gain around the scene mean
(`gain_sigma`, log-normal) stands in for calibration and atmospheric differences.

    files --(per date, clear, no nodata)--> [C, H, W] DN + present[C]
          --normalise, centre, gain--> random crops --> (x [B, C, h, w], weight [B, C, 1, 1])
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import rasterio
import torch

from terracodec.bands import normalize_band_name
from terracodec.errors import InputError
from terracodec.normalization import Normalization
from terracodec.training.data import discover_scenes, on_finest_grid, random_flips


@dataclass
class PartialScene:
    """One date of one place: DN in the model's band order (absent bands 0) and which are present."""

    name: str
    dn: np.ndarray          # int32 [C, H, W]
    present: np.ndarray     # bool [C]


def _split_description(text: str | None) -> tuple[str, str | None]:
    """("<date key>", band) from "2018-04-29 B02" or ("", band) from "B02"."""
    if not text:
        return "", None
    head, _, last = text.strip().rpartition(" ")
    return head, normalize_band_name(last)


def _clear_dates(folder: Path, min_clear: float) -> set[str] | None:
    """Dates a `*dates.csv` beside the files calls clear (its `clear_fraction*` column at least
    `min_clear`); None when there is no such table (every date counts)."""
    for table in sorted(folder.glob("*dates.csv")):
        with table.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        column = next((k for k in (rows[0] if rows else {}) if k.startswith("clear_fraction")), None)
        if column is None or "datetime" not in rows[0]:
            continue
        return {r["datetime"] for r in rows if float(r[column] or 0) >= min_clear}
    return None


def read_partial_scenes(paths: Sequence[Path], bands: Sequence[str], *, min_bands: int,
                        min_clear: float = 0.95) -> list[PartialScene]:
    """Every date of the files `paths` (one scene's resolution groups) as `PartialScene`s: dates
    with fewer than `min_bands` of `bands`, with any nodata pixel, or not clear are skipped."""
    by_date: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    nodata_seen: dict[str, bool] = defaultdict(bool)
    for path in paths:
        with rasterio.open(path) as ds:
            nodata = ds.nodata
            for i, text in enumerate(ds.descriptions, start=1):
                date, name = _split_description(text)
                if name in bands and name not in by_date[date]:
                    a = ds.read(i).astype(np.int32)
                    by_date[date][name] = a
                    nodata_seen[date] |= bool(((a == nodata) if nodata is not None else (a == 0)).any())
    clear = _clear_dates(paths[0].parent, min_clear)
    scenes = []
    for date, found in sorted(by_date.items()):
        if len(found) < min_bands or nodata_seen[date] or (clear is not None and date and date not in clear):
            continue
        names = [b for b in bands if b in found]
        grid = on_finest_grid(found, names)
        dn = np.zeros((len(bands),) + grid.shape[1:], np.int32)
        present = np.array([b in found for b in bands])
        dn[present] = grid
        label = f"{paths[0].parent.name}/{paths[0].stem}" + (f"@{date}" if date else "")
        scenes.append(PartialScene(label, dn, present))
    return scenes


def load_partial_scenes(inputs: Sequence[str | Path], bands: Sequence[str], *, min_bands: int,
                        min_clear: float = 0.95) -> list[PartialScene]:
    """`read_partial_scenes` over every scene under `inputs` (folders are searched recursively)."""
    out = [s for group in discover_scenes(inputs)
           for s in read_partial_scenes(group, bands, min_bands=min_bands, min_clear=min_clear)]
    if not out:
        raise InputError(f"no clear scene under {', '.join(map(str, inputs))} holds {min_bands} of "
                         f"the bands {','.join(bands)}")
    return out


def training_centre(scenes: Sequence[PartialScene], norm: Normalization) -> list[float]:
    """Per band, the mean normalised value of the scenes that have it (area-weighted): where the
    data already lie, so that centring moves typical scenes little."""
    total = np.zeros(len(scenes[0].present))
    area = np.zeros_like(total)
    for s in scenes:
        x = np.asarray(norm.normalize(s.dn.astype(np.float64)), np.float64)
        total[s.present] += x[s.present].sum(axis=(1, 2))
        area[s.present] += x.shape[1] * x.shape[2]
    if (area == 0).any():
        raise InputError("no training scene has band(s) " + ", ".join(str(i) for i in np.flatnonzero(area == 0)))
    return [round(float(v), 4) for v in total / area]


def centred(dn: np.ndarray, present: np.ndarray, normalization: Normalization, centre: np.ndarray) -> np.ndarray:
    """One date normalised, each band's mean moved onto `centre` [C, 1, 1] (normalised units),
    absent bands at it: float32 `[C, H, W]`, what the encoder's centring gives the model."""
    x = np.asarray(normalization.normalize(dn.astype(np.float64)), np.float64)
    x = x - x.mean(axis=(1, 2), keepdims=True) + centre
    x[~present] = centre[~present]
    return x.astype(np.float32)


@dataclass
class CentredCropSampler:
    """Random crops of partial scenes, normalised and centred, with a distortion weight per band."""

    scenes: list[PartialScene]
    normalization: Normalization
    centre: Sequence[float]
    crop: int = 64
    seed: int = 0
    gain_sigma: float = 0.1
    _normalised: list[np.ndarray] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self.scenes = [s for s in self.scenes if min(s.dn.shape[1:]) >= self.crop]
        if not self.scenes:
            raise InputError(f"no training scene is at least {self.crop}x{self.crop} pixels")
        centre = np.asarray(self.centre, np.float64)[:, None, None]
        for s in self.scenes:
            self._normalised.append(centred(s.dn, s.present, self.normalization, centre))
        # Scenes weigh sqrt(area): a large L1C scene still counts more than a 64 px series
        # date, but the many small L2A scenes are not drowned.
        sides = np.sqrt([s.dn.shape[1] * s.dn.shape[2] for s in self.scenes])
        self._weights = sides / sides.sum()
        self._centre = centre.astype(np.float32)
        self._rng = np.random.default_rng(self.seed)

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            pairs = [self._one() for _ in range(batch_size)]
            yield torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])

    def _one(self) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self._rng.choice(len(self.scenes), p=self._weights))
        x, present = self._normalised[i], self.scenes[i].present
        _, h, w = x.shape
        top = int(self._rng.integers(0, h - self.crop + 1))
        left = int(self._rng.integers(0, w - self.crop + 1))
        patch = random_flips(x[:, top:top + self.crop, left:left + self.crop], self._rng)
        gain = np.exp(self._rng.normal(0.0, self.gain_sigma, (len(present), 1, 1))).astype(np.float32)
        patch = self._centre + gain * (patch - self._centre)
        weight = torch.from_numpy(present.astype(np.float32)).reshape(-1, 1, 1)
        return torch.from_numpy(np.ascontiguousarray(patch)), weight
