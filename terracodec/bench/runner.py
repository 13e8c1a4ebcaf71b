"""The sweep: every codec x quality x sample, with rate, distortion, speed and memory.

How the numbers are pooled over a set of samples (each [T, C, H, W]):

* rate: total bytes over total pixel-bands (bpppb) or pixels (bpp) of the whole set; `bytes`
  counts everything a decoder needs (container / framing included), `payload_bytes` only the
  codec's own streams;
* distortion: every metric is computed per frame (one date of one sample, all its bands) and
  averaged over the frames of the set (per-band PSNR: per band, over the frames that have it);
* speed: pixel positions (T*H*W, all bands together) per second of wall time, encode and decode
  timed separately around the codec calls only, after one untimed warm-up call per quality on a
  small crop (model loading, JIT compilation, library initialisation);
* memory: the largest peak over the samples (see `terracodec.bench.measure`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from terracodec.bench import metrics
from terracodec.bench.base import Codec
from terracodec.bench.data import Sample
from terracodec.bench.measure import METHOD, measure
from terracodec.errors import InputError

Progress = Callable[[str, int, int], None]  # (what, done, total)

WARMUP_SIZE = 64


@dataclass
class FrameScores:
    """Distortion of one decoded frame [C, H, W] against its original."""

    psnr10k: float
    psnr65k: float
    band_psnr10k: list[float]
    ms_ssim: float
    sam_deg: float

    @staticmethod
    def of(x: np.ndarray, y: np.ndarray, with_ms_ssim: bool = True) -> "FrameScores":
        err = metrics.mse(x, y)
        return FrameScores(
            psnr10k=metrics.psnr_from_mse(err, metrics.PEAK_10K),
            psnr65k=metrics.psnr_from_mse(err, metrics.PEAK_65K),
            band_psnr10k=[float(v) for v in metrics.psnr_per_band(x, y, metrics.PEAK_10K)],
            ms_ssim=metrics.ms_ssim(x, y) if with_ms_ssim else float("nan"),
            sam_deg=metrics.sam(x, y),
        )


@dataclass
class SampleResult:
    """One codec at one quality on one sample."""

    codec: str
    quality: Any
    sample: str
    shape: tuple[int, int, int, int]
    bytes: int
    payload_bytes: int
    enc_s: float
    dec_s: float
    enc_peak: int
    dec_peak: int
    exact: bool
    frames: list[FrameScores] = field(default_factory=list)
    frame_bytes: list[int] | None = None


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _ms_ssim_db(ms: float) -> float:
    """MS-SSIM as -10 log10(1 - MS-SSIM), the usual readable scale near 1 (inf at 1)."""
    if math.isnan(ms):
        return ms
    return float("inf") if ms >= 1.0 else -10.0 * math.log10(1.0 - ms)


def _code_sample(codec: Codec, sample: Sample, quality: Any, with_ms_ssim: bool) -> SampleResult:
    x = sample.pixels
    codec.band_names = sample.band_names
    if codec.series:
        data, enc_s, enc_peak = measure(lambda: codec.encode(x, quality))
        y, dec_s, dec_peak = measure(lambda: codec.decode(data))
        n_bytes, payload = len(data), codec.payload_bytes(data)
        split = codec.frame_bytes(data)
    else:
        split = None
        enc_s = dec_s = 0.0
        enc_peak = dec_peak = n_bytes = payload = 0
        frames = []
        for t in range(x.shape[0]):
            data, s, p = measure(lambda: codec.encode(x[t], quality))
            out, s2, p2 = measure(lambda: codec.decode(data))
            enc_s, dec_s = enc_s + s, dec_s + s2
            enc_peak, dec_peak = max(enc_peak, p), max(dec_peak, p2)
            n_bytes, payload = n_bytes + len(data), payload + codec.payload_bytes(data)
            frames.append(out)
        y = np.stack(frames)
    y = np.asarray(y)
    if y.shape != x.shape:
        raise InputError(f"{codec.name} decoded shape {y.shape} for input {x.shape}")
    return SampleResult(
        codec=codec.name, quality=quality, sample=sample.name, shape=sample.shape,
        bytes=n_bytes, payload_bytes=payload, enc_s=enc_s, dec_s=dec_s,
        enc_peak=enc_peak, dec_peak=dec_peak, exact=bool(np.array_equal(x, y)),
        frames=[FrameScores.of(x[t], y[t], with_ms_ssim) for t in range(x.shape[0])],
        frame_bytes=split,
    )


def _warm_up(codec: Codec, sample: Sample, quality: Any) -> None:
    """One untimed round trip on a small crop (loads models, compiles, initialises libraries)."""
    from terracodec.bench.data import center_crop

    x = center_crop(sample.pixels, WARMUP_SIZE)
    codec.band_names = sample.band_names
    if codec.series:
        codec.decode(codec.encode(x, quality))
    else:
        codec.decode(codec.encode(x[0], quality))


def _band_labels(sample: Sample) -> list[str]:
    names = sample.band_names or [None] * sample.shape[1]
    return [n if n else f"band{i + 1}" for i, n in enumerate(names)]


def aggregate(results: list[SampleResult], samples: list[Sample], codec: Codec) -> dict[str, Any]:
    """One rate-distortion point from the per-sample results of one codec at one quality."""
    elements = sum(int(np.prod(r.shape)) for r in results)
    pixels = sum(r.shape[0] * r.shape[2] * r.shape[3] for r in results)
    n_bytes = sum(r.bytes for r in results)
    payload = sum(r.payload_bytes for r in results)
    frames = [f for r in results for f in r.frames]
    enc_s, dec_s = sum(r.enc_s for r in results), sum(r.dec_s for r in results)
    per_band: dict[str, list[float]] = {}
    by_name = {s.name: s for s in samples}
    for r in results:
        labels = _band_labels(by_name[r.sample])
        for f in r.frames:
            for label, v in zip(labels, f.band_psnr10k):
                per_band.setdefault(label, []).append(v)
    ms = _mean([f.ms_ssim for f in frames])
    return {
        "codec": codec.name,
        "quality": results[0].quality,
        "lossless": codec.lossless,
        "exact": all(r.exact for r in results),
        "bytes": n_bytes,
        "payload_bytes": payload,
        "bpppb": 8.0 * n_bytes / elements,
        "bpppb_payload": 8.0 * payload / elements,
        "bpp": 8.0 * n_bytes / pixels,
        "psnr10k": _mean([f.psnr10k for f in frames]),
        "psnr65k": _mean([f.psnr65k for f in frames]),
        "ms_ssim": ms,
        "ms_ssim_db": _ms_ssim_db(ms),
        "ms_ssim_scales": min(metrics.ms_ssim_scales(r.shape[2], r.shape[3]) for r in results),
        "sam_deg": _mean([f.sam_deg for f in frames]),
        "band_psnr10k": {k: _mean(v) for k, v in per_band.items()},
        "enc_s": enc_s,
        "dec_s": dec_s,
        "enc_mpix_s": pixels / 1e6 / enc_s if enc_s > 0 else float("inf"),
        "dec_mpix_s": pixels / 1e6 / dec_s if dec_s > 0 else float("inf"),
        "enc_peak_mb": max(r.enc_peak for r in results) / 2**20,
        "dec_peak_mb": max(r.dec_peak for r in results) / 2**20,
        "frames": len(frames),
        "pixels": pixels,
    }


def run_benchmark(
    samples: list[Sample], codecs: list[Codec], qualities: dict[str, list[Any]] | None = None, *,
    with_ms_ssim: bool = True, progress: Progress | None = None,
) -> dict[str, Any]:
    """Sweep every codec over its qualities on every sample.

    Returns {"samples", "codecs" (settings), "skipped" ({codec: reason}), "points" (one dict per
    codec and quality, see `aggregate`), "per_sample"}. A codec that cannot code one of the
    samples (e.g. a 13-band model on 12-band data), or that fails during its sweep, is left out
    as a whole with the reason, so that every curve is measured on the same data.
    """
    if not samples:
        raise InputError("no input samples")
    qualities = qualities or {}
    unknown = sorted(set(qualities) - {c.name for c in codecs})
    if unknown:
        raise InputError(f"--qualities names codecs that are not benchmarked: {', '.join(unknown)}")
    out: dict[str, Any] = {
        "samples": [{"name": s.name, "shape": list(s.shape), "band_names": s.band_names} for s in samples],
        "codecs": {}, "skipped": {}, "points": [], "per_sample": [],
        "memory_method": METHOD,
    }
    plan = []
    for codec in codecs:
        why = next((w for s in samples
                    if (w := codec.unsupported(s.pixels if codec.series else s.pixels[0], s.band_names))), None)
        if why:
            out["skipped"][codec.name] = why
            continue
        plan.append((codec, list(qualities.get(codec.name) or codec.default_qualities())))
    total = sum(len(q) * len(samples) for _, q in plan)
    done = 0
    for codec, sweep in plan:
        points: list[dict[str, Any]] = []
        per_sample: list[dict[str, Any]] = []
        try:
            for quality in sweep:
                _warm_up(codec, samples[0], quality)
                results = []
                for sample in samples:
                    results.append(_code_sample(codec, sample, quality, with_ms_ssim))
                    done += 1
                    if progress:
                        progress(f"{codec.name} q={quality}", done, total)
                points.append(aggregate(results, samples, codec))
                per_sample.extend(_per_sample_row(r) for r in results)
        except Exception as exc:  # one broken codec must not lose the others' results
            message = str(exc).splitlines()[0] if str(exc) else ""
            out["skipped"][codec.name] = f"failed at quality {quality!r}: {type(exc).__name__}: {message}"
            continue
        out["codecs"][codec.name] = {
            "settings": codec.settings(), "series": codec.series, "lossless": codec.lossless,
            "quality_meaning": codec.quality_meaning, "qualities": sweep,
        }
        out["points"].extend(points)
        out["per_sample"].extend(per_sample)
    return out


def _per_sample_row(r: SampleResult) -> dict[str, Any]:
    return {
        "codec": r.codec, "quality": r.quality, "sample": r.sample,
        "bytes": r.bytes, "payload_bytes": r.payload_bytes,
        "bpppb": 8.0 * r.bytes / int(np.prod(r.shape)),
        "psnr10k": _mean([f.psnr10k for f in r.frames]),
        "ms_ssim": _mean([f.ms_ssim for f in r.frames]),
        "sam_deg": _mean([f.sam_deg for f in r.frames]),
        "enc_s": r.enc_s, "dec_s": r.dec_s, "exact": r.exact,
        # per date: payload bytes (where the codec splits them) and PSNR-10k
        "frame_bytes": r.frame_bytes,
        "frame_psnr10k": [f.psnr10k for f in r.frames],
    }
