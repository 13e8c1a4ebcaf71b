"""LocationScaleGaussianConditional: index rule, reference training likelihood, tables, cache,
round trips (reduced-size instances except one check of the default table's hash)."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from terracodec.entropy.location_scale import (
    DEFAULT_TABLE_SHA256,
    LocationScaleGaussianConditional,
    _cache_file,
    build_tables,
    very_softplus,
)
from terracodec.errors import InputError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TERRACODEC_CACHE", str(tmp_path / "cache"))


_SMALL = {}


def small() -> LocationScaleGaussianConditional:
    """A reduced instance (6 mean offsets x 12 scales) with tables, shared by the tests."""
    if "module" not in _SMALL:
        module = LocationScaleGaussianConditional(6, 12, min_scale=0.05, max_scale=40.0)
        module.update()
        _SMALL["module"] = module
    return _SMALL["module"]


def test_grids_and_scale_rule():
    module = LocationScaleGaussianConditional()
    assert module.scale_grid[0] == pytest.approx(0.01)
    assert module.scale_grid[-1] == pytest.approx(256.01)
    assert module.mean_grid[0] == -0.5 and module.mean_grid[-1] == pytest.approx(0.49)
    gen = torch.Generator().manual_seed(0)
    raw = torch.cat([torch.randn(5000, generator=gen) * 30, module.thresholds])
    _, rows, _ = module.quantize_parameters(None, raw, torch.zeros_like(raw))
    rows = rows % module.num_scales
    exact = module.scale_to_index(raw.double())
    # nearest grid point in the index domain (thresholds are the half-way points, ties down)
    clamped = exact.clamp(0, module.num_scales - 1)
    assert float((rows.double() - clamped).abs().max()) <= 0.5 + 1e-9
    at_threshold = rows[5000:].double()
    assert torch.equal(at_threshold, torch.arange(module.num_scales - 1, dtype=torch.float64))


def test_mean_rule_is_nearest_lattice_point():
    module = LocationScaleGaussianConditional()
    gen = torch.Generator().manual_seed(1)
    means = torch.cat([torch.randn(5000, generator=gen) * 50, torch.tensor([-0.5, 0.5, 0.495])])
    _, rows, centers = module.quantize_parameters(None, torch.ones_like(means), means)
    offsets = module.mean_grid[(rows // module.num_scales).long()]
    snapped = centers.double() + offsets
    assert float((snapped - means.double()).abs().max()) <= 0.5 / module.num_means + 1e-7
    one = LocationScaleGaussianConditional(1, 4)
    _, rows1, centers1 = one.quantize_parameters(None, torch.ones(3), torch.tensor([0.4, 0.6, -2.5]))
    assert centers1.tolist() == [0, 1, -2] and (rows1 // 4).tolist() == [0, 0, 0]


def _reference_training_likelihood(y, sigma, mu, noise):
    """The reference (terracodec 0.3.1) training formula, as written in the module docstring."""
    s_idx = (torch.log(very_softplus(sigma) + 0.01) - math.log(0.01)) / math.log(256 / 0.01 + 1)
    s_idx = (s_idx * 255).clamp(0, 255)
    m_idx = ((mu - torch.round(mu) + 0.5) * 100).clamp(0, 99)
    s = torch.exp(s_idx / 255 * math.log(256 / 0.01 + 1) + math.log(0.01))
    m = m_idx / 100 - 0.5
    v = (y - torch.round(mu) + noise - m).abs()
    phi = lambda t: 0.5 * torch.erfc(-(2**-0.5) * t)  # noqa: E731
    return (phi((0.5 - v) / s) - phi((-0.5 - v) / s)).clamp(min=1e-9)


def test_training_likelihood_matches_reference_formula():
    module = LocationScaleGaussianConditional()  # no tables needed in training
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(4, 50, generator=gen) * 4
    mu = y + torch.randn(4, 50, generator=gen)
    sigma = torch.randn(4, 50, generator=gen) * 3
    torch.manual_seed(9)
    y_hat, p = module(y, sigma, mu, training=True)
    torch.manual_seed(9)
    noise = torch.empty_like(y).uniform_(-0.5, 0.5)
    expected = _reference_training_likelihood(y, sigma, mu, noise)
    assert float(((p - expected).abs() / expected).max()) <= 1e-4
    torch.testing.assert_close(y_hat, torch.round(y - torch.round(mu)) + torch.round(mu))


def test_training_gradients_flow():
    module = LocationScaleGaussianConditional()
    gen = torch.Generator().manual_seed(0)
    y, mu, sigma = (torch.randn(3, 8, generator=gen).requires_grad_() for _ in range(3))
    y_hat, p = module(y, sigma, mu, training=True)
    (-torch.log2(p).sum() + y_hat.sum()).backward()
    for t in (y, mu, sigma):
        assert t.grad is not None and bool(torch.isfinite(t.grad).all())
    assert float(sigma.grad.abs().sum()) > 0 and float(mu.grad.abs().sum()) > 0


def test_tables_valid_deterministic_and_not_in_state_dict():
    module = small()
    cdf, lengths, offsets = module.quantized_cdf, module.cdf_length, module.offset
    assert cdf.shape[0] == 6 * 12
    assert bool((cdf[:, 0] == 0).all())
    assert bool((cdf.gather(1, (lengths.long() - 1)[:, None]) == 1 << 16).all())
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = build_tables(module.config())
        torch.set_num_threads(2)
        two = build_tables(module.config())
    finally:
        torch.set_num_threads(previous)
    for a, b, c in zip(one, two, (cdf, lengths, offsets)):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert list(module.state_dict()) == ["likelihood_lower_bound.bound"]


def test_disk_cache_round_trip_and_repair():
    config = LocationScaleGaussianConditional(3, 5).config()
    first = LocationScaleGaussianConditional(3, 5)
    first.update()
    path = _cache_file(config)
    assert path.exists()
    second = LocationScaleGaussianConditional(3, 5)
    second.update()
    assert second.table_hash() == first.table_hash()
    path.write_bytes(path.read_bytes()[:-40])  # damaged file: rebuilt, then repaired
    third = LocationScaleGaussianConditional(3, 5)
    third.update()
    assert third.table_hash() == first.table_hash()
    assert path.stat().st_size > 100


@settings(max_examples=20, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=0, max_size=40),
    st.floats(-1e4, 1e4, allow_nan=False, width=32),
    st.floats(-1e3, 1e3, allow_nan=False, width=32),
)
def test_round_trip_any_values(values, sigma, mean):
    module = small()
    y = torch.tensor(values, dtype=torch.float32).reshape(1, -1)
    scales = torch.full_like(y, sigma)
    means = torch.full_like(y, mean)
    data = module.compress(y, scales, means)
    decoded = module.decompress(data, scales, means)
    module.eval()
    expected, _ = module(y, scales, means)
    assert decoded.shape == y.shape
    torch.testing.assert_close(decoded, expected, rtol=0, atol=0)
    # the decoded value is the integer nearest to y on the centre's integer lattice
    if y.numel():
        assert float((decoded - y).abs().max()) <= 0.5 + 1e-3 * float(y.abs().max() + 1)


def test_eval_likelihood_predicts_coded_size():
    module = small()
    gen = torch.Generator().manual_seed(3)
    mu = torch.randn(8, 512, generator=gen) * 5
    sigma = torch.randn(8, 512, generator=gen)
    y = mu + torch.randn(8, 512, generator=gen) * (very_softplus(sigma) + 0.05)
    module.eval()
    _, p = module(y, sigma, mu)
    estimate = float(-torch.log2(p).sum())
    actual = len(module.compress(y, sigma, mu)) * 8
    assert abs(actual - estimate) <= 0.05 * estimate + 1024


def test_rejects_bad_parameters():
    module = small()
    with pytest.raises(InputError):
        module.compress(torch.zeros(2), torch.tensor([1.0, float("nan")]), torch.zeros(2))
    with pytest.raises(InputError):
        module.compress(torch.zeros(2), torch.ones(2), torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError):
        LocationScaleGaussianConditional(0, 4)


@pytest.mark.slow
def test_default_tables_have_the_canonical_hash():
    module = LocationScaleGaussianConditional()
    module.update()
    assert module.quantized_cdf.shape[0] == 25600
    assert module.table_hash() == DEFAULT_TABLE_SHA256
    again = LocationScaleGaussianConditional()  # from the disk cache this time
    again.update()
    assert torch.equal(again.quantized_cdf, module.quantized_cdf)
    assert again.table_hash() == DEFAULT_TABLE_SHA256
