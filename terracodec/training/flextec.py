"""Training FlexTEC's entropy model on frozen TEC-ELIC transforms (`temporal.flextec_elic`).

The transforms and gains are the image model's and stay frozen, so every frame is analysed once,
up front. A step codes short sequences of latent crops frame by frame, as coding does, with a
quality k per frame drawn with probability proportional to k (the paper's schedule):

    series (clear dates) --views--> g_a * gain (frozen, once) --> y [T, M, h, w] per series view
    step: B crops of `frames` dates in date order (gaps up to max_gap), one k per frame
      tokens < k: teacher-forced, noisy likelihoods -> rate
      tokens >= k: round(mean), fed back as the next token's input (as the coder feeds them;
                   a no-grad pass gives them, a second pass learns through them)
      y_hat (+ dequantiser) vs y, in the synthesis' units, -> distortion
      the next frame's context is this frame's y_hat: the predicted latent, as on both sides
    loss = bits of tokens < k / (pixels x bands) + lambda x mean over channels (alpha_c x MSE_c)

`alpha_c` turns channel c's squared error (synthesis units) into the frame's (normalised units
per pixel and band): measured once per channel through the frozen synthesis on the training
latents (`channel_alphas`; they differ up to 30x between channels). With it, `lambda` means
what the image models' lambdas mean (`training.loop`). The same measure orders the channels for
repacking (`channel_order`: the model's `channel_order`, its first tokens the costliest to
predict).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from terracodec.temporal.model import TemporalState
from terracodec.training.temporal_prior import Series, pad_to_multiple, series_view


def _round_st(x: Tensor) -> Tensor:
    return x + (torch.round(x) - x).detach()


def drop_bands(x: Tensor, centre: Sequence[float], min_bands: int, rng: np.random.Generator) -> Tensor:
    """`x [T, C, H, W]` with a random subset of its bands (all but 6..C-1 of them, the same on
    every date) held at the centre, as the encoder holds a stack's absent bands."""
    keep = int(rng.integers(min_bands, x.shape[1]))
    absent = rng.permutation(x.shape[1])[keep:]
    x = x.clone()
    x[:, absent] = torch.tensor(centre, dtype=x.dtype)[absent, None, None]
    return x


@torch.no_grad()
def analyse(model: Any, series: Sequence[Series], views: int = 8, band_dropout: float = 0.0, seed: int = 0,
            report: Callable[[str], None] = lambda s: None) -> list[Tensor]:
    """Latents `y [T, M, h, w]` (coded units) of every series view; frames padded to 64 px as
    the coder pads tiles (`multiple`). `band_dropout`: the share of views coded with a random
    band subset (`drop_bands`), so that stacks of fewer bands look familiar."""
    model.eval()
    rng = np.random.default_rng(seed)
    out = []
    for s in series:
        x = pad_to_multiple(torch.from_numpy(s.frames), model.multiple)
        for view in (series_view(x, v) for v in range(views)):
            if rng.random() < band_dropout:
                view = drop_bands(view, model.config["centre"], int(model.config.get("min_bands", 6)), rng)
            out.append(torch.cat([model.analysis(view[t:t + 8].contiguous()) for t in range(0, len(view), 8)]))
        report(f"analysed {s.name}: {len(s.frames)} dates")
    return out


@torch.no_grad()
def channel_alphas(model: Any, latents: Sequence[Tensor], sigma: float = 0.5, samples: int = 4,
                   seed: int = 0) -> Tensor:
    """Per latent channel c (the latent's order): frame MSE per unit of latent MSE (synthesis units,
    `y / gain`, over all channels) when noise of std `sigma` is added to channel c alone, on real
    latents through the frozen synthesis. Their mean is the alpha of uniform noise."""
    g = torch.Generator().manual_seed(seed)
    gain = model.latent_gain().detach()
    m = gain.shape[0]
    num = torch.zeros(m, dtype=torch.float64)
    for i in torch.randint(len(latents), (samples,), generator=g).tolist():
        y = latents[i][:1]
        y = y[..., :16, :16]  # 256 px of frame: enough to measure, cheap to run m times
        base = model.synthesis(y)
        for start in range(0, m, 16):
            cs = torch.arange(start, min(m, start + 16))
            noisy = y.repeat(len(cs), 1, 1, 1)
            noise = sigma * torch.randn((len(cs), *y.shape[2:]), generator=g)
            noisy[torch.arange(len(cs)), cs] += noise * gain[cs, None, None]
            err = ((model.synthesis(noisy) - base) ** 2).flatten(1).mean(1)
            num[cs] += (err / ((noise ** 2).flatten(1).mean(1) / m)).double()
    return (num / samples).float()


@torch.no_grad()
def channel_order(model: Any, latents: Sequence[Tensor], alphas: Tensor) -> list[int]:
    """Latent channels by the frame error each costs when it is not sent, most first: its alpha
    times its variance (synthesis units) over every cell and date of `latents`."""
    gain = model.latent_gain().detach()
    cells = torch.cat([(y / gain[None, :, None, None]).permute(1, 0, 2, 3).reshape(y.shape[1], -1) for y in latents], 1)
    return torch.argsort(alphas * cells.var(1), descending=True).tolist()


