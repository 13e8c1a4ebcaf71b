"""Classical still-image codecs through `imagecodecs`, each with its exact settings.

| name | library | bands | quality parameter |
|---|---|---|---|
| `jpeg2000` | OpenJPEG (`jpeg2k_encode`) | all C bands as components of one J2K codestream, 16 bit | fixed-quality PSNR target (dB, 16-bit peak) |
| `jpeg2000-lossless` | OpenJPEG | same, reversible 5/3 wavelet | - (lossless) |
| `htj2k` | OpenJPH (`htj2k_encode`) | all bands, one codestream, 16 bit | quantisation step (fraction of full range) |
| `jpegxl` | libjxl (`jpegxl_encode`) | one 16-bit grey image per band | Butteraugli distance |
| `webp` | libwebp (`webp_encode`) | band triplets as RGB, 8 bit | quality 0-100 |
| `avif` | libavif + libaom (`avif_encode`) | band triplets as RGB, 12 bit, YUV 4:4:4 | quality 0-100 |
| `zstd` | zstd (`zstd_encode`) | raw little-endian uint16, band-sequential | compression level (lossless) |

Why these choices (see benchmarks/RESULTS.md for the measured effects):

* JPEG2000 codes all bands in one codestream without a multi-component transform (MCT applies
  to exactly 3 components; `mct=False`), irreversible 9/7 wavelet, one tile, one quality layer,
  64x64 code blocks, up to 6 resolution levels. This binding exposes OpenJPEG's fixed-quality
  mode (`tcp_distoratio`), so the sweep sets PSNR targets; OpenJPEG measures them against the
  component precision (16 bit), so a target is roughly a PSNR-65k, not a PSNR-10k.
* JPEG XL in this binding supports extra channels only losslessly (planar grey + extra
  channels came out at 6.2 bpppb at distance 1 on an OSCD scene), so each band is its own
  16-bit grey codestream (VarDCT, effort 7).
* WebP is 8-bit only, and lossy WebP always converts RGB to YUV 4:2:0. Each band is mapped
  linearly from its own [min, max] (stored, 4 bytes a band) onto 0..255, so WebP cannot go
  beyond the 8-bit quantisation step (range / 255, ~20-40 DN on S2 scenes: PSNR-10k below
  ~60 dB) and the two chroma-coded bands of each triplet lose half their resolution.
* AVIF takes 12 bits (range / 4095 per band) and 4:4:4, so only the RGB -> YCbCr matrix
  (BT.601, libavif's default) stands between a triplet and the coder.
* Triplets are bands (0,1,2), (3,4,5), ...; a short last group repeats its last band.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from terracodec.bench.base import (
    Codec, band_ranges, check_uint16, from_codes, pack_parts, payload_of_parts, to_codes,
    triplets, unpack_parts,
)
from terracodec.errors import CorruptStreamError


def _imagecodecs() -> Any:
    import imagecodecs

    return imagecodecs


def _missing(feature: str) -> str | None:
    """None when `imagecodecs.<feature>` is importable and available, else the reason."""
    try:
        ic = _imagecodecs()
    except ImportError:
        return "imagecodecs is not installed (pip install 'terracodec[bench]')"
    codec = getattr(ic, feature, None)
    if codec is None or not getattr(codec, "available", False):
        return f"imagecodecs {ic.__version__} was built without {feature}"
    return None


def _resolutions(height: int, width: int) -> int:
    """Resolution levels: 6 (5 wavelet decompositions) when the image is >= 32 px a side,
    fewer for smaller images (each level halves the size)."""
    return max(1, min(6, int(math.log2(max(1, min(height, width)))) + 1))


def _decode_error(name: str, exc: Exception) -> CorruptStreamError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CorruptStreamError(f"corrupt {name} stream: {reason}")


class Jpeg2000(Codec):
    name = "jpeg2000"
    quality_meaning = "OpenJPEG fixed-quality target PSNR in dB against the 16-bit peak (~PSNR-65k)"

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing("JPEG2K")

    def default_qualities(self) -> list[Any]:
        # dense where the learned codecs lie (PSNR-65k ~49-55 on OSCD, down to ~42 on hard
        # Level-2A scenes), so that BD-rates against this anchor interpolate between measured
        # points rather than across 5 dB gaps, or find no overlap at all
        return [39, 41, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 58, 60, 65, 70, 75, 80]

    def settings(self) -> dict[str, Any]:
        ic = _imagecodecs()
        return {"library": f"OpenJPEG {ic.jpeg2k_version()} via imagecodecs {ic.__version__}",
                "format": "J2K codestream, all bands as components", "wavelet": "9/7 irreversible",
                "mct": False, "tiles": 1, "layers": 1, "resolutions": "min(6, log2(min(H,W))+1)",
                "bit_depth": 16, "quality": self.quality_meaning, "threads": self.threads}

    def _encode(self, x: np.ndarray, **kw: Any) -> bytes:
        ic = _imagecodecs()
        return bytes(ic.jpeg2k_encode(x, codecformat="J2K", planar=True, mct=False,
                                      resolutions=_resolutions(*x.shape[1:]),
                                      numthreads=self.threads, **kw))

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 3)
        return self._encode(x, level=float(quality), reversible=False)

    def decode(self, data: bytes) -> np.ndarray:
        ic = _imagecodecs()
        try:
            y = ic.jpeg2k_decode(data, planar=True, numthreads=self.threads)
        except Exception as exc:  # the binding raises its own error types
            raise _decode_error(self.name, exc) from None
        return np.ascontiguousarray(y.reshape((-1,) + y.shape[-2:]), dtype=np.uint16)


class Jpeg2000Lossless(Jpeg2000):
    name = "jpeg2000-lossless"
    lossless = True
    quality_meaning = "none (reversible 5/3 wavelet, lossless)"

    def default_qualities(self) -> list[Any]:
        return ["lossless"]

    def settings(self) -> dict[str, Any]:
        return dict(super().settings(), wavelet="5/3 reversible", quality=self.quality_meaning)

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 3)
        return self._encode(x, reversible=True)


class Htj2k(Codec):
    name = "htj2k"
    quality_meaning = "OpenJPH quantisation step (fraction of the 16-bit range; smaller = better)"

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing("HTJ2K")

    def default_qualities(self) -> list[Any]:
        return [0.016, 0.008, 0.004, 0.002, 0.001, 0.0005, 0.00025, 0.000125]

    def settings(self) -> dict[str, Any]:
        ic = _imagecodecs()
        return {"library": f"OpenJPH {ic.htj2k_version()} via imagecodecs {ic.__version__}",
                "format": "J2C codestream (HT block coder), all bands as components",
                "wavelet": "9/7 irreversible", "resolutions": "min(6, log2(min(H,W))+1)",
                "bit_depth": 16, "quality": self.quality_meaning, "threads": "1 (OpenJPH)"}

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 3)
        ic = _imagecodecs()
        return bytes(ic.htj2k_encode(x, level=float(quality), planar=True, reversible=False,
                                     resolutions=_resolutions(*x.shape[1:])))

    def decode(self, data: bytes) -> np.ndarray:
        ic = _imagecodecs()
        try:
            y = ic.htj2k_decode(data, planar=True)
        except Exception as exc:
            raise _decode_error(self.name, exc) from None
        return np.ascontiguousarray(y.reshape((-1,) + y.shape[-2:]), dtype=np.uint16)


class JpegXl(Codec):
    name = "jpegxl"
    quality_meaning = "libjxl Butteraugli distance per band (smaller = better)"
    effort = 7

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing("JPEGXL")

    def default_qualities(self) -> list[Any]:
        return [8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.1]

    def settings(self) -> dict[str, Any]:
        ic = _imagecodecs()
        return {"library": f"libjxl {ic.jpegxl_version()} via imagecodecs {ic.__version__}",
                "format": "one 16-bit grey JPEG XL codestream per band (VarDCT)",
                "effort": self.effort, "quality": self.quality_meaning, "threads": self.threads}

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 3)
        ic = _imagecodecs()
        parts = [bytes(ic.jpegxl_encode(band, distance=float(quality), effort=self.effort,
                                        numthreads=self.threads)) for band in x]
        return pack_parts(x.shape, parts)

    def decode(self, data: bytes) -> np.ndarray:
        ic = _imagecodecs()
        shape, _, parts = unpack_parts(data)
        if len(shape) != 3 or len(parts) != shape[0]:
            raise CorruptStreamError("corrupt jpegxl stream: part count does not match the bands")
        out = np.empty(shape, np.uint16)
        for c, part in enumerate(parts):
            try:
                out[c] = ic.jpegxl_decode(part, numthreads=self.threads)
            except Exception as exc:
                raise _decode_error(self.name, exc) from None
        return out

    def payload_bytes(self, data: bytes) -> int:
        return payload_of_parts(data)


class _TripletCodec(Codec):
    """Band triplets as RGB images after per-band linear scaling to `bits`."""

    bits = 8

    def _encode_rgb(self, rgb: np.ndarray, quality: Any) -> bytes:
        raise NotImplementedError

    def _decode_rgb(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 3)
        ranges = band_ranges(x)
        codes = to_codes(x, ranges, self.bits, band_axis=0)
        parts = [self._encode_rgb(np.ascontiguousarray(np.moveaxis(codes[g], 0, -1)), quality)
                 for g in triplets(x.shape[0])]
        return pack_parts(x.shape, parts, side=ranges.astype("<u2").tobytes())

    def decode(self, data: bytes) -> np.ndarray:
        shape, side, parts = unpack_parts(data)
        groups = triplets(shape[0]) if len(shape) == 3 else []
        if len(shape) != 3 or len(parts) != len(groups) or len(side) != 4 * shape[0]:
            raise CorruptStreamError(f"corrupt {self.name} stream: frame does not match its bands")
        ranges = np.frombuffer(side, "<u2").reshape(-1, 2)
        codes = np.empty(shape, np.uint16)
        for g, part in zip(groups, parts):
            try:
                rgb = self._decode_rgb(part)
            except Exception as exc:
                raise _decode_error(self.name, exc) from None
            if rgb.shape != (shape[1], shape[2], 3):
                raise CorruptStreamError(f"corrupt {self.name} stream: image size {rgb.shape}")
            for k, c in enumerate(g):
                codes[c] = rgb[..., k]
        return from_codes(codes, ranges, self.bits, band_axis=0)

    def payload_bytes(self, data: bytes) -> int:
        return payload_of_parts(data)


class Webp(_TripletCodec):
    name = "webp"
    bits = 8
    quality_meaning = "libwebp lossy quality 0-100"
    method = 4

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing("WEBP")

    def default_qualities(self) -> list[Any]:
        return [5, 20, 40, 60, 75, 90, 100]

    def settings(self) -> dict[str, Any]:
        ic = _imagecodecs()
        return {"library": f"libwebp {ic.webp_version()} via imagecodecs {ic.__version__}",
                "format": "band triplets as 8-bit RGB (lossy WebP codes YUV 4:2:0)",
                "scaling": "per band [min, max] -> 0..255, range stored", "method": self.method,
                "quality": self.quality_meaning}

    def _encode_rgb(self, rgb: np.ndarray, quality: Any) -> bytes:
        return bytes(_imagecodecs().webp_encode(rgb, level=float(quality), lossless=False,
                                                method=self.method))

    def _decode_rgb(self, data: bytes) -> np.ndarray:
        return _imagecodecs().webp_decode(data, hasalpha=False)


class Avif(_TripletCodec):
    name = "avif"
    bits = 12
    quality_meaning = "libavif quality 0-100 (AV1 intra, libaom)"
    speed = 6

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing("AVIF")

    def default_qualities(self) -> list[Any]:
        return [20, 40, 55, 70, 80, 88, 94]

    def settings(self) -> dict[str, Any]:
        ic = _imagecodecs()
        return {"library": f"{ic.avif_version()} with libaom via imagecodecs {ic.__version__}",
                "format": "band triplets as 12-bit RGB, YUV 4:4:4 (BT.601 matrix)",
                "scaling": "per band [min, max] -> 0..4095, range stored", "speed": self.speed,
                "quality": self.quality_meaning, "threads": self.threads}

    def _encode_rgb(self, rgb: np.ndarray, quality: Any) -> bytes:
        ic = _imagecodecs()
        return bytes(ic.avif_encode(rgb, level=int(quality), speed=self.speed, bitspersample=12,
                                    pixelformat=ic.AVIF.PIXEL_FORMAT.YUV444,
                                    codec=ic.AVIF.CODEC_CHOICE.AOM, numthreads=self.threads))

    def _decode_rgb(self, data: bytes) -> np.ndarray:
        return _imagecodecs().avif_decode(data, numthreads=self.threads)


class Zstd(Codec):
    name = "zstd"
    lossless = True
    quality_meaning = "zstd compression level (always lossless)"

    @classmethod
    def unavailable(cls) -> str | None:
        return _missing("ZSTD")

    def default_qualities(self) -> list[Any]:
        return [9]

    def settings(self) -> dict[str, Any]:
        ic = _imagecodecs()
        return {"library": f"zstd {ic.zstd_version()} via imagecodecs {ic.__version__}",
                "format": "raw little-endian uint16, band-sequential, no filter",
                "quality": self.quality_meaning}

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        x = check_uint16(x, 3)
        raw = x.astype("<u2", copy=False).tobytes()
        return pack_parts(x.shape, [bytes(_imagecodecs().zstd_encode(raw, level=int(quality)))])

    def decode(self, data: bytes) -> np.ndarray:
        shape, _, parts = unpack_parts(data)
        if len(parts) != 1:
            raise CorruptStreamError("corrupt zstd stream: expected one part")
        try:
            raw = _imagecodecs().zstd_decode(parts[0])
        except Exception as exc:
            raise _decode_error(self.name, exc) from None
        if len(raw) != 2 * int(np.prod(shape)):
            raise CorruptStreamError("corrupt zstd stream: size does not match the shape")
        return np.frombuffer(raw, "<u2").reshape(shape).astype(np.uint16)

    def payload_bytes(self, data: bytes) -> int:
        return payload_of_parts(data)


CLASSICAL_IMAGE_CODECS: tuple[type[Codec], ...] = (
    Jpeg2000, Jpeg2000Lossless, Htj2k, JpegXl, Webp, Avif, Zstd,
)

__all__ = [c.__name__ for c in CLASSICAL_IMAGE_CODECS] + ["CLASSICAL_IMAGE_CODECS"]
