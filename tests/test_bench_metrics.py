"""Benchmark metrics against known values: rate, PSNR, MS-SSIM, SAM, Bjontegaard deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from terracodec.bench import metrics as m

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]
PSNRS = [30.0, 33.5, 37.0, 40.0, 42.5]


def _smooth_image(bands: int, size: int, seed: int = 0) -> np.ndarray:
    """A textured, spatially correlated uint16 image (random walk + gradient)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 30, (bands, size, size)), axis=1), axis=2)
    walk = (walk - walk.min()) / (walk.max() - walk.min())
    return (500 + 4000 * walk).astype(np.uint16)


# ----------------------------------------------------------------------------- rate


def test_bpppb_and_bpp_count_all_pixels_and_bands():
    assert m.bpppb(1000, (13, 100, 100)) == pytest.approx(8000 / 130000)
    assert m.bpppb(1000, (2, 13, 100, 100)) == pytest.approx(8000 / 260000)
    assert m.bpp(1000, (13, 100, 100)) == pytest.approx(8000 / 10000)
    assert m.bpp(1000, (2, 13, 100, 100)) == pytest.approx(8000 / 20000)


# ----------------------------------------------------------------------------- PSNR


def test_psnr_of_a_known_error():
    x = np.full((3, 8, 8), 1000, np.uint16)
    y = x + np.uint16(10)  # MSE = 100
    assert m.psnr(x, y, m.PEAK_10K) == pytest.approx(10 * math.log10(10000**2 / 100))  # 60 dB
    assert m.psnr(x, y, m.PEAK_10K) == pytest.approx(60.0)
    assert m.psnr(x, y, m.PEAK_65K) - m.psnr(x, y, m.PEAK_10K) == pytest.approx(20 * math.log10(6.5535))


def test_psnr_does_not_wrap_uint16_differences():
    x = np.zeros((1, 4, 4), np.uint16)
    y = np.full((1, 4, 4), 100, np.uint16)  # x - y would wrap in uint16
    assert m.psnr(x, y, m.PEAK_10K) == pytest.approx(40.0)
    assert m.psnr(y, x, m.PEAK_10K) == pytest.approx(40.0)


def test_psnr_is_infinite_without_error_and_rejects_mismatched_shapes():
    x = np.arange(48, dtype=np.uint16).reshape(3, 4, 4)
    assert m.psnr(x, x.copy(), m.PEAK_10K) == math.inf
    with pytest.raises(ValueError):
        m.psnr(x, x[:2], m.PEAK_10K)


def test_psnr_per_band():
    x = np.full((3, 4, 4), 2000, np.uint16)
    y = x.copy()
    y[0] += 1      # MSE 1   -> 80 dB
    y[1] += 100    # MSE 1e4 -> 40 dB
    bands = m.psnr_per_band(x, y, m.PEAK_10K)
    assert bands[0] == pytest.approx(80.0)
    assert bands[1] == pytest.approx(40.0)
    assert bands[2] == math.inf


# ----------------------------------------------------------------------------- MS-SSIM


def test_ms_ssim_of_identical_images_is_one():
    x = _smooth_image(2, 176)
    assert m.ms_ssim_scales(176, 176) == 5
    assert m.ms_ssim(x, x.copy()) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_decreases_with_noise():
    x = _smooth_image(2, 176)
    rng = np.random.default_rng(1)
    values = []
    for sigma in (5, 50, 500):
        y = np.clip(x + rng.normal(0, sigma, x.shape), 0, 65535).astype(np.uint16)
        values.append(m.ms_ssim(x, y))
    assert 1.0 > values[0] > values[1] > values[2] > 0.0


