"""TESSERA v1 (github.com/ucam-eo/tessera, `tessera_infer`): one 128-d embedding per 10 m pixel-year.

Each pixel's year is two sets of observations: Sentinel-2 (10 bands in `S2_BANDS` order, each
standardised with TESSERA's published statistics, plus the day of year) and Sentinel-1 (VV, VH of
ascending and descending passes together, plus the day of year). A transformer per sensor reads
`SAMPLE_SIZE` observations drawn from the valid ones, a GRU-driven attention pool reduces the
sequence to one vector, and a linear layer maps the two concatenated vectors to 128 dimensions.

The module and parameter names below are the public inference model's (`s2_backbone`,
`s1_backbone`, `dim_reducer`, ...), so its checkpoints load strictly; the code is ours. Published
weights are not reachable from here: `load_tessera` reads a checkpoint file a user has.

Observation sampling (`embed_pixels`) follows the public `multi_tile_infer.py` draw for draw: per
pixel, `SAMPLE_SIZE` indices among its valid observations (with replacement when there are fewer,
among all of them when none is valid), sorted by time. The public script draws from NumPy's global
generator; we draw from `np.random.RandomState(seed)` in the same order (per batch of `batch_size`
pixels, per repeat: S2 for every pixel, then S1), so `np.random.seed(seed)` before its
`process_tile` with the same `batch_size` and `repeat_times` gives the public output exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from terracodec.consumers.checkpoint import WRAPPERS, read_checkpoint
from terracodec.errors import InputError, ModelError
from terracodec.weights import load_state

#: TESSERA's Sentinel-2 band order.
S2_BANDS: tuple[str, ...] = ("B04", "B02", "B03", "B08", "B8A", "B05", "B06", "B07", "B11", "B12")
#: Per-band statistics of TESSERA's training data (its `ssl_dataset.py`), S2 in DN without the
#: +1000 offset, S1 in TESSERA's scaled backscatter unit (see `tessera_inputs.s1_series`).
S2_MEAN = np.array([1711.0938, 1308.8511, 1546.4543, 3010.1293, 3106.5083,
                    2068.3044, 2685.0845, 2931.5889, 2514.6928, 1899.4922], np.float32)
S2_STD = np.array([1926.1026, 1862.9751, 1803.1792, 1741.7837, 1677.4543,
                   1888.7862, 1736.3090, 1715.8104, 1514.5199, 1398.4779], np.float32)
S1_MEAN = np.array([5484.0407, 3003.7812], np.float32)
S1_STD = np.array([1871.2334, 1726.0670], np.float32)
#: Observations per sensor that the model reads (`sample_size_s2` / `sample_size_s1`).
SAMPLE_SIZE = 40
#: Attention heads of the public inference model. Shapes do not reveal the count, so a checkpoint
#: trained with another one needs `heads=` (the public SSL-training builder used 8).
DEFAULT_HEADS = 4
#: Day of year of the all-zero stand-in observation the public dataset uses for an orbit
#: direction without data (`absent_s1`).
ABSENT_S1_DOY = 180
#: Prefixes of the public checkpoint that inference uses; the rest (the SSL projector) is dropped.
KEEP = ("s2_backbone.", "s1_backbone.", "dim_reducer.")


def standardise(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """`(x - mean) / (std + 1e-9)` in float32 over the last axis, TESSERA's arithmetic."""
    return ((np.asarray(values, np.float32) - mean) / (std + np.float32(1e-9))).astype(np.float32)


def _doy_encoding(doy: Tensor, width: int) -> Tensor:
    """Sinusoidal encoding of the day of year: the model's only notion of time (no index)."""
    rate = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * -(math.log(10000.0) / width))
    angle = doy.unsqueeze(-1).float() * rate.to(doy.device)
    out = torch.zeros(*doy.shape, width, device=doy.device)
    out[..., 0::2] = torch.sin(angle)
    out[..., 1::2] = torch.cos(angle)
    return out


class _GateCell(nn.Module):
    """Weights of TESSERA's hand-written GRU step. Unlike `nn.GRU`, its candidate state multiplies
    the reset gate in before the recurrent weight (`W_hh(r * h)`), so `nn.GRU` cannot stand in."""

    def __init__(self, width: int) -> None:
        super().__init__()
        for name in ("W_ir", "W_iz", "W_ih", "W_hr", "W_hz", "W_hh"):
            setattr(self, name, nn.Linear(width, width, bias=False))
        self.b_r = nn.Parameter(torch.zeros(width))
        self.b_z = nn.Parameter(torch.zeros(width))
        self.b_h = nn.Parameter(torch.zeros(width))


