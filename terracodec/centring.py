"""Per-frame band centring: each band's mean is moved to where the model's training data lay.

Why: a learned transform codes the spectra it was trained on. Level-2A reflectances have another
mean spectrum than Level-1C (no path radiance: blue and coastal bands hundreds of DN lower, B09
different), and a model trained on one level reconstructs the other with per-band offsets of
100-1000 DN, which alone capped L2A quality near 32 dB (benchmarks/transform_floor.py). A model
whose config has a `centre` (normalised units per band, `tec train --centre`) gets every frame
with each band's valid-pixel mean moved onto it; the shift, in whole DN per band, is stored in
the frame's header (`band_shift`, format major 6) and added back by the decoder's
normalisation. The shift is a stored number, not recomputed on decoding: decoding stays exact.

    frame DN --valid-pixel band means--> shift_b = round(mean_b - (mu_b + centre_b * sigma_b))
    normalise with means mu_b + shift_b  ==  centred frame  -> model -> denormalise (same means)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from terracodec.io.inputs import valid_mask
from terracodec.normalization import Normalization

#: Rows read at a time while summing a frame (bounded memory for whole Sentinel-2 tiles).
_STRIP_ROWS = 512
#: Every STRIDE-th pixel of every STRIDE-th row enters the mean: a statistic, not a bound on
#: quality (the exact value used is stored), so a sample is enough.
_STRIDE = 2


def model_centre(codec: Any) -> list[float] | None:
    """The model's centre (normalised units per band), or None for a model coded uncentred."""
    centre = getattr(codec, "config", {}).get("centre")
    if centre is None:
        return None
    values = [float(v) for v in centre]
    if len(values) != int(codec.bands) or not all(np.isfinite(values)):
        return None
    return values


def min_present_bands(codec: Any) -> int | None:
    """How many of its bands a frame must have for this model (None: all of them). A centred
    image model was trained with absent bands left out (`tec train --centre MIN_BANDS`): it codes
    a frame that lacks some, with the absent bands held at the centre and not decoded."""
    if model_centre(codec) is None:  # centred models: image codecs and TEC-TT on their transforms
        return None
    least = codec.config.get("min_bands")
    return int(least) if isinstance(least, int) and 0 < least <= int(codec.bands) else None


def absent_fill(norm: Normalization, centre: Sequence[float], band: int) -> float:
    """The DN an absent band is coded as: its centre under the frame's normalisation."""
    return norm.mean[band] + centre[band] * norm.std[band]


def frame_band_shift(stack: Any, frame: int, band_order: Sequence[int], norm: Normalization,
                     centre: Sequence[float], valid_range: tuple[float, float],
                     nodata: float | None, dn_scale: float, clear: np.ndarray | None = None) -> list[float]:
    """Whole-DN shift per model band that moves frame `frame`'s valid-pixel band means onto
    `centre` under `norm` (the frame's normalisation before centring, in DN); 0 for a band
    without valid pixels. `clear` (`[H, W]` bool): only those pixels count (cloud-aware coding
    leaves clouds out, whose brightness would shift the clear ground)."""
    height, width = stack.grid.height, stack.grid.width
    total = np.zeros(len(band_order), np.float64)
    seen = np.zeros(len(band_order), np.float64)
    present = [k for k, j in enumerate(band_order) if j >= 0]
    file_bands = [band_order[k] for k in present]
    for top in range(0, height, _STRIP_ROWS):
        rows = min(_STRIP_ROWS, height - top)
        strip = np.asarray(stack.read(frame, top, 0, rows, width))[file_bands, ::_STRIDE, ::_STRIDE]
        values = strip.astype(np.float64)
        valid = valid_mask(values, nodata, valid_range)
        if clear is not None:
            valid &= clear[top:top + rows, :width][None, ::_STRIDE, ::_STRIDE]
        total[present] += np.where(valid, values, 0.0).sum(axis=(1, 2))
        seen[present] += valid.sum(axis=(1, 2))
    shifts = []
    for b in range(len(band_order)):
        if seen[b] == 0:
            shifts.append(0.0)
            continue
        mean_dn = total[b] / seen[b] * dn_scale
        target = norm.mean[b] + centre[b] * norm.std[b]
        shifts.append(float(np.rint(mean_dn - target)))
    return shifts


__all__ = ["absent_fill", "frame_band_shift", "min_present_bands", "model_centre"]
