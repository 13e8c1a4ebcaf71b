"""TEC-TT's integer entropy path `int8-v2` (issue 16): int8 GEMMs, integer attention.

Unit checks of its layers (exact integer GEMMs, row-local results, close to the float layers),
the twin against the float model and against its own decoder steps, and the older portable
path: a committed `exact-v1` stream still decodes, to the same latents, under other CPU kernels.
The CPU-kernel round trips of streams coded now are in tests/test_exact_tt.py (they code with
`CURRENT_PATH`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import terracodec
from terracodec.temporal.entropy_paths import CURRENT_PATH, is_portable, portable_twin
from terracodec.temporal.integer_layers import (
    INTEGER_PATH, IntLinear, IntMLP, IntWindowAttention, int_matmul, prob_table, quantise_rows,
)
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS

EXACT_V1 = Path(__file__).resolve().parent / "data" / "legacy" / "tt_small_exact_v1_2frames.tec"
EXACT_V1_LATENTS = EXACT_V1.with_suffix(".npz")


def test_streams_are_coded_with_the_integer_path():
    assert CURRENT_PATH == INTEGER_PATH and is_portable(INTEGER_PATH) and is_portable("exact-v1")
    assert not is_portable("x86_64 AuthenticAMD AVX512 torch 2.13.0")
    with pytest.raises(ValueError, match="unknown portable"):
        portable_twin("x86_64 GenuineIntel AVX2", torch.nn.Linear(2, 2))


def test_int_matmul_is_exact_at_the_bound():
    k = (2**31 - 1) // 127**2  # the widest input an IntLinear takes
    a = torch.full((3, k), 127, dtype=torch.int8)
    b = torch.full((k, 5), -127, dtype=torch.int8)
    assert int(int_matmul(a, b)[0, 0]) == -k * 127 * 127
    with pytest.raises(ValueError, match="at most"):
        IntLinear(torch.nn.Linear(k + 1, 2))


def test_quantised_rows_and_tables():
    x = torch.tensor([[3.0, -1.5, 0.0, 0.02], [0.0, 0.0, 0.0, 0.0]])
    q, s = quantise_rows(x)
    assert q.dtype == torch.int8 and int(q[0, 0]) == 127 and torch.equal(q[1], torch.zeros(4, dtype=torch.int8))
    assert float((q[0] * s[0] - x[0]).abs().max()) <= float(s[0]) / 2
    p = prob_table()
    assert int(p[0]) == 2**19 and int(p[-1]) == 0 and bool((p[1:] <= p[:-1]).all())


def test_integer_linear_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    layer = torch.nn.Linear(384, 96)
    integer = IntLinear(layer)
    x = (torch.randn(37, 384) * torch.logspace(-3, 3, 37)[:, None]).double()
    whole = integer(x)
    rows = torch.cat([integer(x[i : i + 1]) for i in range(37)])
    perm = torch.randperm(37)
    assert torch.equal(whole, rows) and torch.equal(integer(x[perm]), whole[perm])
    with torch.no_grad():
        ref = layer(x.float()).double()
    rms = ref.pow(2).mean(1, keepdim=True).sqrt()
    assert float(((whole - ref).abs() / rms).max()) < 0.05  # int8 activations and weights


def test_integer_mlp_is_close_and_the_same_with_or_without_numba():
    from terracodec.temporal import integer_layers
    from terracodec.temporal.transformer import MLP

    torch.manual_seed(2)
    mlp = MLP(96, 384)
    integer = IntMLP(mlp).double()
    x = torch.randn(23, 96, dtype=torch.float64) * 3
    y = integer(x)
    integer_layers.CPU_KERNELS["enabled"] = False
    try:
        assert torch.equal(integer(x), y)
    finally:
        integer_layers.CPU_KERNELS["enabled"] = True
    with torch.no_grad():
        ref = mlp(x.float()).double()
    assert float((y - ref).abs().max()) < 0.05 * float(ref.abs().max())


def test_integer_attention_is_row_local_and_close():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(3, 4, 5, 48, generator=gen, dtype=torch.float64) * 48**-0.5  # scaled, as the model does
    k = torch.randn(3, 4, 20, 48, generator=gen, dtype=torch.float64)
    v = torch.randn(3, 4, 20, 48, generator=gen, dtype=torch.float64)
    out = IntWindowAttention._exact(q, k, v, None)
    ref = torch.softmax(q @ k.transpose(-2, -1), -1) @ v
    assert float((out - ref).abs().max()) < 0.05
    one = torch.cat([IntWindowAttention._exact(q[:, :, i : i + 1], k.clone(), v.clone(), None) for i in range(5)], 2)
    assert torch.equal(one, out)  # each query alone, fresh keys: the same bits


@pytest.mark.parametrize("path,tolerance", [("exact-v1", 1e-3), ("int8-v2", 0.1)])
def test_twin_is_close_and_one_pass_equals_steps(path, tolerance):
    from _tinytt import tiny_tt

    model = tiny_tt(seed=3)
    em = model.entropy_model
    twin = portable_twin(path, em)
    gen = torch.Generator().manual_seed(5)
    prev = torch.round(torch.randn(2, 16, 8, 8, generator=gen) * 4)
    cur = torch.round(torch.randn(2, 16, 8, 8, generator=gen) * 4)
    windows = em.tokenizer.current(cur)
    with torch.no_grad():
        memory_f = em.joint_context([em.encode_context(prev)])
        memory_x = twin.joint_context([twin.encode_context(prev)])
        assert float((memory_f.double() - memory_x).abs().max()) < tolerance * float(memory_f.abs().max())
        means_f, scales_f, _ = em.predict(windows, memory_f)
        cache = twin.start_cache(twin.memory_keys_values(memory_x), windows.shape[0], pad=False)
        means_x, scales_x, feats_x = twin.predict_cached(windows.double(), cache)
        assert float((means_f.double() - means_x).abs().max()) < tolerance
        assert float((scales_f.double() - scales_x).abs().max()) < tolerance
        # 16 decoder steps (one token at a time, 2 windows chunked as 1 + 1) give the same bits
        for part in (slice(0, 1), slice(1, 2)):
            step_cache = twin.start_cache(twin.memory_keys_values(memory_x[part]), 1, pad=False)
            previous = None
            for t in range(16):
                m, s, f = twin.step(previous, step_cache)
                assert torch.equal(m[0], means_x[part][0, t]) and torch.equal(s[0], scales_x[part][0, t])
                assert torch.equal(f[0], feats_x[part][0, t])
                previous = windows[part][:, t].double()


CHILD = r"""
import sys, numpy as np, terracodec
lat = terracodec.decode_latents(sys.argv[1])
np.savez(sys.argv[2], y=lat.y_hat, f=lat.features)
"""


@pytest.mark.slow
@pytest.mark.parametrize("env_name", ["native", *sorted(CPU_KERNEL_ENVIRONMENTS)])
def test_exact_v1_streams_still_decode_everywhere(env_name, tmp_path):
    """A stream coded with `exact-v1` before `int8-v2` (tests/data/legacy/make_exact_v1_stream.py)
    decodes to the latents saved when it was written, under every CPU-kernel environment."""
    assert terracodec.info(EXACT_V1)["coder_platform"] == "exact-v1"
    env = dict(os.environ, **CPU_KERNEL_ENVIRONMENTS.get(env_name, {}))
    out = tmp_path / "lat.npz"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(EXACT_V1), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got, saved = np.load(out), np.load(EXACT_V1_LATENTS)
    assert np.array_equal(got["y"], saved["y"]) and np.array_equal(got["f"], saved["f"])