class _Recurrence(nn.Module):
    """The GRU run over the sequence; input projections for all steps are done in one product."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.gru_cell = _GateCell(width)

    def forward(self, x: Tensor) -> Tensor:
        c = self.gru_cell
        xr, xz, xn = c.W_ir(x), c.W_iz(x), c.W_ih(x)
        h = torch.zeros(x.shape[0], x.shape[2], device=x.device, dtype=x.dtype)
        steps = []
        for t in range(x.shape[1]):
            r = torch.sigmoid(xr[:, t] + c.W_hr(h) + c.b_r)
            z = torch.sigmoid(xz[:, t] + c.W_hz(h) + c.b_z)
            n = torch.tanh(xn[:, t] + c.W_hh(r * h) + c.b_h)
            h = (1 - z) * h + z * n
            steps.append(h)
        return torch.stack(steps, dim=1)


class _GruAttentionPool(nn.Module):
    """Weights over time from the normalised GRU context, applied to the encoder's sequence."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.temporal_context = _Recurrence(width)
        self.query = nn.Linear(width, 1)
        self.layer_norm = nn.LayerNorm(width)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 0:
            return x.new_zeros(x.shape[0], x.shape[2])
        if x.shape[1] == 1:  # the public model skips the GRU for a single observation
            return x[:, 0]
        weights = torch.softmax(self.query(self.layer_norm(self.temporal_context(x))), dim=1)
        return (weights * x).sum(dim=1)


class _SeriesEncoder(nn.Module):
    """One sensor's branch: [B, L, bands + 1] (values, then day of year) -> [B, width]."""

    def __init__(self, bands: int, width: int, heads: int, layers: int, feedforward: int) -> None:
        super().__init__()
        self.width = width
        self.embedding = nn.Sequential(nn.Linear(bands, width), nn.ReLU(), nn.Linear(width, width))
        layer = nn.TransformerEncoderLayer(width, heads, feedforward, dropout=0.1, activation="relu",
                                           batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=layers)
        self.attn_pool = _GruAttentionPool(width)

    def forward(self, x: Tensor) -> Tensor:
        h = self.embedding(x[:, :, :-1]) + _doy_encoding(x[:, :, -1], self.width)
        return self.attn_pool(self.transformer_encoder(h))


@dataclass(frozen=True)
class TesseraConfig:
    """Sizes of a TESSERA v1 inference model; the defaults are the public `build_inference_model`."""

    latent: int = 128
    heads: int = DEFAULT_HEADS
    s2_layers: int = 4
    s1_layers: int = 4
    s2_feedforward: int = 4096
    s1_feedforward: int = 4096
    fusion: str = "concat"


class TesseraV1(nn.Module):
    """S2 and S1 branches of width 4 x latent, fused ("concat" or "sum") and reduced to `latent`."""

    def __init__(self, config: TesseraConfig = TesseraConfig()) -> None:
        super().__init__()
        width = 4 * config.latent
        if config.fusion not in ("concat", "sum"):
            raise ModelError(f"TESSERA v1 fuses by 'concat' or 'sum', not {config.fusion!r}")
        if width % config.heads:
            raise ModelError(f"TESSERA v1 width {width} is not divisible by {config.heads} heads")
        self.config = config
        self.arch = (f"TESSERA v1 (latent {config.latent}, {config.s2_layers}+{config.s1_layers} layers, "
                     f"{config.heads} heads, {config.fusion})")
        self.s2_backbone = _SeriesEncoder(len(S2_BANDS), width, config.heads, config.s2_layers,
                                          config.s2_feedforward)
        self.s1_backbone = _SeriesEncoder(2, width, config.heads, config.s1_layers, config.s1_feedforward)
        fused = 2 * width if config.fusion == "concat" else width
        self.dim_reducer = nn.Sequential(nn.Linear(fused, config.latent))
        self.eval()

    def forward(self, s2_x: Tensor, s1_x: Tensor) -> Tensor:
        """[B, L, 11] S2 and [B, L1, 3] S1 (standardised values, then day of year) -> [B, latent]."""
        s2, s1 = self.s2_backbone(s2_x), self._s1(s1_x)
        return self.dim_reducer(torch.cat([s2, s1], dim=-1) if self.config.fusion == "concat" else s2 + s1)

    def _s1(self, s1_x: Tensor) -> Tensor:
        """The S1 branch; once for a batch whose pixels share one series (the stand-in for
        absent S1), which halves the cost of embedding without S1."""
        if s1_x.shape[0] > 1 and bool((s1_x == s1_x[:1]).all()):
            return self.s1_backbone(s1_x[:1]).expand(s1_x.shape[0], -1)
        return self.s1_backbone(s1_x)

    @classmethod
    def from_state(cls, state: Mapping[str, Tensor], heads: int = DEFAULT_HEADS) -> "TesseraV1":
        """A model sized to fit `state` (heads cannot be read from shapes: `DEFAULT_HEADS`)."""
        return cls(config_from_state(state, heads))


