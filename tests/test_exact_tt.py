"""TEC-TT's exact entropy path: the same bits on every machine (issue 16).

Unit checks of the arithmetic (`exact_math`, `exact_layers`), then the promise itself: a stream
encoded in this process decodes in child processes that use torch's other CPU kernels
(`ATEN_CPU_CAPABILITY=default`, `MKL_CBWR=COMPATIBLE`, `avx2` on one thread), and the reverse,
with identical latents and pixels within 2 DN; for `tec-tt-small` and a small random TT. Streams
written before the exact path still decode where they were coded and fail elsewhere with one line.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import terracodec
from terracodec.temporal.entropy_paths import CURRENT_PATH, is_portable
from terracodec.temporal.exact_layers import ExactLinear
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS
from terracodec.temporal.exact_math import det_erf, det_exp, det_gelu, pow2, row_quantise

SAMPLE = Path(terracodec.__file__).resolve().parent / "data" / "sample"
FRAMES = [SAMPLE / f"S2L1C_{d}.tif" for d in ("20150711", "20150731", "20150820")]
LEGACY = Path(__file__).resolve().parent / "data" / "legacy" / "tt_small_float_2frames.tec"
ENVIRONMENTS = CPU_KERNEL_ENVIRONMENTS


def test_exact_functions_are_accurate():
    z = torch.linspace(-60, 20, 4001, dtype=torch.float64)
    ref = torch.tensor([math.exp(v) for v in z.tolist()], dtype=torch.float64)
    assert float(((det_exp(z) - ref).abs() / ref).max()) < 1e-15
    x = torch.linspace(-6, 6, 2001, dtype=torch.float64)
    assert float((det_erf(x) - torch.erf(x)).abs().max()) < 2e-7
    assert float((det_gelu(x) - torch.nn.functional.gelu(x)).abs().max()) < 1e-6
    k = torch.arange(-1022, 1024)
    assert torch.equal(pow2(k), torch.tensor([math.ldexp(1.0, int(v)) for v in k], dtype=torch.float64))
    m, e = row_quantise(torch.tensor([[3.0, -0.5, 0.0], [0.0, 0.0, 0.0]]), 8)
    assert float(m.abs().max()) <= 2**8 and torch.equal(m[1], torch.zeros(3))
    assert torch.equal(m[0] * pow2(e[0]), torch.tensor([3.0, -0.5, 0.0], dtype=torch.float64))


def test_exact_linear_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    layer = torch.nn.Linear(384, 96)
    exact = ExactLinear(layer)
    x = torch.randn(37, 384) * torch.logspace(-3, 3, 37)[:, None]
    whole = exact(x)
    rows = torch.cat([exact(x[i : i + 1]) for i in range(37)])
    perm = torch.randperm(37)
    assert torch.equal(whole, rows) and torch.equal(exact(x[perm]), whole[perm])
    with torch.no_grad():
        ref = layer(x).double()
    rms = ref.pow(2).mean(1, keepdim=True).sqrt()
    assert float(((whole - ref).abs() / rms).max()) < 1e-5


# The twins against the float model and their own decoder steps: tests/test_integer_tt.py.


CHILD = r"""
import json, sys, numpy as np, torch, terracodec
args = json.loads(sys.argv[1])
if args["mode"] == "encode":
    terracodec.encode(args["frames"], args["out"], **args["options"])
elif args["mode"] == "decode":
    lat = terracodec.decode_latents(args["stream"])
    pix = terracodec.decode(args["stream"]).pixels
    np.savez(args["out"], pixels=pix, y=lat.y_hat, f=lat.features)
else:  # a random TT through the model API: encode frames, or decode payloads
    from terracodec.zoo.loading import from_pretrained
    model = from_pretrained(args["model"])
    if args["mode"] == "tiny-encode":
        x = torch.from_numpy(np.load(args["frames"]))
        payloads, _ = model.encode_sequence(x)
        json.dump([[p.hex() for p in frame] for frame in payloads], open(args["out"], "w"))
    else:
        payloads = [[bytes.fromhex(p) for p in frame] for frame in json.load(open(args["stream"]))]
        y = model.decode_sequence_latents(payloads, args["height"], args["width"])
        np.save(args["out"], torch.stack(y).numpy())
