r"""Location-scale Gaussian conditional (VCT / TEC-TT): tables indexed by mean offset and scale.

A latent `y` with predicted mean `mu` and scale parameter `sigma` is coded as the integer
`round(y - c)` around an integer centre `c`, with a table for the Gaussian of mean `o_j` (the
fractional part of `mu`, one of `N` offsets) and scale `s_k` (one of `S` log-spaced scales).

Grids (the reference's, `N = 100`, `S = 256` by default)::

    o_j = j / N - 1/2                     j = 0 .. N-1   (o_0 = 0 when N == 1)
    s_k = m * (M / m + 1) ** (k / (S-1))  k = 0 .. S-1   (m = min_scale = 0.01, M = 256)
    vsp(x) = x + 1 if x > 0 else 1 / (1 - x)       "very softplus": raw sigma -> positive
    index(sigma) = log((vsp(sigma) + m) / m) / log(M / m + 1) * (S-1)   (continuous)

so `s_{index(sigma)} = vsp(sigma) + m`. Table row `j * S + k` holds the Gaussian (mean `o_j`,
scale `s_k`) on `[floor(o_j + s_k z), ceil(o_j - s_k z)]`, `z = Phi^-1(tail_mass / 2)`
(`tail_mass = 2**-8`), the escape symbol carrying the mass outside; values beyond the table are
escaped and stored exactly by the coder.

**Our rule (one rule for the evaluation likelihood and for coding): round to the nearest grid
point.** The scale row is `k = #{thresholds < sigma}`, with the thresholds the raw sigmas at
`index = k + 1/2` (precomputed in float64, compared exactly: round half down, identical on every
device); the mean is snapped to the lattice `c + o_j` (`kernels/quantize.py`:
`k' = round((mu + 1/2) N)`, `c = floor(k' / N)`, `j = k' - c N`). The reference truncates the
scale index (and the mean index) when coding but rounds the scale index when estimating bits;
truncation always picks a narrower Gaussian than predicted (up to one bin, 4% in scale, on
average half of it), which biases the rate estimate and wastes bits, whereas rounding is unbiased
in the log domain and the training likelihood (continuous index) is its direct relaxation.
In eval mode `forward` returns exactly the likelihood of the coded table cell.

Training (`forward` with `training=True`) follows the reference exactly: continuous indexes,
uniform noise for the likelihood, straight-through rounding for the returned values.

**The reference's likelihood, to reproduce its bit estimates** (terracodec 0.3.1,
`GsnConditionalLocScaleShift.forward`; `rst` is round with straight-through gradient, `clamp`
uses CompressAI's LowerBound gradient rule, `round` is round-half-to-even)::

    s_idx  = (log(vsp(sigma) + 0.01) - log(0.01)) / log(256 / 0.01 + 1) * 255
             (eval: s_idx = round(s_idx));  s_idx = clamp(s_idx, 0, 255)
    m_idx  = clamp((mu - rst(mu) + 0.5) * 100, 0, 99)              (never rounded)
    s'     = exp(s_idx / 255 * log(256 / 0.01 + 1) + log(0.01))
    mu'    = m_idx / 100 - 0.5
    y~     = y - rst(mu) + u,  u ~ U(-1/2, 1/2)    (eval: y~ = round(y - rst(mu)))
    p      = max(Phi((1/2 - |y~ - mu'|) / s') - Phi((-1/2 - |y~ - mu'|) / s'), 1e-9)
    bits   = -log2(p), summed over elements;  Phi(z) = erfc(-z / sqrt(2)) / 2

(no lower bound on `s'` besides `s_idx >= 0`). Its coder used row `int(m_idx) * 256 +
int(s_idx_continuous)` (both truncated, after clamping) and the symbol `round(y - round(mu))`.

Tables: `N * S` rows (25600 x ~1480 int32, ~150 MB, built in seconds, vectorised over blocks of
scales) are built lazily on first use, cached on disk under `$TERRACODEC_CACHE` (default
`~/.cache/terracodec/`) in a compact, pickle-free `.npz` keyed by the parameters, and verified by
their sha256 on load (a mismatching or damaged file is rebuilt). Tests use small `N`, `S`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from terracodec.entropy.base import EntropyModel
from terracodec.entropy.cdf import PRECISION, quantize_pmf, table_hash
from terracodec.kernels.likelihood import gaussian_likelihood
from terracodec.kernels.quantize import location_scale_quantize
from terracodec.layers.bounds import lower_bound

TABLE_RECIPE = 1  # bump when the table construction changes (part of the cache key)
# table_hash() of the default tables (100 x 256, 0.01 .. 256, tail 2**-8), as built here.
DEFAULT_TABLE_SHA256 = "dcd7c7cd84681b7839b2fe61a18df96eb895a7cfb5cbaae366cde81895701b29"
_SCALE_BLOCK = 16  # scales per vectorised block when building tables


def very_softplus(x: Tensor) -> Tensor:
    """`x + 1` for x > 0, `1 / (1 - x)` otherwise: a positive, monotone map of raw scales."""
    return torch.where(x > 0, torch.clamp(x, min=0) + 1.0, 1.0 / (1.0 - torch.clamp(x, max=0)))


def inverse_very_softplus(v: Tensor) -> Tensor:
    return torch.where(v > 1, v - 1.0, 1.0 - 1.0 / v)


def _round_st(x: Tensor) -> Tensor:
    return x + (torch.round(x) - x).detach()


def cache_dir() -> Path:
    """Where built tables are cached: `$TERRACODEC_CACHE` or `~/.cache/terracodec`."""
    root = os.environ.get("TERRACODEC_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "terracodec"


class LocationScaleGaussianConditional(EntropyModel):
    """Gaussian conditional with (mean offset, scale) tables; see the module docstring."""

    def __init__(
        self,
        num_means: int = 100,
        num_scales: int = 256,
        *,
        min_scale: float = 0.01,
        max_scale: float = 256.0,
        tail_mass: float = 2**-8,
        likelihood_bound: float = 1e-9,
    ) -> None:
        super().__init__(likelihood_bound=likelihood_bound)
        if num_means < 1 or num_scales < 2:
            raise ValueError("need num_means >= 1 and num_scales >= 2")
        if not 0 < min_scale < max_scale:
            raise ValueError("need 0 < min_scale < max_scale")
        if not 0 < tail_mass < 1:
            raise ValueError("tail_mass must lie in (0, 1)")
        self.num_means = int(num_means)
        self.num_scales = int(num_scales)
        self.min_scale = float(min_scale)
        self.max_scale = float(max_scale)
        self.tail_mass = float(tail_mass)
        self.mean_shift = 0.5 if self.num_means > 1 else 0.0
        # Tables are a pure function of the parameters: not part of the state dict.
        for name in self._resizable_buffers:
            self.register_buffer(name, torch.zeros(0, dtype=torch.int32), persistent=False)
        self._hash = ""
        self._log_range = math.log(self.max_scale / self.min_scale + 1.0)
        grid = torch.arange(self.num_scales, dtype=torch.float64)
        self.scale_grid = self.min_scale * torch.exp(grid / (self.num_scales - 1) * self._log_range)
        self.mean_grid = torch.arange(self.num_means, dtype=torch.float64) / self.num_means - (
            self.mean_shift
        )
        mid = (grid[:-1] + 0.5) / (self.num_scales - 1) * self._log_range
        # raw sigma at index k + 1/2: row k covers (thresholds[k-1], thresholds[k]]
        self.thresholds = inverse_very_softplus(self.min_scale * torch.expm1(mid))

    def config(self) -> dict:
        return {
            "num_means": self.num_means,
            "num_scales": self.num_scales,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
            "tail_mass": self.tail_mass,
            "precision": PRECISION,
            "recipe": TABLE_RECIPE,
        }

    # ----------------------------------------------------------------- index maps
    def scale_to_index(self, scales: Tensor) -> Tensor:
        """Continuous scale index of raw scales (differentiable)."""
        shifted = very_softplus(scales) + self.min_scale
        return (torch.log(shifted) - math.log(self.min_scale)) / self._log_range * (
            self.num_scales - 1
        )

    def index_to_scale(self, index: Tensor) -> Tensor:
        return torch.exp(index / (self.num_scales - 1) * self._log_range + math.log(self.min_scale))

    def quantize_parameters(
        self, inputs: Optional[Tensor], scales: Tensor, means: Tensor
    ) -> tuple[Optional[Tensor], Tensor, Tensor]:
        """(int32 symbols `round(y - c)`, int32 table rows, int32 centres `c`); the coding rule."""
        return location_scale_quantize(
            inputs.detach() if inputs is not None else None,
            means.detach(),
            scales.detach(),
            self.thresholds,
            self.num_means,
            self.mean_shift,
        )

    # ----------------------------------------------------------------- likelihood
    def forward(
        self, inputs: Tensor, scales: Tensor, means: Tensor, training: Optional[bool] = None
    ) -> tuple[Tensor, Tensor]:
        """(quantised values, likelihoods). Training: the reference's relaxation (continuous
        indexes, noisy likelihood, straight-through rounding); eval: the coded cell."""
        if training is None:
            training = self.training
        bound = self.likelihood_lower_bound.bound if self.use_likelihood_bound else None
        if not training:
            symbols, rows, centers = self.quantize_parameters(inputs, scales, means)
            mean = self.mean_grid.to(inputs.device, inputs.dtype)[rows // self.num_scales]
            scale = self.scale_grid.to(inputs.device, inputs.dtype)[rows % self.num_scales]
            values = symbols.to(inputs.dtype)
            likelihood = gaussian_likelihood(values, scale, mean, None, bound)
            return values + centers.to(inputs.dtype), likelihood

        zero = torch.zeros(1, dtype=inputs.dtype, device=inputs.device)
        index = self.scale_to_index(scales)
        index = -lower_bound(-lower_bound(index, zero), zero - (self.num_scales - 1))
        scale = self.index_to_scale(index)
        center = _round_st(means)
        if self.num_means > 1:
            mean_index = (means - center + 0.5) * self.num_means
            mean_index = -lower_bound(-lower_bound(mean_index, zero), zero - (self.num_means - 1))
            mean = mean_index / self.num_means - 0.5
        else:
            mean = torch.zeros_like(means)
        centred = inputs - center
        noisy = self.quantize(centred, "noise")
        likelihood = gaussian_likelihood(noisy, scale, mean, None, bound)
        return _round_st(centred) + center, likelihood

    # ----------------------------------------------------------------- tables
    def update(self, force: bool = False) -> bool:
        """Load the tables from the disk cache or build them; False when present and not force."""
        if self.has_tables() and not force:
            return False
        (cdf, lengths, offsets), digest = load_or_build_tables(self.config())
        self._set_tables(cdf, lengths, offsets)
        self._hash = digest
        if self.is_default() and digest != DEFAULT_TABLE_SHA256:
            warnings.warn(
                "the location-scale tables built on this machine differ from the canonical ones "
                "(another float64 erfc?): streams coded here will not decode elsewhere",
                RuntimeWarning,
                stacklevel=2,
            )
        return True

    def is_default(self) -> bool:
        """True for the reference parameters (whose table hash is known)."""
        return self.config() == LocationScaleGaussianConditional().config()

    def _ensure_tables(self) -> None:
        if not self.has_tables():
            self.update()

    def table_hash(self) -> str:
        """sha256 of the tables (known since they were built or verified: not recomputed)."""
        self._ensure_tables()
        return self._hash

    # ----------------------------------------------------------------- coding
    def compress(self, inputs: Tensor, scales: Tensor, means: Tensor) -> bytes:  # type: ignore[override]
        """One rANS stream for the whole tensor (symbols `round(y - c)`, rows by the rule)."""
        self._ensure_tables()
        symbols, rows, _ = self.quantize_parameters(inputs, scales, means)
        return self.compress_symbols(symbols, rows)

    def decompress(  # type: ignore[override]
        self, data: bytes, scales: Tensor, means: Tensor, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """Decoded values `symbol + c`, shaped like `scales`/`means` (broadcast)."""
        self._ensure_tables()
        _, rows, centers = self.quantize_parameters(None, scales, means)
        symbols = self.decompress_symbols(data, rows)
        return (symbols.to(torch.int64) + centers.to(torch.int64)).to(dtype)


# --------------------------------------------------------------------------- table building
def build_tables(config: dict) -> tuple[Tensor, Tensor, Tensor]:
    """(cdf int32 [N*S, Lmax+2], lengths int32, offsets int32) for a parameter set (CPU, float64)."""
    n_means, n_scales = int(config["num_means"]), int(config["num_scales"])
    log_range = math.log(config["max_scale"] / config["min_scale"] + 1.0)
    k = torch.arange(n_scales, dtype=torch.float64)
    scales = config["min_scale"] * torch.exp(k / (n_scales - 1) * log_range)
    shift = 0.5 if n_means > 1 else 0.0
    means = torch.arange(n_means, dtype=torch.float64) / n_means - shift
    z = float(torch.special.ndtri(torch.tensor(config["tail_mass"] / 2, dtype=torch.float64)))

    mu = means[:, None].expand(n_means, n_scales)
    sigma = scales[None, :].expand(n_means, n_scales)
    minima = torch.floor(mu + sigma * z)
    maxima = torch.ceil(mu - sigma * z)
    lengths = (maxima - minima + 1).to(torch.int64)  # [N, S]
    width = int(lengths.max()) + 2
    cdf = torch.zeros((n_means, n_scales, width), dtype=torch.int32)

    def phi(t: Tensor) -> Tensor:
        return 0.5 * torch.erfc(-(2**-0.5) * t)

    for k0 in range(0, n_scales, _SCALE_BLOCK):
        block = slice(k0, min(k0 + _SCALE_BLOCK, n_scales))
        b_mu, b_sigma = mu[:, block].reshape(-1), sigma[:, block].reshape(-1)
        b_min, b_max = minima[:, block].reshape(-1), maxima[:, block].reshape(-1)
        b_len = lengths[:, block].reshape(-1)
        x = b_min[:, None] + torch.arange(int(b_len.max()), dtype=torch.float64)[None, :]
        v = torch.abs(x - b_mu[:, None])
        s = b_sigma[:, None]
        pmf = phi((0.5 - v) / s) - phi((-0.5 - v) / s)
        tail = phi((b_min - 0.5 - b_mu) / b_sigma) + phi((b_mu - b_max - 0.5) / b_sigma)
        rows = quantize_pmf(pmf, b_len, tail)
        cdf[:, block, : rows.shape[1]] = rows.reshape(n_means, -1, rows.shape[1])
    return (
        cdf.reshape(n_means * n_scales, width),
        (lengths + 2).reshape(-1).to(torch.int32),
        minima.reshape(-1).to(torch.int32),
    )


def _cache_file(config: dict) -> Path:
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / f"location-scale-{key}.npz"


def _valid_positions(lengths: Tensor, width: int) -> np.ndarray:
    """Flat positions (in a [rows, width] table) of entries 1 .. len-1 of every row."""
    counts = lengths.numpy().astype(np.int64) - 1  # symbols per row
    if counts.min() < 1:
        raise ValueError("every row needs at least one symbol")
    ends = np.cumsum(counts)
    row = np.repeat(np.arange(counts.size, dtype=np.int64), counts)
    within = np.arange(int(ends[-1]), dtype=np.int64) - np.repeat(ends - counts, counts)
    return row * width + 1 + within


def _pack(cdf: Tensor, lengths: Tensor) -> np.ndarray:
    """Frequencies of every valid symbol, row after row, as uint16 (each is in [1, 2**16 - 1])."""
    flat = cdf.numpy().reshape(-1)
    pos = _valid_positions(lengths, cdf.shape[1])
    return (flat[pos] - flat[pos - 1]).astype("<u2")


def _unpack(freq: np.ndarray, lengths: Tensor) -> Tensor:
    """Inverse of `_pack`: the padded int32 table (works on the ~4M valid entries only)."""
    width = int(lengths.max())
    pos = _valid_positions(lengths, width)
    if pos.size != freq.size:
        raise ValueError("frequency count does not match the lengths")
    counts = lengths.numpy().astype(np.int64) - 1
    running = np.cumsum(freq, dtype=np.int64)
    ends = np.cumsum(counts)
    before = np.concatenate(([0], running[ends[:-1] - 1]))  # running sum before each row
    table = np.zeros(lengths.numel() * width, dtype=np.int32)
    table[pos] = running - np.repeat(before, counts)
    return torch.from_numpy(table.reshape(lengths.numel(), width))


def _read_cache(path: Path, config: dict) -> Optional[tuple[tuple[Tensor, Tensor, Tensor], str]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = json.loads(bytes(archive["config"]).decode())
            expected = bytes(archive["sha256"]).decode()
            lengths = torch.from_numpy(archive["lengths"].astype(np.int32))
            offsets = torch.from_numpy(archive["offsets"].astype(np.int32))
            freq = archive["frequencies"]
        if stored != config or freq.dtype != np.dtype("<u2"):
            return None
        cdf = _unpack(freq, lengths)
        if not bool((cdf.max(dim=1).values == 1 << PRECISION).all()):
            return None
        if table_hash(cdf, lengths, offsets) != expected:
            return None
        return (cdf, lengths, offsets), expected
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        return None


def _write_cache(
    path: Path, config: dict, tables: tuple[Tensor, Tensor, Tensor], digest: str
) -> None:
    cdf, lengths, offsets = tables
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return  # a read-only cache is not an error: the tables are rebuilt next time
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                config=np.frombuffer(json.dumps(config, sort_keys=True).encode(), dtype=np.uint8),
                sha256=np.frombuffer(digest.encode(), dtype=np.uint8),
                lengths=lengths.numpy(),
                offsets=offsets.numpy(),
                frequencies=_pack(cdf, lengths),
            )
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def load_or_build_tables(config: dict) -> tuple[tuple[Tensor, Tensor, Tensor], str]:
    """(tables, their hash) for `config`, from the disk cache (hash-verified) or freshly built
    (and then cached)."""
    path = _cache_file(config)
    if path.exists():
        cached = _read_cache(path, config)
        if cached is not None:
            return cached
    tables = build_tables(config)
    digest = table_hash(*tables)
    _write_cache(path, config, tables, digest)
    return tables, digest


__all__ = [
    "LocationScaleGaussianConditional",
    "build_tables",
    "load_or_build_tables",
    "cache_dir",
    "very_softplus",
]
