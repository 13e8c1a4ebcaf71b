"""Exact fixed-point evaluation of the entropy-parameter networks (terracodec.layers.fixedpoint)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from terracodec.layers.conv import CheckerboardMaskedConv2d, conv, conv1x1, deconv
from terracodec.layers.fixedpoint import (
    ACTIVATION_BITS,
    WEIGHT_L1_BITS,
    exact_forward,
    pow2,
    quantize_activation,
    quantize_weight,
)


def hyper_like_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        deconv(32, 32), nn.ReLU(inplace=True), deconv(32, 48), nn.ReLU(inplace=True),
        conv(48, 96, 3, 1), nn.ReLU(inplace=True), conv1x1(96, 64),
        CheckerboardMaskedConv2d(64, 16, kernel_size=5, stride=1, padding=2),
    )


def test_pow2_is_exact() -> None:
    k = torch.arange(-80, 81)
    assert torch.equal(pow2(k), torch.tensor([2.0**int(i) for i in k], dtype=torch.float64))


def test_bounds_that_make_sums_exact() -> None:
    torch.manual_seed(0)
    for weight, transposed in ((torch.randn(64, 80, 5, 5) * 3, False), (torch.randn(48, 32, 5, 5), True)):
        w_int, _ = quantize_weight(weight, transposed)
        dims = (0, 2, 3) if transposed else (1, 2, 3)
        assert torch.equal(w_int, torch.round(w_int))
        assert float(w_int.abs().sum(dim=dims).max()) <= 2.0**WEIGHT_L1_BITS
    x = torch.randn(3, 8, 5, 5) * torch.tensor([1e-3, 1.0, 1e4]).view(3, 1, 1, 1)
    a_int, shift = quantize_activation(x)
    assert float(a_int.abs().max()) <= 2.0**ACTIVATION_BITS
    assert shift.shape == (3, 1, 1, 1) and len(set(shift.flatten().tolist())) == 3


def test_close_to_float64_evaluation() -> None:
    net = hyper_like_net(0)
    z = torch.randn(2, 32, 4, 6, generator=torch.Generator().manual_seed(0)) * 4
    with torch.no_grad():
        reference = net.double()(z.double())
        net.float()
        exact = exact_forward(net, z)
    assert exact.dtype == torch.float64
    assert float((exact - reference).abs().max()) < 1e-5 * float(reference.abs().max())


def test_bit_identical_across_threads_and_batch_composition() -> None:
    net = hyper_like_net(1)
    z = torch.randn(3, 32, 4, 4, generator=torch.Generator().manual_seed(1)) * torch.tensor([0.01, 1.0, 50.0]).view(3, 1, 1, 1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        batch = exact_forward(net, z)
        torch.set_num_threads(1)
        singles = [exact_forward(net, z[i : i + 1]) for i in range(3)]
        pair = exact_forward(net, z[[2, 0]])
    finally:
        torch.set_num_threads(threads)
    for i in range(3):
        assert torch.equal(batch[i : i + 1], singles[i])
    assert torch.equal(pair[0], batch[2]) and torch.equal(pair[1], batch[0])


def test_unsupported_layers_are_refused() -> None:
    with pytest.raises(TypeError):
        exact_forward(nn.Sequential(nn.Conv2d(2, 2, 3), nn.Sigmoid()), torch.zeros(1, 2, 4, 4))
