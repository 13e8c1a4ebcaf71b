"""On a CUDA GPU: compiled Triton kernels against their torch references, and streams that decode
bit-exactly across CPU and GPU. Skipped where there is no GPU (CI); run them on a lent one:

    python -m pytest -q tests/test_cuda.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _tinytt import frames, tiny_tt
from test_rans import random_tables
from terracodec.kernels import _dispatch

pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and _dispatch.triton_available()), reason="needs a CUDA GPU and Triton"
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_kernels_compiled_for_the_gpu_match_the_references(seed):
    from terracodec.entropy.location_scale import LocationScaleGaussianConditional
    from terracodec.kernels.gdn import gdn, gdn_reference
    from terracodec.kernels.likelihood import gaussian_likelihood, gaussian_likelihood_reference
    from terracodec.kernels.quantize import (
        gaussian_quantize,
        gaussian_quantize_reference,
        location_scale_quantize,
        location_scale_quantize_reference,
    )

    g = _gen(seed)
    n = 1 << 18
    x = torch.randn(n, generator=g) * 20
    x[:64] = torch.arange(-32, 32) + 0.5  # ties
    s = torch.exp(torch.rand(n, generator=g) * 8 - 3)
    m = torch.randn(n, generator=g) * 3
    table = torch.exp(torch.linspace(-2.2, 4.5, 64))
    bound = torch.tensor([0.11])
    want = gaussian_quantize_reference(x, s, m, table, bound)
    got = gaussian_quantize(x.cuda(), s.cuda(), m.cuda(), table.cuda(), bound.cuda(), backend="triton")
    assert all(torch.equal(a.cpu(), b) for a, b in zip(got, want))

    module = LocationScaleGaussianConditional(7, 256)
    args = (module.thresholds, 7, module.mean_shift)
    raw = torch.randn(n, generator=g) * 10
    want = location_scale_quantize_reference(x, m, raw, *args)
    got = location_scale_quantize(x.cuda(), m.cuda(), raw.cuda(), module.thresholds.cuda(), 7,
                                  module.mean_shift, backend="triton")
    assert all(torch.equal(a.cpu(), b) for a, b in zip(got, want))

    lik = gaussian_likelihood(x.cuda(), s.cuda(), m.cuda(), bound.cuda(), torch.tensor([1e-9]).cuda(),
                              backend="triton").cpu()
    truth = gaussian_likelihood_reference((x - m).double(), s.double(), None, bound.double(),
                                          torch.tensor([1e-9], dtype=torch.float64))
    assert float(((lik.double() - truth).abs() / truth).max()) <= 1e-5

    c = 48
    y = torch.randn(4, c, 32, 32, generator=g)
    beta = torch.rand(c, generator=g) + 0.5
    gamma = torch.rand(c, c, generator=g) * 0.1
    for inverse in (False, True):
        got = gdn(y.cuda(), beta.cuda(), gamma.cuda(), inverse, backend="triton").cpu()
        torch.testing.assert_close(got, gdn_reference(y, beta, gamma, inverse), rtol=1e-5, atol=1e-5)


def test_rans_on_the_gpu_writes_the_cpu_bytes():
    from terracodec.entropy.rans import rans_decode, rans_encode

    rng = np.random.default_rng(3)
    cdfs, lengths, offsets = random_tables(rng, 40, 70)
    n = 200_000
    indexes = torch.from_numpy(rng.integers(0, 40, n)).to(torch.int32)
    spread = (lengths[indexes.long()] + 4).numpy()
    symbols = (offsets[indexes.long()] + torch.from_numpy(np.floor(rng.random(n) * spread).astype(np.int64) - 2)).to(torch.int32)
    cpu = rans_encode(symbols, indexes, cdfs, lengths, offsets, backend="numba")
    gpu = rans_encode(symbols.cuda(), indexes.cuda(), cdfs.cuda(), lengths.cuda(), offsets.cuda(), backend="triton")
    assert gpu == cpu
    back = rans_decode(cpu, indexes.cuda(), cdfs.cuda(), lengths.cuda(), offsets.cuda(), backend="triton")
    assert torch.equal(back.cpu(), symbols)


@pytest.mark.parametrize("name", ["tec-fp-s2l1c", "tec-elic-s2l2a"])
def test_image_streams_decode_identically_on_cpu_and_gpu(name):
    """The encoders may write different streams (their analysis transforms round differently),
    but each stream decodes to the same latents on either device."""
    from terracodec.zoo import load_model

    cpu = load_model(name, 3)
    gpu = load_model(name, 3).to("cuda")
    gpu.update(force=True)
    x = frames(3, 1, cpu.bands, 128, 192, seed=5)[0] * 1.5
    for streams in (cpu.encode_tiles(x), gpu.encode_tiles(x.cuda())):
        want = cpu.decode_latents_batch(streams, 128, 192)["y_hat"]
        assert torch.equal(gpu.decode_latents_batch(streams, 128, 192)["y_hat"].cpu(), want)
        # same latents; the synthesis differs by float rounding (cuDNN convolutions use TF32
        # by PyTorch's default: ~6e-3 normalised, a few DN, seen on an H100)
        torch.testing.assert_close(gpu.decode_tiles(streams, 128, 192).cpu(),
                                   cpu.decode_tiles(streams, 128, 192), rtol=0, atol=2e-2)


def test_tt_streams_decode_across_cpu_gpu_and_batch_splits():
    """A TT on the GPU codes with a CPU copy of its entropy model (`TemporalCodec._coder`): its
    streams decode on the CPU, the CPU's on the GPU, tile by tile as well as batched."""
    cpu = tiny_tt(seed=2)
    gpu = tiny_tt(seed=2).to("cuda")
    gpu.update(force=True)
    x = frames(3, 3, 4, 128, 128, seed=6)  # [T, B, C, H, W]
    p_gpu, coded_gpu = gpu.encode_sequence(x.cuda())
    p_cpu, coded_cpu = cpu.encode_sequence(x)
    for model in (cpu, gpu):
        assert all(torch.equal(a, b) for a, b in zip(model.decode_sequence_latents(p_gpu, 128, 128), coded_gpu))
        assert all(torch.equal(a, b) for a, b in zip(model.decode_sequence_latents(p_cpu, 128, 128), coded_cpu))
    for i in range(x.shape[1]):
        tile = gpu.decode_sequence_latents([[p[i]] for p in p_gpu], 128, 128)
        assert all(torch.equal(a[0], b[i]) for a, b in zip(tile, coded_gpu))
    torch.testing.assert_close(gpu.decode_frames(p_gpu[0], 128, 128)[0].cpu(),
                               cpu.decode_frames(p_gpu[0], 128, 128)[0], rtol=0, atol=2e-2)


@pytest.mark.parametrize("model", ["tec-fp-s2l1c", "tec-tt-small"])
def test_container_written_on_the_gpu_decodes_on_the_cpu(tmp_path, model):
    """The user's path: `.tec` files coded with `device="cuda"` decode on either device to the
    same latents, and to pixels that differ by float rounding only."""
    from pathlib import Path

    import terracodec

    sample = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))[:3]
    frames_in = sample if model == "tec-tt-small" else sample[:1]
    stream = tmp_path / "gpu.tec"
    terracodec.encode(frames_in, stream, model=model, device="cuda")
    on_cpu = terracodec.decode_latents(stream, device="cpu")
    on_gpu = terracodec.decode_latents(stream, device="cuda")
    assert np.array_equal(on_cpu.y_hat, on_gpu.y_hat, equal_nan=True)
    pixels_cpu = terracodec.decode(stream, device="cpu").pixels.astype(np.int64)
    pixels_gpu = terracodec.decode(stream, device="cuda").pixels.astype(np.int64)
    assert np.abs(pixels_cpu - pixels_gpu).max() <= 32  # DN; TF32 convolutions on the GPU
