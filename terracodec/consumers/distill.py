"""Training a `LatentAdapter` by distillation against the pixel path of `tec embed`.

For every training input (a GeoTIFF frame, or one date's files at several resolutions), random
crops of `crop_min`..`crop` px are coded with the codec through the public API as a user's
stream would be (one random quality per crop, or every quality), and each coded crop gives one
pair on the 16-px grid:

    input  decode_latents(stream, space="synthesis")                        [M, h, w]
    target TerraFM.patch_embed(reflectance of the DECODED frame, modality)  [h * w, D]

(the target is what the pixel path feeds TerraFM's transformer for that very stream). Coding is
the slow part on a CPU, so the pairs are made once and the adapter then trains on random
windows of them: Adam, MSE on the embedded patches plus `cosine_weight` x (1 - cosine), a
cosine-decayed learning rate, a fixed seed. Cells whose latents are NaN (all-nodata tiles) are
left out of the loss.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from terracodec.consumers.adapter import LatentAdapter, new_adapter
from terracodec.errors import InputError, ModelError

PATCH = 16
Progress = Callable[[int, dict], None]


@dataclass
class DistillConfig:
    steps: int = 2000
    crop: int = 192              # largest crop side (px)
    crop_min: int = 128          # smallest crop side (px), unless the input is smaller
    crops_per_input: int = 4
    qualities: tuple[int, ...] | None = None  # None: all of the codec model's
    all_qualities: bool = False  # code each crop at every quality (else one random quality a crop)
    batch_size: int = 8
    lr: float = 1e-3
    cosine_weight: float = 0.1
    width: int = 192
    seed: int = 0
    train_threads: int | None = 1  # torch threads while training: the adapter's small tensors
    # run fastest on one (and far slower when other processes share the cores); None: as set


@dataclass
class Pair:
    """One coded crop: the adapter's input and its target on the 16-px grid."""

    latents: Tensor  # [M, h, w] float32, NaN replaced by 0
    target: Tensor   # [D, h, w] float32
    valid: Tensor    # [h, w] bool: cells with latents
    quality: int


def model_qualities(model: str) -> list[int]:
    """The qualities of a codec model of `terracodec.models()`, or a one-line ModelError."""
    from terracodec.zoo.table import list_models

    entries = {m["name"]: m for m in list_models()}
    if model not in entries:
        raise ModelError(f"unknown model {model!r} (available: {', '.join(sorted(entries))})")
    return list(entries[model]["qualities"])


def decoded_input(stream: bytes | str | os.PathLike, frame: int = 0,
                  level: str | None = None) -> tuple[Tensor, str]:
    """A stream's frame as the pixel path of `tec embed` feeds TerraFM: 12-band reflectance
    [1, 12, H, W] padded to multiples of 16 px (repeating the last row / column, as
    `run_windows` does), and TerraFM's modality for the stream's level."""
    from terracodec.api.decoding import decode
    from terracodec.api.stream import open_stream
    from terracodec.consumers.embed import _terrafm_modality
    from terracodec.consumers.frames import frame_input
    from terracodec.consumers.terrafm import S2_BANDS

    reader, header = open_stream(stream)
    reader.close()
    modality = _terrafm_modality(header, level)
    pixels = decode(stream, frames=[frame]).pixels[0]
    x = torch.from_numpy(frame_input(header, frame, pixels, S2_BANDS, f"TerraFM ({modality})").values)[None]
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % PATCH, -w % PATCH
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, modality


def pair_of(stream: bytes, terrafm: Any, quality: int, level: str | None = None) -> tuple[Pair, str]:
    """The training pair of a one-frame stream, and the modality its target was embedded with."""
    from terracodec.api.latents import decode_latents

    y = torch.from_numpy(decode_latents(stream, space="synthesis").y_hat[0])
    x, modality = decoded_input(stream, 0, level)
    with torch.no_grad():
        patches = terrafm.patch_embed(x, modality)[0]
    target = patches.transpose(0, 1).reshape(-1, *y.shape[1:]).contiguous()
    valid = ~torch.isnan(y).any(0)
    return Pair(torch.nan_to_num(y, nan=0.0), target, valid, quality), modality


