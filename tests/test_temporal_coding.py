"""TEC-TT autoregressive coding: round trips, KV cache = full pass, bit-exact decoding across
thread counts and batch splits, damaged payloads, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from _tinytt import frames, tiny_tt, one_thread  # noqa: F401  (autouse fixture)
from terracodec.errors import CorruptStreamError, InputError
from terracodec.temporal import TemporalState
from terracodec.temporal.entropy_paths import CURRENT_PATH
from terracodec.temporal.windows import context_windows, current_windows, merge_windows




def test_windows_layout() -> None:
    y = torch.randn(2, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    cur = current_windows(y, 4)
    assert cur.shape == (2 * 2 * 3, 16, 3)
    assert torch.equal(merge_windows(cur, 8, 12, 4), y)
    # window k = (b, i, j): tokens in raster order
    assert torch.equal(cur[1 * 6 + 1 * 3 + 2].T.reshape(3, 4, 4), y[1, :, 4:8, 8:12])
    ctx = context_windows(y, 8, 4)
    assert ctx.shape == (12, 64, 3)
    padded = F.pad(y, (2, 2, 2, 2), mode="reflect")
    for k, (b, i, j) in enumerate((b, i, j) for b in range(2) for i in range(2) for j in range(3)):
        window = ctx[k].T.reshape(3, 8, 8)
        assert torch.equal(window, padded[b, :, 4 * i : 4 * i + 8, 4 * j : 4 * j + 8])
        assert torch.equal(window[:, 2:6, 2:6], cur[k].T.reshape(3, 4, 4))  # centred


def test_windows_pad_ragged_grids() -> None:
    y = torch.randn(1, 2, 6, 7, generator=torch.Generator().manual_seed(1))
    cur = current_windows(y, 4)
    assert cur.shape == (4, 16, 2)
    assert torch.equal(merge_windows(cur, 6, 7, 4), y)
    assert context_windows(y, 8, 4).shape == (4, 64, 2)


def test_kv_cache_steps_equal_the_masked_full_pass() -> None:
    model = tiny_tt()
    em = model.entropy_model
    torch.manual_seed(3)
    tokens = torch.round(3 * torch.randn(5, 16, em.num_channels))
    memory = torch.randn(5, 2 * em.seq_len_enc, em.d_model)
    with torch.no_grad():
        means, scales, feats = em.predict(tokens, memory)
        cache = em.start_decoding(memory, 5)
        previous = None
        for t in range(16):
            m, s, f = em.step(previous, cache)
            for ours, ref in ((m, means), (s, scales), (f, feats)):
                assert float((ours[:5] - ref[:, t]).abs().max()) < 1e-5
            previous = tokens[:, t]


def test_sequence_round_trip_matches_forward() -> None:
    model = tiny_tt()
    x = frames(2, 3, 4, 64, 128)
    with torch.no_grad():
        out = model(x.transpose(0, 1))
    enc, dec = TemporalState(), TemporalState()
    for t in range(3):
        payloads, enc = model.encode_frames(x[t], enc)
        assert len(payloads) == 2
        latents, _ = model.decode_latent_frames(payloads, 64, 128, dec)
        x_hat, dec = model.decode_frames(payloads, 64, 128, dec)
        # the decoder features feeding synthesis come from the int8 path: close, not equal
        assert float((x_hat - out["x_hat"][:, t]).abs().max()) < 1e-3
        bits = sum(len(p) for p in payloads) * 8
        estimate = float(-torch.log2(out["likelihoods"]["y"][t]).sum())
        assert 0.9 * estimate < bits < 1.3 * estimate + 16 * 16 * 8 * 2
        assert latents["y_hat"].shape == (2, 16, 4, 8)
        assert latents["features"].shape == (2, 16, 4, 8)
    assert enc.frames == dec.frames == 3
    assert torch.equal(enc.pending, dec.pending)
    for a, b in zip(enc.encoded, dec.encoded):
        assert torch.equal(a, b)  # both sides carry the same state, bit for bit


def test_the_sequence_protocol_is_the_batched_coding_of_one_tile() -> None:
    """`encode_frame` / `decode_frame` / `decode_frame_latents` (the protocol every codec has)
    code a tile's frames exactly as the batched `encode_frames` / `decode_frames` do."""
    model = tiny_tt()
    x = frames(1, 2, 4, 64, 64)
    state, payloads = model.start_state(), []
    for t in range(2):
        payload, state = model.encode_frame(state, x[t][0])
        payloads.append(payload)
    batched, batched_state = [], None
    for t in range(2):
        p, batched_state = model.encode_frames(x[t], batched_state)
        batched.append(p[0])
    assert payloads == batched
    dec, lat = model.start_state(), model.start_state()
    for t in range(2):
        x_hat, dec = model.decode_frame(dec, payloads[t], 64, 64)
        latents, lat = model.decode_frame_latents(lat, payloads[t], 64, 64)
        assert set(latents) == {"y_hat", "features"} and x_hat.shape == (4, 64, 64)
    assert torch.equal(dec.pending, lat.pending)  # both walks advance the same state


def _with_threads(n: int, fn):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(old)


