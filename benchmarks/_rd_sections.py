"""The fixed sections of benchmarks/RESULTS.md: how rate-distortion is measured, and every
codec's exact settings (written by rd_benchmark.py)."""

from __future__ import annotations

from typing import Any


def method_section(memory_method: str) -> list[str]:
    return [
        "## Method",
        "",
        "* **Rate**: bits per pixel per band (bpppb) = total bytes x 8 / (T x C x H x W) over the whole"
        " set, counting every byte a decoder needs (the `.tec` container for terracodec models, our"
        " small frame of shape, per-band value ranges and part lengths for codecs that need several"
        " library streams); *payload bpppb* counts only the codecs' own streams.",
        "* **PSNR-10k / PSNR-65k**: 10 log10(peak^2 / MSE) on raw DN (no offset removal, no"
        " clipping), peak 10000 and 65535; per frame (one date, all bands), averaged over frames."
        " Per-band PSNR-10k is in points.csv.",
        "* **MS-SSIM**: 5 scales, 11x11 Gaussian window (sigma 1.5), weights (0.0448, 0.2856, 0.3001,"
        " 0.2363, 0.1333), K1 = 0.01, K2 = 0.03, data range **10000 DN**, each band as a grey image,"
        " averaged over bands; images below 161 px a side use fewer scales (renormalised weights)."
        " Matches pytorch-msssim to 1e-6. Plotted and used for BD-rate as -10 log10(1 - MS-SSIM).",
        "* **SAM**: mean spectral angle between original and decoded pixel spectra, in **degrees**.",
        "* **BD-rate / BD-PSNR**: Bjontegaard (VCEG-M33): cubic fit of ln(rate) against PSNR-10k"
        " (BD-rate) or of PSNR-10k against ln(rate) (BD-PSNR), integrated over the overlapping"
        " range; curves with fewer than 4 points use a lower degree, 1 point gives `nan`.",
        "* **Speed**: pixel positions (T x H x W, all bands together) per second of wall time, encode"
        " and decode timed separately around the codec calls, after an untimed warm-up per quality."
        f" **Memory**: peak resident memory above the level before each call ({memory_method}), the"
        " largest over the samples.",
        "* Inputs are uint16 DN; 20 m / 60 m OSCD bands are resampled to 10 m (bilinear) first."
        " OSCD is Level-1C (top of atmosphere, B10 cirrus included in `oscd13`).",
        "",
    ]


def codec_section(results: dict[str, dict[str, Any]], classical: dict[str, Any],
                   unavailable: dict[str, str]) -> list[str]:
    settings: dict[str, dict[str, Any]] = {}
    for res in results.values():
        for name, c in res["codecs"].items():
            settings.setdefault(name, c)
    lines = ["## Codecs and their exact settings", "", "| codec | settings |", "|---|---|"]
    for name, c in settings.items():
        s = ", ".join(f"{k}: {v}" for k, v in c["settings"].items())
        lines.append(f"| {name} | {s}; sweep {c['qualities']} |")
    lines += [
        "",
        "Notes on multi-band handling (the codecs are built for 1-4 channel pictures):",
        "",
        "* **JPEG2000** codes all bands as components of one codestream (no multi-component"
        " transform, which is defined for 3 components only). The binding exposes OpenJPEG's"
        " fixed-quality mode, so the sweep sets PSNR targets (against the 16-bit peak), not rates.",
        "* **JPEG XL**: this imagecodecs build codes extra channels only losslessly (grey + 12"
        " extra channels came out at 6.2 bpppb at distance 1 on an OSCD scene), so every band is"
        " its own 16-bit grey codestream.",
        "* **WebP** is 8-bit only and lossy WebP is always YUV 4:2:0: each band is scaled from its"
        " [min, max] to 0..255 (PSNR-10k then cannot exceed ~55-60 dB on typical scenes) and two"
        " bands of every triplet are coded at half resolution; its curve flattens early for that"
        " reason, not because of its transform.",
        "* **AVIF** (libaom via libavif) and **HEVC** (x265) take 12 bits and 4:4:4, so triplets"
        " keep full resolution; per-band [min, max] scaling to 12 bits loses < 0.01 dB.",
        "* **AV1 video**: PyAV's wheel has SVT-AV1 (4:2:0 only) but not libaom or rav1e, so each"
        " band is a 10-bit luma-only video.",
        "* **terracodec models** are coded through `terracodec.api` on arrays, container included,"
        " at every registered quality (the variable-rate TEC-FP models: one weights file, one gain"
        " vector per quality). Image models code each date on its own; temporal models (TEC-TT) code"
        " each date from the previous two. The untrained `tec-fp-tiny` (seeded weights, for testing"
        " the pipeline) runs only with `--full`: its points say nothing about the method.",
        "",
    ]
    if unavailable:
        lines.append("Codecs that cannot run here:")
        lines += [f"* {n}: {why}" for n, why in unavailable.items()]
    else:
        lines.append(f"Every classical codec listed ({', '.join(classical)}) runs here.")
    lines += [
        "",
        "Not benchmarked: HEIF/HEIC (imagecodecs built without libheif), JPEG XS (no encoder in"
        " imagecodecs), libaom-av1 / rav1e video (not in PyAV's FFmpeg build), VVC (no binding).",
        "",
    ]
    return lines