def _shape(state: Mapping[str, Tensor], key: str, ndim: int) -> tuple[int, ...]:
    value = state.get(key)
    if not isinstance(value, Tensor):
        raise ModelError(f"not a TESSERA v1 state dict: no {key}")
    if value.ndim != ndim:
        raise ModelError(f"not a TESSERA v1 state dict: {key} has shape {tuple(value.shape)}")
    return tuple(value.shape)


def _branch(state: Mapping[str, Tensor], prefix: str, bands: int) -> tuple[int, int, int]:
    """(width, layers, feedforward) of one branch, checked against its input bands."""
    width, found = _shape(state, f"{prefix}.embedding.0.weight", 2)
    if found != bands:
        raise ModelError(f"not a TESSERA v1 state dict: {prefix} takes {found} bands, not {bands}")
    pattern = re.compile(rf"^{re.escape(prefix)}\.transformer_encoder\.layers\.(\d+)\.")
    indices = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    if not indices:
        raise ModelError(f"not a TESSERA v1 state dict: {prefix} has no transformer layers")
    feedforward = _shape(state, f"{prefix}.transformer_encoder.layers.0.linear1.weight", 2)[0]
    return width, max(indices) + 1, feedforward


def config_from_state(state: Mapping[str, Tensor], heads: int = DEFAULT_HEADS) -> TesseraConfig:
    """The `TesseraConfig` whose model has `state`'s shapes; ModelError when none can."""
    s2_width, s2_layers, s2_ff = _branch(state, "s2_backbone", len(S2_BANDS))
    s1_width, s1_layers, s1_ff = _branch(state, "s1_backbone", 2)
    latent, fused = _shape(state, "dim_reducer.0.weight", 2)
    if s1_width != s2_width or s2_width != 4 * latent or fused not in (s2_width, 2 * s2_width):
        raise ModelError(f"not a TESSERA v1 state dict: widths {s2_width}/{s1_width}, "
                         f"reducer {fused} -> {latent}")
    return TesseraConfig(latent, heads, s2_layers, s1_layers, s2_ff, s1_ff,
                         "concat" if fused == 2 * s2_width else "sum")


def inference_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The public checkpoint's keys that inference loads, as its loader cleans them: torch.compile's
    `_orig_mod.` removed, then only the two branches and the reducer kept."""
    clean = {k.replace("_orig_mod.", "").removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in clean.items() if k.startswith(KEEP)}


def load_tessera(path: str | Path, heads: int = DEFAULT_HEADS, device: str | torch.device = "cpu") -> TesseraV1:
    """A TESSERA v1 model from a `.safetensors` or `.pt` file (a bare state dict, or the public
    training checkpoint `{"model_state": ...}`), loaded strictly and in eval mode."""
    state = inference_state(read_checkpoint(path, wrappers=("model_state", "model_state_dict", *WRAPPERS)))
    model = TesseraV1.from_state(state, heads)
    load_state(model, state, str(path))
    return model.to(device).eval()


@dataclass(frozen=True)
class PixelSeries:
    """One sensor's observations of N pixels: standardised `values` [N, T, C], integer day of
    year `doy` [N, T] or [T], and `valid` [N, T] (False: never drawn unless nothing is valid)."""

    values: np.ndarray
    doy: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        v = np.asarray(self.values)
        if v.ndim != 3:
            raise InputError(f"pixel series values must be [N, T, C], got shape {v.shape}")
        if np.asarray(self.valid).shape != v.shape[:2]:
            raise InputError(f"validity shape {np.asarray(self.valid).shape} does not match values {v.shape[:2]}")
        doy = np.asarray(self.doy)
        if doy.shape not in (v.shape[1:2], v.shape[:2]):
            raise InputError(f"day-of-year shape {doy.shape} does not match values {v.shape[:2]}")

    def rows(self, sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values, day of year [n, T] and validity of pixels `sl`."""
        values = np.asarray(self.values)[sl]
        doy = np.broadcast_to(np.asarray(self.doy), np.asarray(self.values).shape[:2])[sl]
        return values, doy, np.asarray(self.valid, bool)[sl]


