"""Are a frame's values what the model codes? Sentinel-2 DN, reflectance, or something else.

Models with Sentinel-2 normalisations (SSL4EO-S12 statistics) code DN: reflectance x 10000,
typically 0..10000 (+1000 with the baseline offset). Data users have also comes as float
reflectance 0..1, or as 8-bit renderings; coded as if they were DN, they land where the model
has never seen data and come back as noise (measured: eo-learn float32 scenes decoded with a
correlation of 0.009 to the input). So the encoder looks at a few thin strips of each frame:

* float values whose 99.9th percentile of magnitude is at most `REFLECTANCE_MAX` are
  reflectance: the frame is coded as DN = 10000 x value (`dn_scale` 10000 in the header, folded
  into the normalisation like `dn_offset`), and decoding gives back values in 0..1;
* values whose 99.9th percentile (as DN) stays below `MIN_DN_PEAK` cannot be Sentinel-2 DN of
  any real scene (8-bit data, other units): refused with one line, unless the caller states the
  factor to DN (`scale=`, `tec encode --scale`).

Other normalisations (identity, custom, S1) are left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from terracodec.errors import InputError
from terracodec.io.baseline import strip_rows

#: Float data up to this magnitude is reflectance (0..1; bright clouds and snow reach ~1.5).
REFLECTANCE_MAX = 2.0
#: Factor from reflectance to Sentinel-2 DN (the products' QUANTIFICATION_VALUE).
REFLECTANCE_TO_DN = 10000.0
#: Below this 99.9th percentile a frame cannot be Sentinel-2 DN (even open water's blue band
#: is hundreds of DN; a whole scene never peaks under 256).
MIN_DN_PEAK = 256.0
#: Strips sampled per frame, rows each.
SAMPLE_STRIPS, SAMPLE_ROWS = 8, 2


def codes_s2_dn(normalization_name: str) -> bool:
    """Whether a normalisation is Sentinel-2 DN statistics (SSL4EO-S12)."""
    return normalization_name.startswith("ssl4eo-s12")


def valid_mask(values: np.ndarray, nodata: float | None, valid_range: tuple[float, float]) -> np.ndarray:
    """Where `values` are what the lossy path codes: finite, in `valid_range`, not nodata."""
    keep = np.isfinite(values) & (values >= valid_range[0]) & (values <= valid_range[1])
    if nodata is not None and not np.isnan(nodata):
        keep &= values != nodata
    return keep


def sample_valid(stack: Any, frame: int, nodata: float | None, valid_range: tuple[float, float]) -> np.ndarray:
    """float64 values of a few strips of a frame that the lossy path codes (`valid_mask`), all
    bands together."""
    parts = []
    for row_off, rows in strip_rows(stack.grid.height, SAMPLE_STRIPS, SAMPLE_ROWS):
        strip = np.asarray(stack.read(frame, row_off, 0, rows, stack.grid.width), np.float64)
        parts.append(strip[valid_mask(strip, nodata, valid_range)])
    return np.concatenate(parts) if parts else np.zeros(0)


def frame_scale(stack: Any, frame: int, normalization_name: str, valid_range: tuple[float, float],
                requested: str | float, model_name: str) -> float:
    """The factor from a frame's values to the model's DN (`dn_scale`): `requested` when the
    caller gave one, else 10000 for reflectance, else 1; InputError for data that is not DN."""
    if requested != "auto":
        return float(requested)
    if not codes_s2_dn(normalization_name):
        return 1.0
    meta = stack.frames[frame]
    values = sample_valid(stack, frame, meta.nodata, valid_range)
    if values.size == 0:
        return 1.0
    peak = float(np.percentile(np.abs(values), 99.9))
    scale = 1.0
    if np.dtype(stack.grid.dtype).kind == "f" and 0 < peak <= REFLECTANCE_MAX:
        scale = REFLECTANCE_TO_DN
    if peak * scale < MIN_DN_PEAK:
        raise InputError(
            f"{meta.name}: values reach only {peak:.4g} (99.9th percentile); model {model_name} codes "
            f"Sentinel-2 DN (reflectance x 10000, typically 0..10000) and would return such data as "
            "noise. Give DN, or the factor from these values to DN with --scale (scale=)"
        )
    return scale


__all__ = ["MIN_DN_PEAK", "REFLECTANCE_MAX", "REFLECTANCE_TO_DN", "codes_s2_dn", "frame_scale", "sample_valid"]
