"""Video codecs for time series (HEVC, AV1) through FFmpeg's libraries via PyAV.

A series [T, C, H, W] is coded as video, the xarrayvideo way: each band is mapped linearly from
its [min, max] over the series (stored, 4 bytes a band) onto the codec's bit depth, bands go into
the planes of a video, frames are the dates. A single image is a one-frame video (intra only).

* `hevc`: libx265, band triplets as the three planes of `yuv444p12le` video (12 bit, no
  chroma subsampling; the planes are filled directly, so no RGB -> YUV matrix is applied).
  Preset `medium`, `tune=psnr` (the benchmark measures PSNR; x265's default psycho-visual
  tuning trades PSNR for looks), constant rate factor (`crf`) sweep, `info=0` (x265 otherwise
  writes its full option string, about 2 kB, into every stream). Decoded by FFmpeg's native HEVC decoder.
* `av1`: SVT-AV1. The encoders in PyAV's FFmpeg build take only 4:2:0 (SVT-AV1: `yuv420p`,
  `yuv420p10le`; libaom and rav1e are not in the wheel), and 4:2:0 would halve the resolution of
  two bands in every triplet. So each band is its own 10-bit video in the luma plane (chroma
  planes flat at mid-grey, which costs almost nothing). Preset 8 (SVT-AV1 tunes for PSNR by
  default), `crf` sweep. Decoded by dav1d.

Frames are padded (edge replication) to a multiple of 8 pixels (and at least 64, SVT-AV1's
minimum) and cropped after decoding. Packets are stored one after the other in our frame
(`pack_parts`), so the rate counts every byte the decoder needs.
"""

from __future__ import annotations

import fractions
import os
import struct
from typing import Any

import numpy as np

from terracodec.bench.base import (
    Codec, band_ranges, check_uint16, from_codes, pack_parts, payload_of_parts, to_codes,
    triplets, unpack_parts,
)
from terracodec.errors import CorruptStreamError

_PAD = 8
_MIN_SIDE = 64


def _av() -> Any:
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner on stderr otherwise
    import av

    av.logging.set_level(av.logging.ERROR)
    return av


def _missing_encoder(encoder: str, decoder: str) -> str | None:
    try:
        av = _av()
    except ImportError:
        return "PyAV is not installed (pip install av)"
    for name, mode in ((encoder, "w"), (decoder, "r")):
        try:
            av.codec.Codec(name, mode)
        except Exception:
            return f"the FFmpeg in PyAV {av.__version__} has no {name} {'encoder' if mode == 'w' else 'decoder'}"
    return None


