"""TEC-FP and TEC-ELIC: shapes, training pass, tile coding, error paths, determinism."""

from __future__ import annotations

import copy
from functools import lru_cache

import pytest
import torch

from terracodec.zoo import from_config
from terracodec.parallel import run_float

from terracodec.errors import CorruptStreamError, InputError, ModelError
from terracodec.models.base import ImageCodec, pack_streams, unpack_streams
from terracodec.zoo import seeded_init


def small_config(arch: str, bands: int) -> dict:
    if arch == "tec-fp":
        return {"arch": arch, "bands": bands, "N": 16, "M": 24}
    return {
        "arch": arch, "bands": bands, "N": 16, "M": 32, "groups": [4, 4, 8, 16],
        "context_widths": [16, 16], "aggregation_width": 32,
    }


@lru_cache(maxsize=None)
def _built(arch: str, bands: int, seed: int) -> ImageCodec:
    model = from_config(small_config(arch, bands))
    seeded_init(model, seed)
    with torch.no_grad():  # latents of a useful range, as in a trained model
        last = [m for m in model.g_a if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.mul_(8)
    model.update(force=True)  # building Gaussian tables is the slow part: done once
    return model.eval()


def make(arch: str, bands: int, seed: int = 0) -> ImageCodec:
    """A small seeded model with built tables (a fresh copy: tests may change it)."""
    return copy.deepcopy(_built(arch, bands, seed))


def tile(bands: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(bands, h // 8, w // 8, generator=g)
    smooth = torch.nn.functional.interpolate(base[None], size=(h, w), mode="bilinear")[0]
    return smooth + 0.1 * torch.randn(bands, h, w, generator=g)


ARCHS = ["tec-fp", "tec-elic"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bands", [12, 13, 2])
def test_forward_shapes_and_training_gradients(arch: str, bands: int) -> None:
    model = make(arch, bands).train()
    x = tile(bands, 64, 64)[None]
    out = model(x)
    assert out["x_hat"].shape == x.shape
    expected = {"y"} if arch == "tec-fp" else {"y", "z"}
    assert set(out["likelihoods"]) == expected
    for lik in out["likelihoods"].values():
        assert bool(((lik > 0) & (lik <= 1)).all())
    bits = sum(-torch.log2(v).sum() for v in out["likelihoods"].values())
    loss = bits / x.numel() + 10 * torch.mean((out["x_hat"] - x) ** 2)
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith("g_a.0.")]
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads)
    assert float(model.aux_loss().detach()) > 0


@pytest.mark.parametrize("arch", ARCHS)
def test_tile_round_trip_matches_eval_forward(arch: str) -> None:
    model = make(arch, 12)
    x = tile(12, 64, 128)
    data = model.encode_tile(x)
    assert isinstance(data, bytes) and len(data) > 0
    x_hat = model.decode_tile(data, 64, 128)
    assert x_hat.shape == x.shape and x_hat.dtype == torch.float32
    with torch.no_grad():
        reference = model(x[None])["x_hat"][0]
    assert float((x_hat - reference).abs().max()) < 1e-4
    latents = model.decode_latents(data, 64, 128)
    assert latents["y_hat"].shape == (model.M, 4, 8)
    with torch.no_grad():  # decode_tile runs its synthesis through run_float
        again = run_float(model.synthesis, latents["y_hat"][None].float())[0]
    assert torch.equal(again, x_hat)


def test_multiples_and_size_errors() -> None:
    fp, elic = make("tec-fp", 12), make("tec-elic", 12)
    assert (fp.multiple, elic.multiple) == (16, 16)  # ELIC pads its latent, not its pixels
    with pytest.raises(InputError):
        fp.encode_tile(torch.zeros(12, 40, 48))
    with pytest.raises(InputError):
        elic.encode_tile(torch.zeros(12, 96, 72))
    with pytest.raises(InputError):
        fp.encode_tile(torch.zeros(13, 32, 32))  # wrong band count
    bad = torch.zeros(12, 32, 32)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(InputError):
        fp.encode_tile(bad)
    data = fp.encode_tile(torch.zeros(12, 32, 32))
    with pytest.raises(InputError):
        fp.decode_tile(data, 30, 32)


@pytest.mark.parametrize("arch", ARCHS)
def test_corrupt_payloads_are_detected(arch: str) -> None:
    model = make(arch, 12)
    data = model.encode_tile(tile(12, 64, 64))
    with pytest.raises(CorruptStreamError):
        model.decode_tile(data[:-3], 64, 64)  # truncated
    with pytest.raises(CorruptStreamError):
        model.decode_tile(b"\x07" + data[1:], 64, 64)  # unknown payload version
    with pytest.raises(CorruptStreamError):
        model.decode_tile(data + b"\x00", 64, 64)  # trailing garbage
    with pytest.raises(CorruptStreamError):
        model.decode_tile(b"", 64, 64)
    other = make("tec-elic" if arch == "tec-fp" else "tec-fp", 12)
    with pytest.raises(CorruptStreamError):
        other.decode_tile(data, 64, 64)  # payload of another model: stream count differs


def test_pack_unpack_streams() -> None:
    streams = [b"abc", b"", b"\x01" * 300, b"\x02" * 20000]
    packed = pack_streams(streams)
    assert len(packed) == 2 + 1 + 1 + 2 + 3 + 20303
    assert unpack_streams(packed, 4) == streams
    with pytest.raises(CorruptStreamError):
        unpack_streams(packed, 3)
    with pytest.raises(CorruptStreamError):
        unpack_streams(packed[:5], 4)
    with pytest.raises(CorruptStreamError):
        unpack_streams(bytes([1, 1, 0x80]), 1)  # length varint cut short


@pytest.mark.parametrize("arch", ARCHS)
def test_decoding_is_independent_of_threads_and_batching(arch: str) -> None:
    """Encode and decode a batch with 2 threads, single tiles with 1 thread: identical."""
    model = make(arch, 12, seed=3)
    x = torch.stack([tile(12, 64, 64, seed=s) for s in (1, 2)])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        batch_payloads = model.encode_tiles(x)
        batch_latents = model.decode_latents_batch(batch_payloads, 64, 64)
        torch.set_num_threads(1)
        single_payloads = [model.encode_tile(x[i]) for i in range(2)]
        single_latents = [model.decode_latents(p, 64, 64) for p in batch_payloads]
    finally:
        torch.set_num_threads(threads)
    assert batch_payloads == single_payloads
    for i in range(2):
        for key, value in single_latents[i].items():
            assert torch.equal(value, batch_latents[key][i]), key


def test_weights_hash_tracks_every_tensor() -> None:
    a, b = make("tec-fp", 12), make("tec-fp", 12)
    assert a.weights_hash() == b.weights_hash()
    with torch.no_grad():
        b.g_s[0].bias[0] += 1e-3
    assert a.weights_hash() != b.weights_hash()
    assert make("tec-fp", 12, seed=1).weights_hash() != a.weights_hash()


def test_from_config_errors() -> None:
    with pytest.raises(ModelError):
        from_config({"arch": "tec-nope", "bands": 3})
    with pytest.raises(ModelError):
        from_config({"arch": "tec-fp", "bands": 3})  # N, M missing
    with pytest.raises(ModelError):
        from_config({**small_config("tec-elic", 12), "groups": [4, 4, 8]})
    model = from_config(small_config("tec-elic", 2))
    assert from_config(model.config).config == model.config


def test_untrained_tables_are_refused() -> None:
    model = from_config(small_config("tec-fp", 12)).eval()
    with pytest.raises(ModelError):
        model.encode_tile(torch.zeros(12, 32, 32))
    assert model.update() is True and model.update() is False
