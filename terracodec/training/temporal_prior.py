"""Training the temporal prior of TEC-TT on ELIC (`terracodec.temporal.conditional_elic`).

The transforms and the image codec's entropy networks stay frozen (they are the shipped image
codec's); only the temporal prior learns. So every frame is analysed once, up front: per series,
flip/rotation and quality, the gained latents `y`, the hyper branch's side parameters and the
quantised latents `y_hat` are stored, and a training step is a batch of (frame, previous frame)
latent pairs pushed through the channel-group / checkerboard context model. The loss is the
rate of frame `t` given `y_hat[t-1]`, in bits per pixel; the distortion is the frozen codec's.

    dated scenes (clear, >= min_bands) --per place, date order--> series [T, C, H, W]
        (+ sparse series: few dates, fewer views; + near-duplicate twins of first dates)
        --normalise, centre, absent bands at the centre, flips/rotations, pad to 64-->
        g_a --gain[q]--> (y, side params, y_hat) per frame --> pairs (t-k, t), k = 1..max_gap
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from terracodec.errors import InputError
from terracodec.normalization import Normalization
from terracodec.training.band_subsets import PartialScene, centred, load_partial_scenes


@dataclass
class Series:
    """One place's clear dates in date order: normalised, centred model inputs `[T, C, H, W]`."""

    name: str
    frames: np.ndarray


def load_series(inputs: Sequence[str | Path], bands: Sequence[str], normalization: Normalization,
                centre: Sequence[float], *, min_bands: int, min_clear: float, tile: int = 256) -> list[Series]:
    """Dated scenes under `inputs` grouped into series (one per place and file group; files
    without dates in their band descriptions: one per folder, in file-name order), each frame
    normalised and centred per band as the encoder centres it; absent bands at the centre."""
    by_place: dict[str, list[PartialScene]] = defaultdict(list)
    for scene in load_partial_scenes(inputs, bands, min_bands=min_bands, min_clear=min_clear):
        # "<folder>/<file group>@<date>" (date-major files), else one file per date: its folder
        by_place[scene.name.split("@")[0] if "@" in scene.name else scene.name.split("/")[0]].append(scene)
    c = np.asarray(centre, np.float64)[:, None, None]
    out = []
    for place, scenes in sorted(by_place.items()):
        if len(scenes) < 2:
            continue
        h = min(s.dn.shape[1] for s in scenes)  # dates a few pixels apart in size: top-left crop
        w = min(s.dn.shape[2] for s in scenes)
        stack = np.stack([centred(s.dn[:, :h, :w], s.present, normalization, c)
                          for s in sorted(scenes, key=lambda s: s.name)])
        for top in range(0, max(1, h - tile + 1), tile):  # large scenes: tile x tile pieces
            for left in range(0, max(1, w - tile + 1), tile):
                out.append(Series(f"{place}@{top},{left}", stack[..., top:top + tile, left:left + tile]))
    if not out:
        raise InputError("no series of at least 2 clear dates of one shape under the inputs")
    return out


def model_series(image: Any, inputs: Sequence[str | Path], *, min_bands: int, min_clear: float) -> list[Series]:
    """`load_series` in image model `image`'s bands, normalisation and centre; [] without inputs."""
    if not inputs:
        return []
    norm = Normalization.from_config(image.config["normalization"])
    return load_series(inputs, list(image.config["band_names"]), norm, image.config["centre"],
                       min_bands=min_bands, min_clear=min_clear)


def load_singles(inputs: Sequence[str | Path], bands: Sequence[str], normalization: Normalization,
                 centre: Sequence[float], *, min_bands: int) -> list[Series]:
    """Single-date scenes (every clear date of `inputs` on its own), normalised and centred."""
    c = np.asarray(centre, np.float64)[:, None, None]
    out = []
    for s in load_partial_scenes(inputs, bands, min_bands=min_bands, min_clear=0.0):
        out.append(Series(s.name, centred(s.dn, s.present, normalization, c)[None]))
    return out


def twins(series: Sequence[Series], centre: Sequence[float], *, seed: int, gain_sigma: float = 0.03,
          noise_sigma: float = 0.02) -> list[Series]:
    """Near-duplicate pairs `[x', x]` from each series' first date: `x'` is `x` with a per-band
    gain around the centre and sensor-like noise (normalised units). Real archives hold such
    pairs (overlapping orbits of one day, a date processed in two MGRS tiles): they teach the
    mixer to trust the past when the intra prediction agrees with it."""
    rng = np.random.default_rng(seed)
    c = np.asarray(centre, np.float32)[:, None, None]
    out = []
    for s in series:
        x = s.frames[0]
        gain = np.exp(rng.normal(0.0, gain_sigma, (x.shape[0], 1, 1))).astype(np.float32)
        twin = c + gain * (x - c) + rng.normal(0.0, noise_sigma, x.shape).astype(np.float32)
        out.append(Series(f"{s.name}#twin", np.stack([twin, x])))
    return out