def test_ms_ssim_matches_pytorch_msssim():
    pm = pytest.importorskip("pytorch_msssim")
    import torch

    x = _smooth_image(3, 192, seed=2).astype(np.float64)
    y = x + np.random.default_rng(3).normal(0, 40, x.shape)
    ours = m.ms_ssim_per_band(x, y)
    ref = pm.ms_ssim(torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None], data_range=10000.0,
                     win_size=11, win_sigma=1.5, size_average=False).numpy().ravel()
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_ms_ssim_uses_fewer_scales_on_small_images():
    assert m.ms_ssim_scales(160, 400) == 4
    assert m.ms_ssim_scales(64, 64) == 3
    assert m.ms_ssim_scales(10, 64) == 0
    x = _smooth_image(1, 64)
    assert m.ms_ssim(x, x.copy()) == pytest.approx(1.0)
    assert math.isnan(m.ms_ssim(x[:, :8, :8], x[:, :8, :8]))


# ----------------------------------------------------------------------------- SAM


def test_sam_identical_spectra_is_zero_and_scaled_spectra_too():
    x = _smooth_image(4, 16)
    assert m.sam(x, x.copy()) == pytest.approx(0.0, abs=1e-6)
    assert m.sam(x // 2 * 2, (x // 2) * 4) == pytest.approx(0.0, abs=1e-6)  # same direction


def test_sam_orthogonal_spectra_is_90_degrees():
    x = np.zeros((2, 3, 3), np.uint16)
    y = np.zeros((2, 3, 3), np.uint16)
    x[0] = 1000
    y[1] = 700
    assert m.sam(x, y) == pytest.approx(90.0)


def test_sam_known_angle_and_zero_pixels_left_out():
    x = np.zeros((2, 1, 2), np.uint16)
    y = np.zeros((2, 1, 2), np.uint16)
    x[:, 0, 0] = (1000, 0)
    y[:, 0, 0] = (1000, 1000)  # 45 degrees
    # pixel 1 is all zero on both sides: left out
    assert m.sam(x, y) == pytest.approx(45.0)


# ----------------------------------------------------------------------------- Bjontegaard


def test_bd_rate_of_a_curve_against_itself_is_zero():
    assert m.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert m.bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_halving_every_rate_gives_minus_fifty_percent():
    half = [r / 2 for r in RATES]
    assert m.bd_rate(RATES, PSNRS, half, PSNRS) == pytest.approx(-50.0, abs=1e-6)
    assert m.bd_rate(half, PSNRS, RATES, PSNRS) == pytest.approx(100.0, abs=1e-6)


def test_bd_psnr_of_a_constant_quality_shift():
    better = [p + 1.5 for p in PSNRS]
    assert m.bd_psnr(RATES, PSNRS, RATES, better) == pytest.approx(1.5, abs=1e-9)
    # and a better curve needs fewer bits
    assert m.bd_rate(RATES, PSNRS, RATES, better) < 0


def test_bd_of_a_curve_shifted_along_psnr_has_a_closed_form():
    """Rate doubling every 6 dB, test curve 3 dB better everywhere (and sampled at other
    points): BD-rate = 2^(-3/6) - 1 = -29.29 %, BD-PSNR = +3 dB, independent of the fit."""
    p1 = np.array([30.0, 34.0, 38.0, 42.0, 46.0])
    r1 = 0.05 * 2 ** ((p1 - 30.0) / 6.0)
    p2 = np.array([31.0, 35.5, 40.0, 44.5, 49.0])
    r2 = 0.05 * 2 ** ((p2 - 3.0 - 30.0) / 6.0)
    assert m.bd_rate(r1, p1, r2, p2) == pytest.approx((2 ** -0.5 - 1) * 100, abs=1e-6)
    assert m.bd_psnr(r1, p1, r2, p2) == pytest.approx(3.0, abs=1e-6)


def test_bd_needs_two_points_and_an_overlap():
    assert math.isnan(m.bd_rate(RATES, PSNRS, [0.3], [35.0]))
    assert math.isnan(m.bd_rate(RATES, PSNRS, [1, 2], [60.0, 70.0]))  # no PSNR overlap
    # lossless (inf) and zero-rate points are ignored, not fatal
    assert m.bd_rate(RATES + [5.0], PSNRS + [math.inf], RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
