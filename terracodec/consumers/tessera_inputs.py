"""A decoded Sentinel-2 series (and optional Sentinel-1 rasters) -> TESSERA v1's per-pixel inputs.

TESSERA was trained on its own preprocessing (`tessera` pipeline / `dpixel`), so the inputs are
rebuilt the way that preprocessing leaves them before its dataset reads them:

* S2: the 10 bands in TESSERA's order, DN without the +1000 offset of processing baseline 04.00
  (TESSERA removes it where a value is >= 1000 on dates after 2022-01-25, unless the caller
  says per frame), missing values as 0, then standardised with TESSERA's statistics. An
  observation is valid when all 10 bands hold data (finite, not nodata) and the caller's mask
  (clouds, e.g. from SCL) allows it; a pixel with no data in any frame gets no embedding (zeros),
  as the public tile writer leaves the pixels its dataset skips.
* S1: TESSERA's unit is `(20 log10(x) + 50) * 200` of Planetary Computer's RTC backscatter `x`,
  which is linear power, so `(2 dB + 50) * 200`, clipped to [0, 32767] and truncated as int16
  (its published means 5484 / 3004 are -11.3 dB VV, -17.5 dB VH). An observation is valid when
  either band is nonzero, the public sampler's test. Backscatter below -25 dB clips to 0 there.
* Day of year (1-366) from each frame's UTC date.

Without S1 the public dataset feeds one all-zero observation at day 180 per missing orbit
direction (`tessera.absent_s1`); `embed_grid` does the same, so an S2-only series embeds exactly
as the public code embeds a tile whose SAR files are empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Sequence

import numpy as np

from terracodec.bands import normalize_band_name
from terracodec.consumers.tessera import (
    S1_MEAN, S1_STD, S2_BANDS, S2_MEAN, S2_STD, PixelSeries, TesseraV1, embed_pixels, standardise,
)
from terracodec.errors import InputError
from terracodec.presets import BASELINE_OFFSET

#: TESSERA's rule for the +1000 DN offset: frames dated after this day carry it.
OFFSET_AFTER = date(2022, 1, 25)
#: Units `s1_series` converts from: backscatter in dB, linear power, or TESSERA's own unit.
S1_UNITS = ("db", "linear", "tessera")


@dataclass(frozen=True)
class TesseraInputs:
    """Everything `embed_grid` needs for an H x W grid; pixels in row-major order."""

    s2: PixelSeries
    s1_asc: PixelSeries | None
    s1_desc: PixelSeries | None
    present: np.ndarray  # [H * W] bool: the pixel has S2 data in some frame
    shape: tuple[int, int]


def _utc_date(stamp: str) -> date:
    """The UTC calendar date of an ISO 8601 timestamp; naive ones are taken as UTC."""
    moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.date()


def day_of_year(timestamps: Sequence[str | None], what: str = "S2") -> np.ndarray:
    """[T] int32 day of year (1-366) of each frame; InputError naming a frame without a date."""
    out = []
    for i, stamp in enumerate(timestamps):
        if not stamp or not isinstance(stamp, str):
            raise InputError(f"{what} frame {i} has no timestamp: TESSERA needs each frame's day of year")
        try:
            out.append(_utc_date(stamp).timetuple().tm_yday)
        except ValueError:
            raise InputError(f"{what} frame {i} has an unreadable timestamp {stamp!r}") from None
    return np.array(out, np.int32)


def band_indices(bands: Sequence[str | None]) -> list[int]:
    """Index of each TESSERA band in `bands` (codec names such as "B2", "B8A"); other bands are
    ignored. InputError naming every band the series lacks."""
    names = [normalize_band_name(b) if b else None for b in bands]
    doubled = sorted({n for n in names if n in S2_BANDS and names.count(n) > 1})
    if doubled:
        raise InputError(f"the S2 series names {', '.join(doubled)} more than once")
    missing = [b for b in S2_BANDS if b not in names]
    if missing:
        raise InputError(f"the S2 series lacks {', '.join(missing)} (TESSERA needs {', '.join(S2_BANDS)})")
    return [names.index(b) for b in S2_BANDS]


def _offset_frames(dates: Sequence[str], has_offset: bool | Sequence[bool | None] | None) -> np.ndarray:
    """[T] bool: frames whose DN carry the +1000 offset (None: TESSERA's date rule)."""
    per_frame = [has_offset] * len(dates) if has_offset is None or isinstance(has_offset, bool) else list(has_offset)
    if len(per_frame) != len(dates):
        raise InputError(f"has_offset has {len(per_frame)} entries for {len(dates)} frames")
    return np.array([bool(o) if o is not None else _utc_date(d) > OFFSET_AFTER for o, d in zip(per_frame, dates)])


def _pixels(array: np.ndarray) -> np.ndarray:
    """[T, C, H, W] -> [H * W, T, C]: one row of observations per pixel, row-major."""
    t, c, h, w = array.shape
    return np.ascontiguousarray(array.transpose(2, 3, 0, 1).reshape(h * w, t, c))


def _check_series(series: np.ndarray, timestamps: Sequence[str | None], what: str) -> np.ndarray:
    array = np.asarray(series)
    if array.ndim != 4:
        raise InputError(f"the {what} series must be [T, C, H, W], got shape {array.shape}")
    if len(timestamps) != array.shape[0]:
        raise InputError(f"the {what} series has {array.shape[0]} frames but {len(timestamps)} timestamps")
    return array


def s2_series(series: np.ndarray, bands: Sequence[str | None], timestamps: Sequence[str | None], *,
              nodata: float | None = 0, valid: np.ndarray | None = None,
              has_offset: bool | Sequence[bool | None] | None = None) -> tuple[PixelSeries, np.ndarray]:
    """(S2 `PixelSeries` of H * W pixels, `present` [H * W]) from a decoded [T, C, H, W] DN series.

    `valid` [T, H, W] (optional) marks usable observations (e.g. clear SCL classes); `has_offset`
    says per frame (or for all) whether DN carry the +1000 offset, None: TESSERA's date rule."""
    array = _check_series(series, timestamps, "S2")
    doy = day_of_year(timestamps, "S2")
    dn = array[:, band_indices(bands)].astype(np.float32)
    ok = np.isfinite(dn)
    if nodata is not None and not np.isnan(nodata):
        ok &= dn != np.float32(nodata)
    dn[~ok] = 0.0
    shifted = _offset_frames(timestamps, has_offset)
    if shifted.any():
        part = dn[shifted]
        dn[shifted] = np.where(part >= BASELINE_OFFSET, part - np.float32(BASELINE_OFFSET), part)
    observed = ok.all(axis=1)
    if valid is not None:
        mask = np.asarray(valid)
        if mask.shape != observed.shape:
            raise InputError(f"the S2 validity mask is {mask.shape}, the series {observed.shape}")
        observed &= mask.astype(bool)
    present = (ok & (dn != 0)).any(axis=(0, 1)).reshape(-1)
    t, _, h, w = dn.shape
    values = standardise(_pixels(dn), S2_MEAN, S2_STD)
    return PixelSeries(values, doy, observed.transpose(1, 2, 0).reshape(h * w, t)), present


def tessera_sar(series: np.ndarray, units: str = "db", nodata: float | None = None) -> np.ndarray:
    """Backscatter (any shape) in TESSERA's unit, float32 holding whole numbers; missing -> 0."""
    if units not in S1_UNITS:
        raise InputError(f"S1 units must be one of {', '.join(S1_UNITS)}, not {units!r}")
    x = np.asarray(series, np.float64)
    ok = np.isfinite(x)
    if nodata is not None and not np.isnan(nodata):
        ok &= x != nodata
    if units == "tessera":
        return np.where(ok, x, 0.0).astype(np.float32)
    if units == "linear":
        ok &= x > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            twenty_log = 20.0 * np.log10(np.where(ok, x, 1.0))
    else:
        twenty_log = 2.0 * np.where(ok, x, 0.0)
    scaled = np.trunc(np.clip((twenty_log + 50.0) * 200.0, 0, 32767))
    return np.where(ok, scaled, 0.0).astype(np.float32)


def s1_series(series: np.ndarray, timestamps: Sequence[str | None], shape: tuple[int, int], *,
              units: str = "db", nodata: float | None = None, what: str = "S1") -> PixelSeries:
    """S1 `PixelSeries` from [T1, 2, H, W] VV, VH on the S2 grid (`shape` = S2's H, W)."""
    array = _check_series(series, timestamps, what)
    if array.shape[1] != 2:
        raise InputError(f"the {what} series must hold 2 bands (VV, VH), got {array.shape[1]}")
    if tuple(array.shape[2:]) != tuple(shape):
        raise InputError(f"the {what} grid {array.shape[2]}x{array.shape[3]} differs from the S2 grid "
                         f"{shape[0]}x{shape[1]}: resample it onto the S2 grid first")
    doy = day_of_year(timestamps, what)
    sar = _pixels(tessera_sar(array, units, nodata))
    return PixelSeries(standardise(sar, S1_MEAN, S1_STD), doy, (sar != 0).any(axis=2))


def tessera_inputs(s2: np.ndarray, bands: Sequence[str | None], timestamps: Sequence[str | None], *,
                   nodata: float | None = 0, valid: np.ndarray | None = None,
                   has_offset: bool | Sequence[bool | None] | None = None,
                   s1_asc: tuple[np.ndarray, Sequence[str | None]] | None = None,
                   s1_desc: tuple[np.ndarray, Sequence[str | None]] | None = None,
                   s1_units: str = "db", s1_nodata: float | None = None) -> TesseraInputs:
    """`TesseraInputs` from a decoded S2 series and optional S1 (array, timestamps) per direction."""
    s2_px, present = s2_series(s2, bands, timestamps, nodata=nodata, valid=valid, has_offset=has_offset)
    shape = (int(np.shape(s2)[2]), int(np.shape(s2)[3]))
    sar = {}
    for name, given in (("S1 ascending", s1_asc), ("S1 descending", s1_desc)):
        sar[name] = None if given is None else s1_series(given[0], given[1], shape, units=s1_units,
                                                          nodata=s1_nodata, what=name)
    return TesseraInputs(s2_px, sar["S1 ascending"], sar["S1 descending"], present, shape)


def _subset(series: PixelSeries | None, keep: np.ndarray) -> PixelSeries | None:
    if series is None:
        return None
    doy = np.asarray(series.doy)
    return PixelSeries(np.asarray(series.values)[keep], doy if doy.ndim == 1 else doy[keep],
                       np.asarray(series.valid)[keep])


def embed_grid(model: TesseraV1, inputs: TesseraInputs, *, seed: int = 0, repeats: int = 1,
               batch_size: int = 1024) -> np.ndarray:
    """[H, W, latent] float32 embeddings; pixels without S2 data are zeros. Pixels are drawn in
    row-major order over the present ones, as the public `process_tile` does, so
    `np.random.seed(seed)` there (same `batch_size`, `repeat_times`) reproduces this exactly."""
    keep = np.asarray(inputs.present, bool)
    out = np.zeros((keep.size, model.config.latent), np.float32)
    out[keep] = embed_pixels(model, _subset(inputs.s2, keep), _subset(inputs.s1_asc, keep),
                             _subset(inputs.s1_desc, keep), seed=seed, repeats=repeats, batch_size=batch_size)
    return out.reshape(*inputs.shape, -1)


__all__ = [
    "BASELINE_OFFSET", "OFFSET_AFTER", "S1_UNITS", "TesseraInputs", "band_indices", "day_of_year",
    "embed_grid", "s1_series", "s2_series", "tessera_inputs", "tessera_sar",
]