def pad_to_multiple(x: Tensor, multiple: int = 64) -> Tensor:
    """`x [..., H, W]` replicate-padded at the bottom and right to multiples of `multiple`, as
    the coder pads tiles."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def series_view(x: Tensor, v: int) -> Tensor:
    """View `v` (0..7) of a series `[T, C, H, W]`: rotations by v x 90 degrees, then the same
    rotations of the left-right mirror image (the same view on every date)."""
    return torch.rot90(x, v % 4, dims=(2, 3)).flip(3) if v >= 4 else torch.rot90(x, v, dims=(2, 3))


@dataclass
class LatentPairs:
    """Per (series, view, quality): `y`, side params and `y_hat` of every frame, `[T, ., h, w]`."""

    y: list[Tensor] = field(default_factory=list)
    params: list[Tensor] = field(default_factory=list)
    y_hat: list[Tensor] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)


def merge(parts: Sequence[LatentPairs]) -> LatentPairs:
    out = LatentPairs()
    for p in parts:
        for name in ("y", "params", "y_hat", "quality"):
            getattr(out, name).extend(getattr(p, name))
    return out


@torch.no_grad()
def analyse(model: Any, series: Sequence[Series], qualities: Sequence[int], views: int = 8,
            report: Callable[[str], None] = lambda s: None) -> LatentPairs:
    """Every frame's latents through the frozen codec (see the module docstring)."""
    model.eval()
    pairs = LatentPairs()
    for s in series:
        x = torch.from_numpy(s.frames)
        for v in range(views):
            view = pad_to_multiple(series_view(x, v))
            g = model.g_a(view.contiguous())
            for q in qualities:
                y = model.gain_latent(g, q - 1)
                params = model.latent_codec.hyper(y)["params"]
                y_hat = model.latent_codec.y(y, params)["y_hat"]
                pairs.y.append(y)
                pairs.params.append(params)
                pairs.y_hat.append(y_hat)
                pairs.quality.append(q)
        report(f"analysed {s.name}: {len(s.frames)} dates")
    return pairs


def rate_bits(model: Any, y: Tensor, params: Tensor, y_prev: Tensor | None) -> Tensor:
    """Bits of `y` (sum over the batch) under the context model, with or without a previous latent."""
    codec = model.latent_codec
    out = codec.y(y, codec.conditioned(params, y_prev, exact=False))
    return -torch.log2(out["likelihoods"]["y"].clamp_min(1e-9)).sum()


def train_prior(model: Any, pairs: LatentPairs, *, steps: int, batch_size: int, lr: float, max_gap: int,
                seed: int, report: Callable[[int, dict], None] = lambda i, r: None,
                max_minutes: float | None = None) -> list[dict]:
    """Adam on the temporal parts only (`temporal_parameters`); returns the log rows (bits with
    and without context)."""
    for p in model.parameters():
        p.requires_grad_(False)
    learned = model.temporal_parameters()
    for p in learned:
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.Adam(learned, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 20)
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[int]] = defaultdict(list)  # same latent size -> batchable
    for i, y in enumerate(pairs.y):
        if y.shape[0] >= 2:
            groups[tuple(y.shape[2:])].append(i)
    keys = sorted(groups)
    # groups weigh by latent cells, and a batch holds `batch_size` 64 x 64 tiles' worth of cells
    weights = np.array([sum(pairs.y[i].shape[0] - 1 for i in groups[k]) * k[0] * k[1] for k in keys], np.float64)
    log, start = [], time.monotonic()
    for step in range(1, steps + 1):
        key = keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
        ys, ps, prev = [], [], []
        for _ in range(max(1, batch_size * 16 // (key[0] * key[1]))):
            i = groups[key][int(rng.integers(len(groups[key])))]
            t = int(rng.integers(1, pairs.y[i].shape[0]))
            gap = min(t, int(rng.integers(1, max_gap + 1)))
            ys.append(pairs.y[i][t])
            ps.append(pairs.params[i][t])
            prev.append(pairs.y_hat[i][t - gap])
        y, params, y_prev = torch.stack(ys), torch.stack(ps), torch.stack(prev)
        pixels = y.shape[0] * y.shape[2] * y.shape[3] * 256
        bits = rate_bits(model, y, params, y_prev)
        loss = bits / pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(learned, 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            with torch.no_grad():
                intra = float(rate_bits(model, y, params, None)) / pixels
            row = {"step": step, "bpp": float(loss.detach()), "bpp_intra": intra,
                   "saving_pct": 100 * (1 - float(loss) / intra) if intra > 0 else math.nan,
                   "seconds": round(time.monotonic() - start, 1)}
            log.append(row)
            report(step, row)
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
    model.eval()
    return log


__all__ = ["LatentPairs", "Series", "analyse", "load_series", "load_singles", "merge", "model_series", "pad_to_multiple", "series_view", "rate_bits", "train_prior", "twins"]
