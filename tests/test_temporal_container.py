"""Temporal streams in the `.tec` container: each tile's frames coded in time order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import terracodec
from _tinytt import frames, tiny_tt, one_thread  # noqa: F401  (autouse fixture)
from terracodec.errors import ModelError
from terracodec.normalization import Normalization




@pytest.fixture(scope="module")
def model():
    m = tiny_tt(seed=9)
    m.config.update(name="tt-test", quality=1,
                    normalization=Normalization((1000.0,) * 4, (500.0,) * 4, "test").to_config())
    return m


def _stack(t: int = 3, h: int = 100, w: int = 140) -> np.ndarray:
    x = frames(1, t, 4, 128, 192, seed=3)[:, 0, :, :h, :w]
    dn = np.clip(np.rint(1000 + 500 * x.numpy()), 1, 60000).astype(np.uint16)
    if t > 2:
        dn[2, :, :64, :64] = 0  # frame 2, tile 0: all nodata -> stored exactly, no model payload
    return dn


def test_temporal_stream_round_trip(model) -> None:
    dn = _stack()
    stream = terracodec.encode(dn, model=model, tile_size=64, nodata=0,
                               band_names=["B02", "B03", "B04", "B08"])
    info = terracodec.info(stream)
    assert info["kind"] == "temporal" and info["frames"] == 3 and info["tiles_per_frame"] == 6
    out = np.asarray(terracodec.decode(stream, model=model))
    assert out.shape == dn.shape
    assert np.array_equal(out[2, :, :64, :64], dn[2, :, :64, :64])
    err = np.abs(out.astype(np.float64) - dn)[dn > 0]
    assert err.mean() < 500  # lossy (random weights), but the right pixels in the right place

    # Frame 2 alone, a window: the earlier frames of the needed tiles are decoded to latents only.
    part = np.asarray(terracodec.decode(stream, model=model, frames=[2], window=(50, 30, 60, 50)))
    assert np.array_equal(part[0], out[2, :, 30:80, 50:110])

    # The same frames coded as a sequence directly (tile 4 = row 1, col 1, padded to 64x64).
    norm = Normalization.from_config(model.config["normalization"])
    state, payloads = None, []
    for t in range(3):
        tile = dn[t, :, 64:100, 64:128].astype(np.float32)
        padded = np.pad(tile, ((0, 0), (0, 28), (0, 0)), mode="edge")
        x = torch.from_numpy(norm.normalize(padded))
        p, state = model.encode_frames(x[None], state)
        payloads.append(p[0])
    from terracodec.container import ContainerReader

    with ContainerReader(stream) as reader:
        assert [reader.read_tile(t, 4).code for t in range(3)] == payloads

    # Latents on their 1/16 grid, without synthesis.
    lat = terracodec.decode_latents(stream, model=model, frames=[1, 2])
    assert lat.y_hat.shape == (2, 16, 7, 9) and lat.features.shape == (2, 16, 7, 9)
    assert np.isnan(lat.y_hat[1, :, :4, :4]).all()  # frame 2, tile 0: stored exactly
    assert not np.isnan(lat.y_hat[0]).any()
    state = None
    for t in range(3):
        direct, state = model.decode_latent_frames([payloads[t]], 64, 64, state)
        if t >= 1:
            assert np.array_equal(lat.y_hat[t - 1, :, 4:7, 4:8], direct["y_hat"][0, :, :3, :].numpy())
    assert lat.transform.a == 16 * 1.0 and lat.frame_names[0] == info["frame_info"][1]["name"]


def test_temporal_stream_refuses_other_models(model) -> None:
    stream = terracodec.encode(_stack(t=2, h=64, w=64), model=model, tile_size=64,
                               band_names=["B02", "B03", "B04", "B08"])
    other = tiny_tt(seed=10)
    other.config.update(model.config)
    with pytest.raises(ModelError, match="weights"):
        terracodec.decode(stream, model=other)
    with pytest.raises(ModelError):
        terracodec.decode(stream, model="tec-fp-tiny")


def test_decode_latents_of_an_image_stream() -> None:
    rng = np.random.default_rng(0)
    dn = rng.integers(500, 3000, size=(2, 13, 70, 90)).astype(np.uint16)
    stream = terracodec.encode(dn, model="tec-fp-tiny", tile_size=64)
    lat = terracodec.decode_latents(stream, frames=[1])
    assert lat.y_hat.shape[0] == 1 and lat.y_hat.shape[2:] == (5, 6)
    assert lat.features is None and np.isfinite(lat.y_hat).all()


def test_streams_use_the_portable_path_and_a_bad_frame_is_refused(model, monkeypatch) -> None:
    """TT streams are coded with the integer entropy path (`int8-v2`, portable: tests/
    test_exact_tt.py); a frame whose parameters do not reproduce is refused, and the error does
    not blame the platform (legacy float streams do: tests/test_exact_tt.py)."""
    from terracodec.errors import CorruptStreamError
    from terracodec.temporal.entropy_model import TemporalEntropyModel
    from terracodec.temporal.entropy_paths import CURRENT_PATH

    stream = terracodec.encode(_stack(t=2, h=64, w=64), model=model, tile_size=64,
                               band_names=["B02", "B03", "B04", "B08"])
    assert terracodec.info(stream)["coder_platform"] == CURRENT_PATH == "int8-v2"
    step = TemporalEntropyModel.step

    def other_rounding(self, previous, cache):
        means, scales, features = step(self, previous, cache)
        return means, scales + 2.0, features

    monkeypatch.setattr(TemporalEntropyModel, "step", other_rounding)
    with pytest.raises(CorruptStreamError) as refused:
        terracodec.decode(stream, model=model)
    assert "platform" not in str(refused.value) and "\n" not in str(refused.value)