"""


def _child(env: dict, **args) -> None:
    full = dict(os.environ, **env)
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args, default=str)], env=full,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _decoded_here(stream: Path, out: Path) -> dict:
    _child({}, mode="decode", stream=str(stream), out=str(out))
    return dict(np.load(out))


@pytest.mark.slow
@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
def test_tt_small_streams_decode_under_other_cpu_kernels(env_name, tmp_path):
    stream = tmp_path / "tt.tec"
    terracodec.encode([str(f) for f in FRAMES], stream, model="tec-tt-small")
    assert terracodec.info(stream)["coder_platform"] == CURRENT_PATH
    here = _decoded_here(stream, tmp_path / "here.npz")
    _child(ENVIRONMENTS[env_name], mode="decode", stream=str(stream), out=str(tmp_path / "there.npz"))
    there = dict(np.load(tmp_path / "there.npz"))
    assert np.array_equal(here["y"], there["y"]) and np.array_equal(here["f"], there["f"])
    assert np.abs(here["pixels"].astype(int) - there["pixels"].astype(int)).max() <= 2


@pytest.mark.slow
def test_streams_encoded_under_scalar_kernels_decode_natively(tmp_path):
    stream = tmp_path / "tt.tec"
    _child(ENVIRONMENTS["scalar"], mode="encode", frames=[str(f) for f in FRAMES[:2]], out=str(stream),
           options={"model": "tec-tt-small"})
    native = terracodec.encode([str(f) for f in FRAMES[:2]], None, model="tec-tt-small")
    assert stream.read_bytes() == native  # the same bytes, whichever kernels coded them
    lat = terracodec.decode_latents(stream)
    assert lat.y_hat.shape[0] == 2


@pytest.mark.slow
def test_random_tt_streams_decode_under_other_cpu_kernels_both_ways(tmp_path):
    from _tinytt import frames, tiny_tt

    from terracodec.weights import save_pretrained

    model = tiny_tt(seed=7)
    save_pretrained(model, tmp_path / "tiny")
    x = frames(2, 3, 4, 128, 128, seed=4)
    np.save(tmp_path / "x.npy", x.numpy())
    common = dict(model=str(tmp_path / "tiny"), frames=str(tmp_path / "x.npy"), height=128, width=128)
    for encode_env, decode_env in ((ENVIRONMENTS["avx2-one-thread"], ENVIRONMENTS["scalar"]),
                                   (ENVIRONMENTS["scalar"], {})):
        _child(encode_env, mode="tiny-encode", out=str(tmp_path / "p.json"), **common)
        _child(decode_env, mode="tiny-decode", stream=str(tmp_path / "p.json"), out=str(tmp_path / "y.npy"), **common)
        payloads = [[bytes.fromhex(p) for p in frame] for frame in json.loads((tmp_path / "p.json").read_text())]
        here = torch.stack(model.decode_sequence_latents(payloads, 128, 128)).numpy()
        assert np.array_equal(np.load(tmp_path / "y.npy"), here)
        assert float(np.abs(here).max()) > 0  # not all zeros


def test_legacy_float_streams_decode_where_coded_and_say_why_elsewhere(tmp_path):
    from terracodec.temporal.coding import coder_platform

    info = terracodec.info(LEGACY)
    assert info["coder_platform"] and not is_portable(info["coder_platform"])
    if info["coder_platform"] == coder_platform():
        decoded = terracodec.decode(LEGACY)
        assert decoded.pixels.shape[0] == 2
    env = dict(os.environ, **ENVIRONMENTS["scalar"])
    proc = subprocess.run([sys.executable, "-m", "terracodec.cli.main", "decode", str(LEGACY), "-o",
                           str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith("error:") and len(line.splitlines()) == 1 and "was coded on" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
