"""The integer TT path's fused steps: Triton kernels (`terracodec.kernels.integer`) and numba
kernels (`terracodec.temporal.integer_numba`) against the torch references, bit for bit.

The Triton cases (`test_interp_*`) run in a child process with `TRITON_INTERPRET=1`, as in
tests/test_kernels.py; the numba cases run here.
"""

from __future__ import annotations

import os

import pytest
import torch
from _interp import run_interpreted

from terracodec.kernels import _dispatch
from terracodec.kernels.integer import (
    layer_norm, layer_norm_reference, mlp_hidden, mlp_hidden_reference, softmax_integers,
    softmax_integers_reference,
)
from terracodec.temporal.exact_layers import NORM_BITS, ExactLayerNorm
from terracodec.temporal import integer_numba
from terracodec.temporal.exact_math import row_quantise
from terracodec.temporal.integer_layers import GELU_RANGE, GRID_BITS, gelu_table32, prob_table, quantise_rows

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
interp = pytest.mark.skipif(
    not (INTERPRETING and _dispatch.triton_available()),
    reason="runs in the TRITON_INTERPRET=1 child process",
)
STEP = 2**GRID_BITS


def _mlp_case(m: int, n: int, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    acc = torch.randint(-(2**22), 2**22, (m, n), generator=gen, dtype=torch.int32)
    acc[0, :3] = torch.tensor([2**30, -(2**30), 0], dtype=torch.int32)  # beyond the table both ways
    acc[-1] = 0  # a row of bias only
    rs = torch.rand(m, 1, generator=gen) * 1e-5
    cs = torch.rand(n, generator=gen) * 0.5
    bias = torch.randn(n, generator=gen) * 0.1
    return acc, rs, cs, bias, gelu_table32(), GELU_RANGE, GELU_RANGE, STEP


def _scores_case(rows: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(rows, n, generator=gen) * 6
    scores[0, 1:] = float("-inf")  # a causal row: one key
    scores[1, ::3] = float("-inf")
    scores[2] = scores[2, :1]  # ties
    return scores


def test_numba_steps_equal_the_torch_references():
    args = _mlp_case(37, 300, seed=1)
    q, s = integer_numba.mlp_hidden(*args)
    q_ref, s_ref = mlp_hidden_reference(*args)
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)
    assert int(q.abs().max()) == 127

    scores = _scores_case(29, 70, seed=2).reshape(29, 1, 70)
    w, total = integer_numba.softmax_weights(scores, prob_table(), STEP)
    w_ref, total_ref = softmax_integers_reference(scores, prob_table(), STEP)
    assert torch.equal(w, w_ref) and torch.equal(total, total_ref)
    assert float(w[0, 0, 0]) == 2**19 and float(w[0, 0, 1:].abs().max()) == 0

    x = torch.randn(41, 96, dtype=torch.float64) * torch.logspace(-4, 4, 41, dtype=torch.float64)[:, None]
    x[3] = 0.0
    q, s = integer_numba.quantise_rows(x)
    q_ref, s_ref = quantise_rows(x.to(torch.float32))
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)
    m, e = integer_numba.row_mantissas(x.reshape(41, 2, 48), 9)
    m_ref, e_ref = row_quantise(x.reshape(41, 2, 48), 9)
    assert torch.equal(m, m_ref) and torch.equal(e, e_ref)
    acc = torch.randint(-(2**30), 2**30, (41, 33), dtype=torch.int32)
    cs, bias = torch.rand(33, dtype=torch.float64), torch.randn(33, dtype=torch.float64)
    y = integer_numba.requantise(acc, s, cs, bias)
    assert torch.equal(y, (acc.to(torch.float64) * s.to(torch.float64)) * cs + bias)


def _norm_case(rows: int, d: int, seed: int) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d, generator=gen, dtype=torch.float64) * torch.logspace(-6, 6, rows, dtype=torch.float64)[:, None]
    x[0] = 0.0  # a zero row
    x[1] = 3.0  # a constant row: zero variance
    x[2, :] = 1e-310  # subnormal magnitudes
    x[2, 0] = -2e-310
    norm = torch.nn.LayerNorm(d, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_(generator=gen)
        norm.bias.normal_(generator=gen)
    return x, norm


def test_layer_norm_kernels_equal_the_exact_layer_norm():
    x, norm = _norm_case(9, 96, seed=4)
    exact = ExactLayerNorm(norm)
    ref = layer_norm_reference(x, exact.weight, exact.bias, exact.eps, NORM_BITS)
    assert torch.equal(ref, exact(x))
    assert torch.equal(integer_numba.layer_norm(x, exact.weight, exact.bias, exact.eps, NORM_BITS), ref)
    with torch.no_grad():
        assert float((ref[3:] - norm(x[3:].float()).double()).abs().max()) < 1e-2


def test_gelu_table_is_accurate():
    grid = torch.arange(gelu_table32().numel(), dtype=torch.float64) * 2.0**-GRID_BITS - GELU_RANGE
    assert float((gelu_table32().double() - torch.nn.functional.gelu(grid)).abs().max()) < 1e-6


def test_dispatch_keeps_cpu_tensors_on_the_reference():
    args = _mlp_case(5, 40, seed=3)
    if not INTERPRETING:
        q, s = mlp_hidden(*args)
        q_ref, s_ref = mlp_hidden_reference(*args)
        assert torch.equal(q, q_ref) and torch.equal(s, s_ref)


@pytest.mark.slow
@pytest.mark.skipif(INTERPRETING or not _dispatch.triton_available(), reason="child process")
def test_integer_kernels_in_child_process():
    run_interpreted(__file__)


@interp
@pytest.mark.parametrize("m,n", [(6, 40), (3, 3072)])
def test_interp_mlp_hidden_exact(m, n):
    args = _mlp_case(m, n, seed=m)
    q, s = mlp_hidden(*args, backend="triton")
    q_ref, s_ref = mlp_hidden_reference(*args)
    assert torch.equal(q, q_ref) and torch.equal(s, s_ref)


@interp
@pytest.mark.parametrize("n", [16, 70, 128])
def test_interp_softmax_integers_exact(n):
    scores = _scores_case(5, n, seed=n).reshape(5, 1, n)
    w, total = softmax_integers(scores, prob_table(), STEP, backend="triton")
    w_ref, total_ref = softmax_integers_reference(scores, prob_table(), STEP)
    assert torch.equal(w, w_ref) and torch.equal(total, total_ref)


@interp
@pytest.mark.parametrize("d", [32, 768])
def test_interp_layer_norm_exact(d):
    x, norm = _norm_case(5, d, seed=d)
    exact = ExactLayerNorm(norm)
    out = layer_norm(x, exact.weight, exact.bias, exact.eps, NORM_BITS, backend="triton")
    assert torch.equal(out, layer_norm_reference(x, exact.weight, exact.bias, exact.eps, NORM_BITS))