@pytest.mark.slow
def test_bit_exact_across_threads_and_batch_splits(monkeypatch) -> None:
    """Big enough that the GEMMs take the back-ends' blocked paths (d_model 256, MLP 1024).
    Decoder steps run in chunks of 2 windows here, so 3 tiles take two tasks on the threads
    given (one tile: one task)."""
    import terracodec.temporal.coding as coding

    monkeypatch.setattr(coding, "SERIAL_ROWS", 1)
    monkeypatch.setattr(coding, "STEP_WINDOWS", 2)
    model = tiny_tt(seed=5, bands=4, latent_channels=64, transform_channels=[8, 8, 16, 64],
                    d_model=256, num_heads=4, layers=[1, 1, 2])
    x = frames(3, 2, 4, 64, 64, seed=7)

    def encode(tiles, threads):
        state, out = TemporalState(), []
        for t in range(x.shape[0]):
            payloads, state = _with_threads(threads, lambda: model.encode_frames(x[t, tiles], state))
            out.append(payloads)
        return out

    def decode(payloads, threads):
        state, out = TemporalState(), []
        for frame in payloads:
            latents, state = _with_threads(threads, lambda: model.decode_latent_frames(frame, 64, 64, state))
            out.append(latents)
        return out

    batched = encode([0, 1, 2], 2)
    alone = encode([1], 1)
    for t in range(2):
        assert alone[t][0] == batched[t][1]  # same bytes whatever the batch and thread count
    decoded_batch = decode(batched, 1)
    decoded_alone = decode([[frame[1]] for frame in batched], 2)
    for t in range(2):
        for key in ("y_hat", "features"):
            assert torch.equal(decoded_alone[t][key][0], decoded_batch[t][key][1])


def test_damaged_payloads_raise() -> None:
    model = tiny_tt()
    x = frames(1, 1, 4, 64, 64)[0]
    payload = model.encode_frames(x)[0][0]
    with pytest.raises(CorruptStreamError):
        model.decode_frames([payload[:-3]], 64, 64)
    with pytest.raises(CorruptStreamError):
        model.decode_frames([payload[:1]], 64, 64)
    with pytest.raises(CorruptStreamError):  # a payload of another model layout (1 stream)
        model.decode_frames([bytes([1, 1, 0])], 64, 64)


def test_bad_input() -> None:
    model = tiny_tt()
    with pytest.raises(InputError):
        model.encode_frames(torch.zeros(1, 3, 64, 64))  # bands
    with pytest.raises(InputError):
        model.encode_frames(torch.zeros(1, 4, 64, 48))  # not a multiple of 64
    with pytest.raises(InputError):
        model.encode_frames(torch.full((1, 4, 64, 64), float("nan")))
    _, state = model.encode_frames(torch.zeros(2, 4, 64, 64))
    with pytest.raises(InputError):  # the sequence has 2 tiles
        model.encode_frames(torch.zeros(1, 4, 64, 64), state)
    with pytest.raises(InputError):  # ... of 64x64
        model.encode_frames(torch.zeros(2, 4, 64, 128), state)


def test_encoder_one_pass_equals_decoder_steps_bit_for_bit() -> None:
    """The encoder feeds a window's 16 known tokens at once (`predict_cached`, chunks of any
    size); the decoder feeds one token per step to a padded batch: same numbers, bit for bit.
    d_model 256 / MLP 1024 so that the GEMMs take the back-ends' blocked paths."""
    model = tiny_tt(seed=4, latent_channels=32, transform_channels=[8, 8, 16, 32], d_model=256,
                    num_heads=4, layers=[1, 1, 2])
    em = model.entropy_model
    torch.manual_seed(2)
    tokens = torch.round(4 * torch.randn(17, 16, em.num_channels)) + 0.0
    with torch.no_grad():
        kv = em.memory_keys_values(torch.randn(17, 2 * em.seq_len_enc, em.d_model))
        cache = em.start_cache(kv, 17)
        steps, previous = [], None
        for t in range(16):
            steps.append(em.step(previous, cache))
            previous = tokens[:, t]
        for rows in (slice(0, 17), slice(0, 1), slice(3, 8)):
            one_pass = em.predict_cached(tokens[rows], em.start_cache([(k[rows], v[rows]) for k, v in kv],
                                                                      rows.stop - rows.start, pad=False))
            for i in range(3):  # means, scales, features
                expected = torch.stack([s[i][rows] for s in steps], 1)
                assert torch.equal(one_pass[i], expected)


def test_step_by_step_encoding_codes_the_same_streams() -> None:
    """`encode_frame` codes from one pass when the coded tokens equal the rounded latent, and
    falls back to step-by-step coding otherwise: both give the same streams and latents."""
    import terracodec.temporal.coding as coding

    model = tiny_tt(seed=6)
    x = frames(2, 2, 4, 64, 128, seed=3)
    state = TemporalState()
    with torch.no_grad():
        for t in range(2):
            tasks, finish = model._context_tasks(state)
            context = finish([task() for task in tasks])
            y = model.analysis(x[t])
            coder = model._coder(CURRENT_PATH)[0]  # what streams are coded with (the state's path)
            streams, y_hat, features = coding.encode_frame(coder, y, context)
            windows = current_windows(y, 4)
            tiles = [slice(0, 2), slice(2, 4)]
            slow, tokens, slow_features = coding._encode_steps(coder, windows, context, tiles)
            assert slow == streams
            assert torch.equal(merge_windows(tokens, 4, 8, 4), y_hat)
            assert torch.equal(merge_windows(slow_features, 4, 8, 4), features)
            state = model.advance(state, y_hat)


def test_sequence_helpers_round_trip() -> None:
    model = tiny_tt(seed=8)
    x = frames(2, 3, 4, 64, 128, seed=9)  # [T, B, C, H, W]
    payloads, coded = model.encode_sequence(x)
    assert len(payloads) == 3 and all(len(p) == 2 for p in payloads)
    decoded = model.decode_sequence_latents(payloads, 64, 128)
    assert all(torch.equal(a, b) for a, b in zip(decoded, coded))
    # the second tile alone decodes to its own latents
    alone = model.decode_sequence_latents([[p[1]] for p in payloads], 64, 128)
    assert all(torch.equal(a[0], b[1]) for a, b in zip(alone, coded))
