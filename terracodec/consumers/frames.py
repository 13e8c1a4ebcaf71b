"""A stream's decoded frames as a foundation model reads them: named S2 bands in the model's order,
in reflectance, with the pixels that hold no data.

The codec knows which file band is which Sentinel-2 band (the stream's `band_names` through each
frame's `band_order`), and what its DN mean: a frame's values times `dn_scale` are DN, and DN
carry the +1000 baseline offset when the frame had it (processing baseline 04.00+; recorded as
the shift of the stream's normalisation, `terracodec.normalization.baseline_shift`). So
reflectance = (value x dn_scale - offset) / 10000, the same for every archive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from terracodec.errors import InputError
from terracodec.header import StreamHeader
from terracodec.normalization import BASELINE_OFFSET, NO_OFFSET_SUFFIX, WITH_OFFSET_NAMES

#: How decoded values become a model's input: reflectance (DN / 10000) or raw DN.
NORMALIZATIONS = ("reflectance", "dn")


def level_of(header: StreamHeader) -> str | None:
    """"l1c" or "l2a" from the stream's normalisation, or None when it does not say."""
    name = str(header.normalization.get("name", "")).lower()
    for level in ("l1c", "l2a"):
        if level in name:
            return level
    return None


def frame_offset(header: StreamHeader, frame: int) -> float:
    """DN the frame's values carry above reflectance x 10000 (1000 or 0)."""
    name = str(header.normalization.get("name", ""))
    shift = header.frames[frame].dn_offset
    if name.endswith(NO_OFFSET_SUFFIX):
        return BASELINE_OFFSET if shift == BASELINE_OFFSET else 0.0
    if any(name.startswith(n) for n in WITH_OFFSET_NAMES):
        return 0.0 if shift == -BASELINE_OFFSET else BASELINE_OFFSET
    return 0.0


def file_band_names(header: StreamHeader, frame: int) -> list[str | None]:
    """The S2 name of each band of the decoded frame (in the file's order), from the stream's
    model band names through the frame's `band_order`; None for a band the model does not name."""
    names = header.codec.band_names or []
    out: list[str | None] = [None] * header.grid.count
    for k, j in enumerate(header.frames[frame].band_order):
        if j >= 0 and k < len(names):  # -1: a model band the frame lacks (band-subset coding)
            out[j] = names[k]
    return out


def band_indices(header: StreamHeader, frame: int, wanted: tuple[str, ...], who: str) -> list[int]:
    """Indices (in the decoded frame) of the `wanted` S2 bands, or InputError naming the missing."""
    by_name = {n.upper(): j for j, n in enumerate(file_band_names(header, frame)) if n is not None}
    missing = [b for b in wanted if b.upper() not in by_name]
    if missing:
        raise InputError(f"{who} reads bands {', '.join(wanted)}; the stream lacks {', '.join(missing)}")
    return [by_name[b.upper()] for b in wanted]


def nodata_pixels(values: np.ndarray, nodata: float | None) -> np.ndarray:
    """[H, W] True where any band of `values` [C, H, W] is the frame's nodata (NaN included)."""
    if nodata is None:
        return np.zeros(values.shape[1:], bool)
    return np.isnan(values).any(0) if np.isnan(nodata) else (values == nodata).any(0)


@dataclass
class ModelInput:
    """One frame as a model reads it."""

    values: np.ndarray   # [C, H, W] float32 in the requested units
    nodata: np.ndarray   # [H, W] bool: True where any selected band is the frame's nodata


def frame_input(
    header: StreamHeader, frame: int, pixels: np.ndarray, wanted: tuple[str, ...], who: str,
    normalization: str = "reflectance",
) -> ModelInput:
    """Decoded `pixels` [C, H, W] of `frame` -> the `wanted` bands in `normalization` units."""
    if normalization not in NORMALIZATIONS:
        raise InputError(f"unknown normalization {normalization!r} (one of {', '.join(NORMALIZATIONS)})")
    picked = pixels[band_indices(header, frame, wanted, who)].astype(np.float64)
    nodata = nodata_pixels(picked, header.frames[frame].meta.nodata)
    dn = picked * header.frames[frame].dn_scale - frame_offset(header, frame)
    values = dn / 10000.0 if normalization == "reflectance" else dn
    values[:, nodata] = 0.0
    return ModelInput(values.astype(np.float32), nodata)


__all__ = ["ModelInput", "NORMALIZATIONS", "band_indices", "file_band_names", "frame_input", "frame_offset",
           "level_of", "nodata_pixels"]
