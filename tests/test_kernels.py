"""Triton kernels against their torch references (quantise + index, Gaussian likelihood, GDN).

Triton decides at import time whether it interprets, so the kernel cases (`test_interp_*`) run
in a child process with `TRITON_INTERPRET=1` (`test_kernels_in_child_process`); they run
directly when the whole session already interprets. Tensors stay tiny: the interpreter is slow.
"""

from __future__ import annotations

import os

import pytest
import torch
from _interp import run_interpreted

from terracodec.errors import InputError
from terracodec.kernels import _dispatch
from terracodec.kernels.gdn import gdn, gdn_reference
from terracodec.kernels.likelihood import gaussian_likelihood, gaussian_likelihood_reference
from terracodec.kernels.quantize import (
    gaussian_quantize,
    gaussian_quantize_reference,
    location_scale_quantize,
    location_scale_quantize_reference,
)

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
interp = pytest.mark.skipif(
    not (INTERPRETING and _dispatch.triton_available()),
    reason="runs in the TRITON_INTERPRET=1 child process",
)


def test_dispatch_rules():
    cpu = torch.zeros(2)
    assert not _dispatch.use_triton(cpu, backend="torch")
    if not INTERPRETING:
        assert not _dispatch.use_triton(cpu)  # auto: CPU tensors stay on torch
        if _dispatch.triton_available():
            with pytest.raises(RuntimeError, match="CUDA"):
                _dispatch.use_triton(cpu, backend="triton")
    with pytest.raises(ValueError, match="backend"):
        _dispatch.use_triton(cpu, backend="cuda")


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETING or not _dispatch.triton_available(), reason="child process")
def test_kernels_in_child_process():
    run_interpreted(__file__)


# ---------------------------------------------------------------------- GDN
@interp
@pytest.mark.parametrize("channels,inverse", [(5, False), (5, True), (40, False), (40, True)])
def test_interp_gdn(channels, inverse):
    gen = torch.Generator().manual_seed(channels)
    x = torch.randn(2, channels, 3, 7, generator=gen)
    beta = torch.rand(channels, generator=gen) + 0.5
    gamma = torch.rand(channels, channels, generator=gen) * 0.1
    out = gdn(x, beta, gamma, inverse, backend="triton")
    torch.testing.assert_close(out, gdn_reference(x, beta, gamma, inverse), rtol=1e-5, atol=1e-6)
    assert gdn(x[:0], beta, gamma, inverse, backend="triton").shape == (0, channels, 3, 7)


# ---------------------------------------------------------------------- likelihood
@interp
@pytest.mark.parametrize("with_means", [False, True])
def test_interp_likelihood(with_means):
    gen = torch.Generator().manual_seed(1)
    n = 3000
    x = torch.randn(n, generator=gen) * torch.exp(torch.rand(n, generator=gen) * 8 - 2)
    s = torch.exp(torch.rand(n, generator=gen) * 10.2 - 4.6)  # 0.01 .. 270, some < bound
    m = torch.randn(n, generator=gen) if with_means else None
    bounds = torch.tensor([0.11]), torch.tensor([1e-9])
    out = gaussian_likelihood(x, s, m, *bounds, backend="triton")
    # against the float64 truth (same float32 difference x - m as the kernel) ...
    d = (x - m if with_means else x).double()
    truth = gaussian_likelihood_reference(d, s.double(), None, *(b.double() for b in bounds))
    assert float(((out.double() - truth).abs() / truth).max()) <= 1e-6
    # ... and against the float32 reference where float32 is well conditioned
    ref = gaussian_likelihood_reference(x, s, m, *bounds)
    ok = s < 7
    assert float(((out - ref).abs() / ref)[ok].max()) <= 1e-5


@interp
def test_interp_likelihood_broadcasts():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, generator=gen)
    s = torch.rand(1, 3, 1, generator=gen) + 0.2
    out = gaussian_likelihood(x, s, torch.zeros(1), None, None, backend="triton")
    ref = gaussian_likelihood_reference(x, s, torch.zeros(1))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-8)


# ---------------------------------------------------------------------- quantise + index
@interp
def test_interp_gaussian_quantize_exact():
    table = torch.tensor([0.11, 0.5, 1.0, 4.0, 20.0])
    halves = torch.arange(-20, 20) + 0.5  # ties: round half to even
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([halves, torch.randn(200, generator=gen) * 50,
                   torch.tensor([3.4999998, -0.49999997, 2.0**30])])
    m = torch.cat([torch.zeros(40), torch.randn(200, generator=gen), torch.zeros(3)])
    s = torch.cat([table.repeat(8), torch.rand(200, generator=gen) * 30,
                   torch.tensor([0.0, float("nan"), 1e9])])
    got = gaussian_quantize(x, s, m, table, torch.tensor([0.11]), backend="triton")
    want = gaussian_quantize_reference(x, s, m, table, torch.tensor([0.11]))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    got = gaussian_quantize(x, s, None, table, torch.tensor([0.3]), backend="triton")
    want = gaussian_quantize_reference(x, s, None, table, torch.tensor([0.3]))
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    with pytest.raises(InputError):
        gaussian_quantize(torch.tensor([3e9]), torch.ones(1), None, table, torch.tensor([0.11]),
                          backend="triton")


@interp
@pytest.mark.parametrize("num_means", [1, 7, 100])
def test_interp_location_scale_quantize_exact(num_means):
    from terracodec.entropy.location_scale import LocationScaleGaussianConditional

    module = LocationScaleGaussianConditional(num_means, 256)
    shift = module.mean_shift
    lattice = torch.arange(-300, 300, dtype=torch.float64) / num_means - shift  # exact ties
    gen = torch.Generator().manual_seed(num_means)
    means = torch.cat([torch.randn(1500, generator=gen) * 10, lattice.float(), torch.arange(-10, 10) + 0.5])
    n = means.numel()
    x = torch.randn(n, generator=gen) * 30
    x[:40] = torch.arange(-20, 20) + 0.5
    scales = torch.randn(n, generator=gen) * 10
    scales[:255] = module.thresholds.float()
    scales[255:260] = torch.tensor([float("inf"), float("-inf"), 0.0, 1e-30, -1e30])
    args = (module.thresholds, num_means, shift)
    got = location_scale_quantize(x, means, scales, *args, backend="triton")
    want = location_scale_quantize_reference(x, means, scales, *args)
    for a, b in zip(got, want):
        assert torch.equal(a, b)
    got = location_scale_quantize(None, means.double(), scales, *args, backend="triton")
    assert got[0] is None and torch.equal(got[1], want[1]) and torch.equal(got[2], want[2])
    with pytest.raises(InputError):
        location_scale_quantize(x[:2], means[:2], torch.tensor([1.0, float("nan")]), *args,
                                backend="triton")