def absent_s1(n: int) -> PixelSeries:
    """What the public dataset feeds for an orbit direction without data: one observation of raw
    zeros (standardised) at day `ABSENT_S1_DOY`; invalid, so drawn only when nothing else is."""
    values = np.broadcast_to(standardise(np.zeros(2), S1_MEAN, S1_STD), (n, 1, 2))
    return PixelSeries(values, np.array([ABSENT_S1_DOY]), np.zeros((n, 1), bool))


def _draw(series: tuple[np.ndarray, np.ndarray, np.ndarray], size: int, rng: np.random.RandomState) -> np.ndarray:
    """[n, size, C + 1] observations per pixel, drawn as the public sampler draws them."""
    values, doy, valid = series
    out = np.empty((values.shape[0], size, values.shape[2] + 1), np.float32)
    for b in range(values.shape[0]):
        pool = np.flatnonzero(valid[b])
        if pool.size == 0:
            pool = np.arange(valid.shape[1])
        pick = np.sort(rng.choice(pool, size=size, replace=pool.size < size))
        out[b, :, :-1] = values[b, pick]
        out[b, :, -1] = doy[b, pick]
    return out


def _joined_s1(asc: PixelSeries | None, desc: PixelSeries | None, n: int) -> PixelSeries:
    """Ascending then descending observations, each absent direction replaced by `absent_s1`."""
    parts = [s if s is not None and np.asarray(s.values).shape[1] > 0 else absent_s1(n) for s in (asc, desc)]
    rows = [p.rows(slice(None)) for p in parts]
    return PixelSeries(*(np.concatenate([r[i] for r in rows], axis=1) for i in range(3)))


def embed_pixels(model: TesseraV1, s2: PixelSeries, s1_asc: PixelSeries | None = None,
                 s1_desc: PixelSeries | None = None, *, seed: int = 0, repeats: int = 1,
                 batch_size: int = 1024, sample_size: int = SAMPLE_SIZE) -> np.ndarray:
    """[N, latent] float32 embeddings of N pixels, averaged over `repeats` draws of observations.

    Values are standardised (`tessera_inputs` does it from DN). Missing S1 (None or no
    observations) is what the public code does without SAR: see `absent_s1`."""
    n = np.asarray(s2.values).shape[0]
    if np.asarray(s2.values).shape[1] == 0 and n:
        raise InputError("TESSERA needs at least one Sentinel-2 observation per pixel")
    for name, s in (("S1 ascending", s1_asc), ("S1 descending", s1_desc)):
        if s is not None and np.asarray(s.values).shape[0] != n:
            raise InputError(f"{name} has {np.asarray(s.values).shape[0]} pixels, S2 has {n}")
    s1 = _joined_s1(s1_asc, s1_desc, n)
    device = next(model.parameters()).device
    rng = np.random.RandomState(seed)
    out = np.zeros((n, model.config.latent), np.float32)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            s2_rows, s1_rows, total = s2.rows(sl), s1.rows(sl), None
            for _ in range(repeats):
                s2_x = torch.from_numpy(_draw(s2_rows, sample_size, rng)).to(device)
                s1_x = torch.from_numpy(_draw(s1_rows, sample_size, rng)).to(device)
                z = model(s2_x, s1_x)
                total = z if total is None else total + z
            out[sl] = (total / float(repeats)).float().cpu().numpy()
    return out


__all__ = [
    "ABSENT_S1_DOY", "DEFAULT_HEADS", "S1_MEAN", "S1_STD", "S2_BANDS", "S2_MEAN", "S2_STD", "SAMPLE_SIZE",
    "PixelSeries", "TesseraConfig", "TesseraV1", "absent_s1", "config_from_state", "embed_pixels",
    "inference_state", "load_tessera", "standardise",
]