def frame_pass(model: Any, y: Tensor, memory: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """One frame of a training sequence at quality k: (bits of the sent tokens, y_hat, features)."""
    em = model.entropy_model
    h, w = y.shape[-2:]
    windows = em.tokenizer.current(y)
    memory = em.match_memory(memory, windows.shape[0])
    tokens = _round_st(windows)
    if k < em.seq_len_dec:
        with torch.no_grad():
            first, _, _ = em.predict(tokens, memory)
        tokens = torch.cat([tokens[:, :k], torch.round(first[:, k:])], dim=1)
    means, scales, features = em.predict(tokens, memory)
    y_sent, likelihoods = em.bottleneck(windows, scales, means)
    bits = -torch.log2(likelihoods[:, :k].clamp_min(1e-9)).sum()
    y_hat = torch.cat([y_sent[:, :k], _round_st(means[:, k:])], dim=1)
    return bits, em.tokenizer.merge(y_hat, h, w), em.tokenizer.merge(features, h, w)


def sequence_loss(model: Any, y: Tensor, ks: Sequence[int], lmbda: float, alphas: Tensor) -> dict[str, Tensor]:
    """Loss of crops `y [B, T, M, h, w]` coded frame by frame with qualities `ks` (one per frame);
    `alphas`: each channel's frame MSE per unit latent MSE (`channel_alphas`)."""
    b, t, _, h, w = y.shape
    state, bits, mse = TemporalState(), y.new_zeros(()), y.new_zeros(())
    inverse = 1.0 / model.latent_gain()[None, :, None, None].detach()
    weight = alphas[None, :, None, None]
    for i in range(t):
        f_bits, y_hat, features = frame_pass(model, y[:, i], model.memory(state), ks[i])
        bits = bits + f_bits
        mse = mse + (weight * ((model.dequantize(y_hat, features) - y[:, i]) * inverse) ** 2).mean()
        state = model.advance(state, y_hat.detach())
    rate = bits / (b * t * h * w * 256 * model.bands)
    distortion = mse / t
    return {"loss": rate + lmbda * distortion, "bpppb": rate, "mse": distortion}


def draw_k(rng: np.random.Generator, tokens: int = 16) -> int:
    """k in 1..tokens with probability proportional to k."""
    k = np.arange(1, tokens + 1)
    return int(rng.choice(k, p=k / k.sum()))


def train_entropy_model(model: Any, latents: Sequence[Tensor], *, steps: int, batch_size: int, lr: float,
                        lmbda: float, frames: int = 3, max_gap: int = 2, crop: int = 8, seed: int = 0,
                        report: Callable[[int, dict], None] = lambda i, r: None,
                        max_minutes: float | None = None) -> list[dict]:
    """Adam on everything but the transforms and gains; returns the log rows."""
    frozen = {id(p) for p in model.transform_parameters()}
    learned = [p for p in model.parameters() if id(p) not in frozen]
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen)
    alphas = channel_alphas(model, latents, seed=seed)
    alpha = float(alphas.mean())
    model.train()
    opt = torch.optim.Adam(learned, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 20)
    rng = np.random.default_rng(seed)
    sizes: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, y in enumerate(latents):
        sizes[(min(crop, y.shape[2]), min(crop, y.shape[3]))].append(i)
    keys = sorted(sizes)
    weights = np.array([sum(latents[i].shape[0] for i in sizes[key]) * key[0] * key[1] for key in keys], np.float64)
    log, window, start = [], [], time.monotonic()
    for step in range(1, steps + 1):
        key = keys[int(rng.choice(len(keys), p=weights / weights.sum()))]
        crops = []
        for _ in range(max(1, batch_size * 16 // (key[0] * key[1]))):
            y = latents[sizes[key][int(rng.integers(len(sizes[key])))]]
            dates = [int(rng.integers(y.shape[0]))]
            for _ in range(frames - 1):  # later dates, gaps up to max_gap (at the end: repeat)
                dates.append(min(y.shape[0] - 1, dates[-1] + int(rng.integers(1, max_gap + 1))))
            top = int(rng.integers(y.shape[2] - key[0] + 1))
            left = int(rng.integers(y.shape[3] - key[1] + 1))
            crops.append(y[dates, :, top:top + key[0], left:left + key[1]])
        ks = [draw_k(rng) for _ in range(frames)]
        out = sequence_loss(model, torch.stack(crops), ks, lmbda, alphas)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(learned, 1.0)
        opt.step()
        sched.step()
        window.append([float(out[n]) for n in ("loss", "bpppb", "mse")])
        if step % 50 == 0 or step == steps:
            mean = np.mean(window, axis=0)
            window = []
            row = {"step": step, "loss": float(mean[0]), "bpppb": float(mean[1]), "mse": float(mean[2]),
                   "alpha": alpha, "seconds": round(time.monotonic() - start, 1)}
            log.append(row)
            report(step, row)
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            break
    model.eval()
    return log


__all__ = ["analyse", "channel_alphas", "channel_order", "draw_k", "drop_bands", "frame_pass", "sequence_loss",
           "train_entropy_model"]