def _padded(n: int) -> int:
    return max(_MIN_SIDE, -(-n // _PAD) * _PAD)


def _pad(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Edge-replicate [..., h, w] to [..., height, width]."""
    h, w = frames.shape[-2:]
    widths = [(0, 0)] * (frames.ndim - 2) + [(0, height - h), (0, width - w)]
    return np.pad(frames, widths, mode="edge")


def _plane_view(plane: Any) -> np.ndarray:
    """A writable uint16 view [rows, line_size/2] of an FFmpeg plane."""
    return np.frombuffer(plane, dtype=np.uint16).reshape(plane.height, plane.line_size // 2)


class _VideoCodec(Codec):
    series = True
    encoder = ""
    decoder = ""
    pix_fmt = ""
    bits = 12

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing_encoder(cls.encoder, cls.decoder)

    # --- what each codec puts into the planes of one video
    def _groups(self, bands: int) -> list[list[int]]:
        raise NotImplementedError

    def _options(self, quality: Any) -> dict[str, str]:
        raise NotImplementedError

    def _fill(self, frame: Any, codes: np.ndarray) -> None:
        raise NotImplementedError

    def _read(self, frame: Any, height: int, width: int) -> list[np.ndarray]:
        raise NotImplementedError

    # --- the shared machinery
    def _encode_video(self, video: np.ndarray, quality: Any) -> list[bytes]:
        """video: [T, planes, H, W] codes, already padded."""
        av = _av()
        ctx = av.CodecContext.create(self.encoder, "w")
        ctx.width, ctx.height = video.shape[-1], video.shape[-2]
        ctx.pix_fmt = self.pix_fmt
        ctx.time_base = fractions.Fraction(1, 1)
        ctx.framerate = fractions.Fraction(1, 1)
        if self.threads:
            ctx.thread_count = self.threads
        ctx.options = self._options(quality)
        packets: list[bytes] = []
        for t in range(video.shape[0]):
            frame = av.VideoFrame(ctx.width, ctx.height, self.pix_fmt)
            self._fill(frame, video[t])
            frame.pts = t
            packets.extend(bytes(p) for p in ctx.encode(frame))
        packets.extend(bytes(p) for p in ctx.encode(None))
        return packets

    def _decode_video(self, packets: list[bytes], height: int, width: int) -> list[list[np.ndarray]]:
        av = _av()
        ctx = av.CodecContext.create(self.decoder, "r")
        frames = []
        try:
            for data in packets:
                frames.extend(ctx.decode(av.Packet(data)))
            frames.extend(ctx.decode(None))
        except Exception as exc:
            raise CorruptStreamError(f"corrupt {self.name} stream: {str(exc).splitlines()[0]}") from None
        return [self._read(f, height, width) for f in frames]

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 4)
        t, c, h, w = x.shape
        ranges = band_ranges(x)
        codes = _pad(to_codes(x, ranges, self.bits, band_axis=1), _padded(h), _padded(w))
        parts: list[bytes] = []
        counts = []
        for g in self._groups(c):
            packets = self._encode_video(codes[:, g], quality)
            counts.append(len(packets))
            parts.extend(packets)
        side = ranges.astype("<u2").tobytes() + struct.pack(f"<{len(counts)}H", *counts)
        return pack_parts(x.shape, parts, side=side)

    def decode(self, data: bytes) -> np.ndarray:
        shape, side, parts = unpack_parts(data)
        if len(shape) != 4:
            raise CorruptStreamError(f"corrupt {self.name} stream: bad shape {shape}")
        t, c, h, w = shape
        groups = self._groups(c)
        if len(side) != 4 * c + 2 * len(groups):
            raise CorruptStreamError(f"corrupt {self.name} stream: side block does not match the bands")
        ranges = np.frombuffer(side[: 4 * c], "<u2").reshape(c, 2)
        counts = struct.unpack(f"<{len(groups)}H", side[4 * c :])
        if sum(counts) != len(parts):
            raise CorruptStreamError(f"corrupt {self.name} stream: packet counts do not add up")
        codes = np.empty((t, c, h, w), np.uint16)
        start = 0
        for g, n in zip(groups, counts):
            frames = self._decode_video(parts[start : start + n], h, w)
            start += n
            if len(frames) != t:
                raise CorruptStreamError(f"corrupt {self.name} stream: {len(frames)} frames for {t} dates")
            for ti, planes in enumerate(frames):
                for plane, band in zip(planes, g):
                    codes[ti, band] = plane
        return from_codes(codes, ranges, self.bits, band_axis=1)

    def payload_bytes(self, data: bytes) -> int:
        return payload_of_parts(data)


class Hevc(_VideoCodec):
    name = "hevc"
    encoder, decoder, pix_fmt, bits = "libx265", "hevc", "yuv444p12le", 12
    preset = "medium"
    quality_meaning = "x265 constant rate factor (smaller = better)"

    def default_qualities(self) -> list[Any]:
        return [40, 34, 28, 22, 16, 10]

    def settings(self) -> dict[str, Any]:
        av = _av()
        return {"library": f"libx265 via PyAV {av.__version__} (FFmpeg libavcodec "
                           f"{'.'.join(map(str, av.library_versions['libavcodec']))})",
                "format": "band triplets as the planes of yuv444p12le video, frames = dates",
                "scaling": "per band [min, max] over the series -> 0..4095, range stored",
                "preset": self.preset, "tune": "psnr (no psy-rd / adaptive quantisation)",
                "x265-params": "info=0:log-level=error",
                "quality": self.quality_meaning, "threads": self.threads or "x265 default"}

    def _groups(self, bands: int) -> list[list[int]]:
        return triplets(bands)

    def _options(self, quality: Any) -> dict[str, str]:
        return {"crf": str(quality), "preset": self.preset, "tune": "psnr",
                "x265-params": "info=0:log-level=error"}

    def _fill(self, frame: Any, codes: np.ndarray) -> None:
        h, w = codes.shape[-2:]
        for plane, values in zip(frame.planes, codes):
            _plane_view(plane)[:h, :w] = values

    def _read(self, frame: Any, height: int, width: int) -> list[np.ndarray]:
        if frame.format.name != self.pix_fmt:
            raise CorruptStreamError(f"corrupt hevc stream: decoded {frame.format.name}")
        return [_plane_view(p)[:height, :width].copy() for p in frame.planes]


class Av1(_VideoCodec):
    name = "av1"
    encoder, decoder, pix_fmt, bits = "libsvtav1", "libdav1d", "yuv420p10le", 10
    preset = 8
    quality_meaning = "SVT-AV1 constant rate factor 1-63 (smaller = better)"

    def default_qualities(self) -> list[Any]:
        return [60, 52, 44, 36, 28, 20, 12]

    def settings(self) -> dict[str, Any]:
        av = _av()
        return {"library": f"SVT-AV1 (encode) + dav1d (decode) via PyAV {av.__version__}",
                "format": "one 10-bit video per band in the luma plane (4:2:0 only in this build)",
                "scaling": "per band [min, max] over the series -> 0..1023, range stored",
                "preset": self.preset, "quality": self.quality_meaning,
                "threads": self.threads or "SVT-AV1 default"}

    def _groups(self, bands: int) -> list[list[int]]:
        return [[b] for b in range(bands)]

    def _options(self, quality: Any) -> dict[str, str]:
        return {"crf": str(quality), "preset": str(self.preset)}

    def _fill(self, frame: Any, codes: np.ndarray) -> None:
        h, w = codes.shape[-2:]
        y, u, v = frame.planes
        _plane_view(y)[:h, :w] = codes[0]
        _plane_view(u)[:] = 512
        _plane_view(v)[:] = 512

    def _read(self, frame: Any, height: int, width: int) -> list[np.ndarray]:
        if frame.format.name != self.pix_fmt:
            raise CorruptStreamError(f"corrupt av1 stream: decoded {frame.format.name}")
        return [_plane_view(frame.planes[0])[:height, :width].copy()]


VIDEO_CODECS: tuple[type[Codec], ...] = (Hevc, Av1)