def encode_crop(stack: Any, window: tuple[int, int, int, int], model: str, quality: int,
                offset: bool | None) -> bytes:
    """Frame 0 of `stack` cut to `window` (row, col, height, width) and coded as a stream of
    its own, with the frame's band names, nodata and date (the scene's baseline offset)."""
    from terracodec.api.encoding import encode

    meta = stack.frames[0]
    pixels = np.ascontiguousarray(stack.read(0, *window))
    return encode(pixels, None, model=model, quality=quality, band_names=list(meta.descriptions),
                  nodata=meta.nodata, frame_names=[meta.name], timestamps=[meta.timestamp],
                  baseline_offset="auto" if offset is None else offset)


def _windows(height: int, width: int, cfg: DistillConfig, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """`cfg.crops_per_input` random square crops, sides multiples of 16 (or the whole input)."""
    top_h, top_w = height // PATCH * PATCH or height, width // PATCH * PATCH or width
    out = []
    for _ in range(cfg.crops_per_input):
        side = PATCH * int(rng.integers(cfg.crop_min // PATCH, cfg.crop // PATCH + 1))
        h, w = min(side, top_h), min(side, top_w)
        out.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w))
    return out


def make_pairs(inputs: Sequence[Any], model: str, terrafm: Any, cfg: DistillConfig, *,
               level: str | None = None, progress: Progress | None = None) -> tuple[list[Pair], dict, str]:
    """Training pairs of every input's crops, the `info()` of one coded crop (codec model and
    weights hash) and the modality."""
    from terracodec.api.describe import info
    from terracodec.io.baseline import has_baseline_offset
    from terracodec.io.raster import read_stack

    available = model_qualities(model)
    qualities = list(cfg.qualities or available)
    unknown = [q for q in qualities if q not in available]
    if unknown:
        raise ModelError(f"model {model} has no quality {unknown[0]} (available: {available})")
    if not inputs:
        raise InputError("no training inputs given")
    if not PATCH <= cfg.crop_min <= cfg.crop:
        raise InputError(f"crop sides must satisfy 16 <= crop_min <= crop, got {cfg.crop_min}..{cfg.crop}")
    rng = np.random.default_rng(cfg.seed)
    pairs: list[Pair] = []
    stream_info: dict = {}
    modality = ""
    for k, frame in enumerate(inputs):
        with read_stack([frame]) as stack:
            g = stack.grid
            if min(g.height, g.width) < PATCH:
                raise InputError(f"{stack.frames[0].name} is {g.height}x{g.width} px: too small for 16-px patches")
            offset = has_baseline_offset(stack, 0)
            for window in _windows(g.height, g.width, cfg, rng):
                for q in qualities if cfg.all_qualities else [int(rng.choice(qualities))]:
                    stream = encode_crop(stack, window, model, q, offset)
                    stream_info = stream_info or info(stream)
                    pair, found = pair_of(stream, terrafm, q, level)
                    if modality and found != modality:
                        raise InputError(f"{stack.frames[0].name} is {found}, the inputs before it {modality}")
                    modality = found
                    if bool(pair.valid.any()):  # an all-nodata crop teaches nothing
                        pairs.append(pair)
        if progress:
            progress(k + 1, {"stage": "pairs", "inputs": len(inputs), "pairs": len(pairs)})
    return pairs, stream_info, modality


def _batch(pairs: list[Pair], size: int, rng: np.random.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """`size` random pairs cut to one random common window (the smallest side among them)."""
    picked = [pairs[i] for i in rng.integers(0, len(pairs), size)]
    side_h = min(p.latents.shape[1] for p in picked)
    side_w = min(p.latents.shape[2] for p in picked)
    parts: list[list[Tensor]] = [[], [], []]
    for p in picked:
        r = int(rng.integers(0, p.latents.shape[1] - side_h + 1))
        c = int(rng.integers(0, p.latents.shape[2] - side_w + 1))
        for part, t in zip(parts, (p.latents, p.target, p.valid)):
            part.append(t[..., r : r + side_h, c : c + side_w])
    y, target, valid = (torch.stack(part) for part in parts)
    return y, target.flatten(2).transpose(1, 2), valid.flatten(1)


def loss_terms(pred: Tensor, target: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """(MSE, mean cosine) over the valid cells of [B, N, D] predictions and targets."""
    mse = ((pred - target) ** 2).mean(-1)[valid].mean()
    cosine = F.cosine_similarity(pred, target, dim=-1)[valid].mean()
    return mse, cosine


def latent_scale(pairs: list[Pair]) -> Tensor:
    """1 / the per-channel std of the training latents (valid cells)."""
    values = torch.cat([p.latents[:, p.valid] for p in pairs], dim=1)
    return 1.0 / values.std(dim=1).clamp_min(1e-6)


def train(adapter: LatentAdapter, pairs: list[Pair], cfg: DistillConfig,
          progress: Progress | None = None, log_every: int = 50) -> list[dict]:
    """Train `adapter` in place on `pairs`; returns the log (mean loss, MSE, cosine per row)."""
    if not pairs:
        raise InputError("no training pairs")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.train_threads or threads)
    try:
        return _train(adapter, pairs, cfg, progress, log_every)
    finally:
        torch.set_num_threads(threads)


def _train(adapter: LatentAdapter, pairs: list[Pair], cfg: DistillConfig, progress: Progress | None,
           log_every: int) -> list[dict]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed + 1)
    adapter.train()
    opt = torch.optim.Adam(adapter.parameters(), lr=cfg.lr)
    history: list[dict] = []
    window: list[tuple[float, float, float]] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
        y, target, valid = _batch(pairs, cfg.batch_size, rng)
        mse, cosine = loss_terms(adapter(y), target, valid)
        loss = mse + cfg.cosine_weight * (1 - cosine)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"adapter loss is {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append((loss.item(), mse.item(), cosine.item()))
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            loss_m, mse_m, cos_m = (float(np.mean(v)) for v in zip(*window))
            row = {"step": step + 1, "loss": loss_m, "mse": mse_m, "cosine": cos_m}
            history.append(row)
            window.clear()
            if progress:
                progress(step + 1, dict(row, stage="train"))
    adapter.eval()
    return history


def distill(inputs: Sequence[Any], *, model: str, terrafm: Any, encoder: str, terrafm_weights: str,
            cfg: DistillConfig, level: str | None = None,
            progress: Progress | None = None) -> tuple[LatentAdapter, list[dict]]:
    """A trained adapter for `model`'s latents and this TerraFM (`terrafm_weights`: its
    identity, `adapter.terrafm_identity`), and its training log."""
    pairs, stream_info, modality = make_pairs(inputs, model, terrafm, cfg, level=level, progress=progress)
    return fit(pairs, stream_info, modality, encoder=encoder, terrafm_weights=terrafm_weights, dim=terrafm.dim,
               cfg=cfg, progress=progress)


def fit(pairs: list[Pair], stream_info: dict, modality: str, *, encoder: str, terrafm_weights: str, dim: int,
        cfg: DistillConfig, progress: Progress | None = None) -> tuple[LatentAdapter, list[dict]]:
    """A new adapter (seeded, its input scale from the pairs) trained on `make_pairs`' output."""
    if not pairs:
        raise InputError("no training pairs")
    torch.manual_seed(cfg.seed)
    adapter = new_adapter(encoder=encoder, terrafm_weights=terrafm_weights, modality=modality,
                          codec_model=stream_info["model"], codec_weights_hash=stream_info["weights_hash"],
                          latent_channels=pairs[0].latents.shape[0], dim=dim, width=cfg.width)
    with torch.no_grad():
        adapter.latent_scale.copy_(latent_scale(pairs))
    history = train(adapter, pairs, cfg, progress)
    adapter.config["training"] = {"steps": cfg.steps, "pairs": len(pairs), "qualities": sorted({p.quality for p in pairs}),
                                  "crop": [cfg.crop_min, cfg.crop], "seed": cfg.seed, "final": history[-1]}
    return adapter, history


__all__ = ["DistillConfig", "Pair", "decoded_input", "distill", "encode_crop", "fit", "loss_terms", "make_pairs",
           "model_qualities", "pair_of", "train"]
