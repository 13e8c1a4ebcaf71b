"""Rate, distortion and Bjontegaard metrics for the benchmark suite, on raw DN.

Conventions (README): rate in bits per pixel per band (bpppb) = bits / (T*H*W*C), and bits per
pixel (bpp) = bits / (T*H*W); every PSNR states its peak (PSNR-10k: 10000 DN, PSNR-65k: 65535),
computed on the raw DN without clipping or offsets, so PSNR-65k = PSNR-10k + 16.33 dB exactly.

MS-SSIM follows Wang, Simoncelli & Bovik (2003) as CompressAI, pytorch-msssim and the TerraCodec
paper use it: 5 scales, 11x11 Gaussian window (sigma 1.5, "valid" filtering), K1 = 0.01,
K2 = 0.03, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 2x2 average pooling between scales,
negative contrast terms clipped to 0. It is computed on each band as a grey image with data
range 10000 DN (values above 10000 are *not* clipped) and averaged over the bands. Images whose
short side is below 161 px cannot hold 5 scales; they use the largest number of scales that
fits (weights renormalised to sum 1) and `ms_ssim_scales` says how many.

SAM (spectral angle mapper) is the angle between the spectra (vectors over bands) of the
original and the decoded pixel, in degrees, averaged over the pixels whose two spectra are both
non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

PEAK_10K = 10000.0
PEAK_65K = 65535.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_WINDOW = 11
MS_SSIM_SIGMA = 1.5
MS_SSIM_DATA_RANGE = 10000.0


# ----------------------------------------------------------------------------- rate


def bpppb(n_bytes: int, shape: Sequence[int]) -> float:
    """Bits per pixel per band of a stream of `n_bytes` for an array of `shape` ([T,]C,H,W)."""
    return 8.0 * n_bytes / float(np.prod(shape))


def bpp(n_bytes: int, shape: Sequence[int]) -> float:
    """Bits per pixel (all bands of a pixel together) for an array of `shape` ([T,]C,H,W)."""
    spatial = int(np.prod(shape[-2:])) * (int(shape[0]) if len(shape) == 4 else 1)
    return 8.0 * n_bytes / spatial


# ----------------------------------------------------------------------------- PSNR


def mse(x: np.ndarray, y: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray | float:
    """Mean squared error in DN^2 (float64, so that 16-bit differences cannot overflow)."""
    d = np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)
    return np.mean(d * d, axis=axis)


def psnr_from_mse(err: np.ndarray | float, peak: float) -> np.ndarray | float:
    """10 log10(peak^2 / mse); +inf where the error is zero."""
    err = np.asarray(err, dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = 10.0 * np.log10(peak * peak / err)
    return float(out) if out.ndim == 0 else out


def psnr(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    """PSNR in dB over all elements, with an explicit `peak` (PEAK_10K or PEAK_65K)."""
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {x.shape} vs {y.shape}")
    return psnr_from_mse(mse(x, y), peak)


def psnr_per_band(x: np.ndarray, y: np.ndarray, peak: float) -> np.ndarray:
    """PSNR of every band of [C, H, W] arrays (one value per band)."""
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"need two [C, H, W] arrays of one shape, got {x.shape} and {y.shape}")
    return np.atleast_1d(psnr_from_mse(mse(x, y, axis=(1, 2)), peak))


# ----------------------------------------------------------------------------- MS-SSIM


def ms_ssim_scales(height: int, width: int) -> int:
    """Scales that fit: the window (11 px) must fit at the coarsest scale after halvings."""
    side, scales = min(height, width), 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= MS_SSIM_WINDOW:
        scales += 1
        side = (side + 1) // 2
    return scales


def _gaussian_window() -> torch.Tensor:
    """The 11x11 Gaussian window (sigma 1.5) as a [5, 1, 11, 11] depthwise kernel."""
    r = torch.arange(MS_SSIM_WINDOW, dtype=torch.float64) - (MS_SSIM_WINDOW - 1) / 2
    g = torch.exp(-(r * r) / (2 * MS_SSIM_SIGMA**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).to(torch.float32)
    return w.expand(5, 1, MS_SSIM_WINDOW, MS_SSIM_WINDOW).contiguous()


def _ssim_deficits(x: torch.Tensor, d: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1 - SSIM, 1 - contrast-structure) means per image, for [N, 1, H, W] originals `x` and
    errors `d` = decoded - original, both already divided by the data range.

    Written in terms of the error so that float32 keeps its precision near SSIM = 1 (several
    times faster than float64 convolutions on a CPU): with y = x + d,
    cs = 1 - var(d) / (2 var(x) + 2 cov(x, d) + var(d) + C2) and
    l = 1 - mean(d)^2 / (mean(x)^2 + mean(y)^2 + C1), algebraically the usual formulas.
    """
    c1, c2 = 0.01**2, 0.03**2
    stats = F.conv2d(torch.cat([x, d, x * x, x * d, d * d], dim=1), window, groups=5)
    mx, md, xx, xd, dd = stats.unbind(dim=1)
    vx, cxd, vd = xx - mx * mx, xd - mx * md, dd - md * md
    cs_def = vd / (2 * vx + 2 * cxd + vd + c2)
    my = mx + md
    lum_def = md * md / (mx * mx + my * my + c1)
    ssim_def = lum_def + cs_def - lum_def * cs_def
    return ssim_def.double().mean(dim=(1, 2)), cs_def.double().mean(dim=(1, 2))


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling; an odd last row/column is repeated first (edge padding)."""
    pad_w, pad_h = x.shape[-1] % 2, x.shape[-2] % 2
    if pad_w or pad_h:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(x, kernel_size=2)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded: these small element-wise passes lose 2-10x to OpenMP
    synchronisation on a shared 2-core machine, and gain little on a quiet one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ms_ssim_per_band(x: np.ndarray, y: np.ndarray, data_range: float = MS_SSIM_DATA_RANGE) -> np.ndarray:
    """MS-SSIM of every band of [C, H, W] arrays (each band as a grey image); NaN when even one
    scale does not fit (short side below 11 px)."""
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"need two [C, H, W] arrays of one shape, got {x.shape} and {y.shape}")
    with _one_thread():
        return _ms_ssim_per_band(x, y, data_range)


def _ms_ssim_per_band(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
    scales = ms_ssim_scales(x.shape[1], x.shape[2])
    if scales == 0:
        return np.full(x.shape[0], np.nan)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    window = _gaussian_window()
    ref = np.asarray(x, dtype=np.float64)
    err = np.asarray(y, dtype=np.float64) - ref
    a = torch.from_numpy((ref / data_range).astype(np.float32))[:, None]
    d = torch.from_numpy((err / data_range).astype(np.float32))[:, None]
    factors = []
    for s in range(scales):
        ssim_def, cs_def = _ssim_deficits(a, d, window)
        if s == scales - 1:
            factors.append(torch.relu(1.0 - ssim_def))
        else:
            factors.append(torch.relu(1.0 - cs_def))
            a, d = _halve(a), _halve(d)
    stacked = torch.stack(factors)  # [scales, C]
    return torch.prod(stacked ** weights[:, None], dim=0).numpy()


def ms_ssim(x: np.ndarray, y: np.ndarray, data_range: float = MS_SSIM_DATA_RANGE) -> float:
    """MS-SSIM of [C, H, W] arrays: the mean over bands of the per-band MS-SSIM."""
    return float(np.mean(ms_ssim_per_band(x, y, data_range)))


# ----------------------------------------------------------------------------- SAM


def sam(x: np.ndarray, y: np.ndarray) -> float:
    """Mean spectral angle in degrees between [C, H, W] arrays (pixels with a zero spectrum on
    either side are left out; NaN when none is left)."""
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"need two [C, H, W] arrays of one shape, got {x.shape} and {y.shape}")
    a = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    b = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
    na, nb = np.sqrt((a * a).sum(0)), np.sqrt((b * b).sum(0))
    ok = (na > 0) & (nb > 0)
    if not ok.any():
        return float("nan")
    cos = (a[:, ok] * b[:, ok]).sum(0) / (na[ok] * nb[ok])
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


# ----------------------------------------------------------------------------- Bjontegaard


def _curve(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite, positive-rate points of one RD curve as (log rate, quality) arrays."""
    r = np.asarray(rate, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape:
        raise ValueError(f"{r.size} rates but {q.size} quality values")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    return np.log(r[keep]), q[keep]


def _mean_on_overlap(x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> float:
    """Mean of (f2 - f1) over the overlap of the x ranges, f = polynomial fit of y on x (cubic,
    or of degree points-1 for shorter curves); NaN when a curve has < 2 distinct x or no overlap."""
    if len(np.unique(x1)) < 2 or len(np.unique(x2)) < 2:
        return float("nan")
    lo, hi = max(x1.min(), x2.min()), min(x1.max(), x2.max())
    if not hi > lo:
        return float("nan")
    integrals = []
    for x, y in ((x1, y1), (x2, y2)):
        deg = min(3, len(np.unique(x)) - 1)
        p = np.polyint(np.polyfit(x, y, deg))
        integrals.append(np.polyval(p, hi) - np.polyval(p, lo))
    return float((integrals[1] - integrals[0]) / (hi - lo))


def bd_rate(rate_anchor: Sequence[float], quality_anchor: Sequence[float],
            rate_test: Sequence[float], quality_test: Sequence[float]) -> float:
    """Bjontegaard delta rate in percent of the test curve against the anchor (negative = the
    test codec needs fewer bits for the same quality). Cubic fit of log rate as a function of
    quality (e.g. PSNR), integrated over the overlapping quality range (VCEG-M33)."""
    lr1, q1 = _curve(rate_anchor, quality_anchor)
    lr2, q2 = _curve(rate_test, quality_test)
    diff = _mean_on_overlap(q1, lr1, q2, lr2)
    return float("nan") if math.isnan(diff) else (math.exp(diff) - 1.0) * 100.0


def bd_psnr(rate_anchor: Sequence[float], quality_anchor: Sequence[float],
            rate_test: Sequence[float], quality_test: Sequence[float]) -> float:
    """Bjontegaard delta quality (dB for PSNR) of the test curve against the anchor: cubic fit of
    quality as a function of log rate, integrated over the overlapping log-rate range."""
    lr1, q1 = _curve(rate_anchor, quality_anchor)
    lr2, q2 = _curve(rate_test, quality_test)
    return _mean_on_overlap(lr1, q1, lr2, q2)
