"""Benchmark codecs: round trips, lossless exactness, rate grows with quality, corrupt input,
the terracodec models through the same interface, and the sweep runner."""

from __future__ import annotations

import math

import numpy as np
import pytest

from terracodec.bench import metrics
from terracodec.bench.base import band_ranges, from_codes, pack_parts, to_codes, triplets, unpack_parts
from terracodec.bench.classical import CLASSICAL_IMAGE_CODECS, Jpeg2000
from terracodec.bench.data import Sample, as_uint16
from terracodec.bench.learned import TerracodecModel
from terracodec.bench.registry import make_codecs
from terracodec.bench.runner import run_benchmark
from terracodec.bench.video import VIDEO_CODECS
from terracodec.errors import CorruptStreamError, InputError


def _image(bands: int = 5, h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
    """Spatially correlated uint16 DN in a Sentinel-2-like range, odd-ish sizes."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(np.cumsum(rng.normal(0, 20, (bands, h, w)), axis=1), axis=2)
    walk = (walk - walk.min()) / (walk.max() - walk.min())
    return (300 + 5000 * walk).astype(np.uint16)


def _available(cls):
    why = cls.unavailable()
    if why:
        pytest.skip(why)
    return cls()


@pytest.mark.parametrize("cls", CLASSICAL_IMAGE_CODECS, ids=lambda c: c.name)
def test_classical_round_trip_and_rate_grows_with_quality(cls):
    codec = _available(cls)
    x = _image()
    sweep = codec.default_qualities()
    qualities = [sweep[0], sweep[-1]]
    sizes, psnrs = [], []
    for q in qualities:
        data = codec.encode(x, q)
        y = codec.decode(data)
        assert y.shape == x.shape and y.dtype == np.uint16
        assert 0 < codec.payload_bytes(data) <= len(data)
        sizes.append(len(data))
        psnrs.append(metrics.psnr(x, y, metrics.PEAK_10K))
        if codec.lossless:
            assert np.array_equal(x, y)
    if not codec.lossless:
        assert sizes[1] > sizes[0], "the best quality of the sweep must cost more bytes"
        assert psnrs[1] > psnrs[0] + 3, "and give a clearly better PSNR"
        assert psnrs[1] > 35  # WebP (8 bit, 4:2:0) tops out lowest


@pytest.mark.parametrize("bands", [1, 3, 4, 13])
def test_jpeg2000_takes_any_band_count(bands):
    codec = _available(Jpeg2000)
    x = _image(bands=bands, h=24, w=20)
    y = codec.decode(codec.encode(x, 70))
    assert y.shape == x.shape
    assert metrics.psnr(x, y, metrics.PEAK_10K) > 45


@pytest.mark.parametrize("cls", [c for c in CLASSICAL_IMAGE_CODECS if c.name in ("jpegxl", "webp", "zstd")],
                         ids=lambda c: c.name)
def test_corrupt_frames_are_detected(cls):
    codec = _available(cls)
    data = codec.encode(_image(bands=4, h=16, w=16), codec.default_qualities()[-1])
    for bad in (data[:-7], data[:5], data + b"xx"):
        with pytest.raises(CorruptStreamError):
            codec.decode(bad)


def test_classical_codecs_refuse_other_dtypes():
    codec = _available(Jpeg2000)
    with pytest.raises(InputError):
        codec.encode(_image().astype(np.int32), 60)
    with pytest.raises(InputError):
        codec.encode(_image()[None], 60)


def test_frame_round_trip():
    parts = [b"abc", b"", b"\x00" * 300]
    data = pack_parts((2, 3, 4), parts, side=b"side")
    assert unpack_parts(data) == ((2, 3, 4), b"side", parts)


def test_bit_depth_scaling_error_is_half_a_step():
    x = _image(bands=3)
    ranges = band_ranges(x)
    for bits in (8, 12):
        y = from_codes(to_codes(x, ranges, bits, band_axis=0), ranges, bits, band_axis=0)
        step = (ranges[:, 1].astype(float) - ranges[:, 0]) / (2**bits - 1)
        err = np.abs(x.astype(float) - y).max(axis=(1, 2))
        assert np.all(err <= step / 2 + 0.5 + 1e-9)  # half a code step, plus DN rounding
    const = np.full((1, 4, 4), 777, np.uint16)
    r = band_ranges(const)
    assert np.array_equal(from_codes(to_codes(const, r, 8, 0), r, 8, 0), const)


def test_triplets_pad_by_repeating_the_last_band():
    assert triplets(3) == [[0, 1, 2]]
    assert triplets(13)[-1] == [12, 12, 12]
    assert triplets(5) == [[0, 1, 2], [3, 4, 4]]


@pytest.mark.parametrize("cls", VIDEO_CODECS, ids=lambda c: c.name)
def test_video_codecs_code_a_series(cls):
    codec = _available(cls)
    base = _image(bands=4, h=36, w=44)
    x = np.stack([base, np.clip(base.astype(int) + 40, 0, 65535).astype(np.uint16)])  # 2 dates
    sweep = codec.default_qualities()
    lo, hi = codec.encode(x, sweep[0]), codec.encode(x, sweep[-1])
    y_lo, y_hi = codec.decode(lo), codec.decode(hi)
    assert y_hi.shape == x.shape and y_hi.dtype == np.uint16
    assert len(hi) > len(lo)
    assert metrics.psnr(x, y_hi, metrics.PEAK_10K) > metrics.psnr(x, y_lo, metrics.PEAK_10K) + 3
    with pytest.raises(CorruptStreamError):
        codec.decode(hi[:-3])


def test_every_registered_model_is_a_codec():
    from terracodec import api

    names = [m.name for m in TerracodecModel.registered()]
    assert names == [m["name"] for m in api.models()]  # image and temporal models alike
    ready = [m.name for m in TerracodecModel.registered() if not m.missing_weights()]
    codecs, skipped = make_codecs(ready)
    assert [c.name for c in codecs] == ready and not skipped
    everything, skipped = make_codecs(None)
    assert set(skipped) >= set(names) - set(ready)  # left out with the reason, not an error
    for name in set(names) - set(ready):
        with pytest.raises(InputError, match="--weights"):
            make_codecs([name])


def test_terracodec_model_round_trip_counts_the_container():
    codec = TerracodecModel.registered()[0]
    bands = codec.entry["bands"]
    x = _image(bands=bands, h=32, w=32)[None]
    codec.band_names = None
    data = codec.encode(x, codec.default_qualities()[0])
    y = codec.decode(data)
    assert y.shape == x.shape and y.dtype == np.uint16
    assert 0 < codec.payload_bytes(data) < len(data)  # the header is counted in the rate
    assert codec.unsupported(x[:, :-1], None) is not None  # wrong band count


def test_make_codecs_errors():
    with pytest.raises(InputError, match="unknown codec"):
        make_codecs(["jpeg2000", "no-such-codec"])


def test_runner_sweeps_pools_and_skips():
    x = as_uint16(_image(bands=4, h=24, w=24).astype(np.int32), "test")
    samples = [Sample("a", x[None], ["B02", "B03", "B04", "B08"]), Sample("b", _image(4, 24, 24, seed=1)[None])]
    codecs, _ = make_codecs(["jpeg2000", "zstd", TerracodecModel.registered()[0].name])
    result = run_benchmark(samples, codecs, {"jpeg2000": [50, 70]}, with_ms_ssim=False)
    points = {(p["codec"], p["quality"]): p for p in result["points"]}
    assert set(points) == {("jpeg2000", 50), ("jpeg2000", 70), ("zstd", 9)}
    assert TerracodecModel.registered()[0].name in result["skipped"]  # 4 bands: not its input
    lo, hi = points[("jpeg2000", 50)], points[("jpeg2000", 70)]
    assert hi["bpppb"] > lo["bpppb"] and hi["psnr10k"] > lo["psnr10k"]
    total_bytes = sum(r["bytes"] for r in result["per_sample"] if r["codec"] == "jpeg2000" and r["quality"] == 70)
    assert hi["bpppb"] == pytest.approx(8 * total_bytes / (2 * 4 * 24 * 24))
    assert set(hi["band_psnr10k"]) == {"B02", "B03", "B04", "B08", "band1", "band2", "band3", "band4"}
    z = points[("zstd", 9)]
    assert z["lossless"] and z["exact"] and z["psnr10k"] == math.inf
    with pytest.raises(InputError):
        run_benchmark(samples, codecs, {"webp": [50]})


def test_a_failing_codec_is_reported_not_fatal():
    from terracodec.bench.base import Codec

    class Broken(Codec):
        name = "broken"

        def default_qualities(self):
            return [1, 2]

        def encode(self, x, quality):
            if quality == 2:
                raise RuntimeError("encoder exploded\nsecond line")
            return x.tobytes()

        def decode(self, data):
            return np.frombuffer(data, np.uint16).reshape(2, 16, 16)

    samples = [Sample("a", _image(bands=2, h=16, w=16)[None])]
    jp, _ = make_codecs(["jpeg2000"])
    result = run_benchmark(samples, [Broken()] + jp, {"jpeg2000": [60]}, with_ms_ssim=False)
    assert "encoder exploded" in result["skipped"]["broken"]
    assert "second line" not in result["skipped"]["broken"]
    assert {p["codec"] for p in result["points"]} == {"jpeg2000"}
    assert "broken" not in result["codecs"]
