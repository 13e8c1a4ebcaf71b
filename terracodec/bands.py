"""Sentinel-2 band names, and matching a file's bands to a model's bands.

Files name their bands inconsistently ("B1", "b01", "B8A", "B08"), or not at all. A model wants
its bands in one fixed order. Matching by name where every band carries a name is the only way
to be safe against files that store bands in another order (EuroSAT puts B8A last); files
without names fall back to position, and anything ambiguous is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from terracodec.errors import InputError

#: Sentinel-2 L1C bands in the SSL4EO-S12 / Sentinel Hub order (13 bands).
S2_L1C_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
#: Sentinel-2 L2A bands (no cirrus B10), same order (12 bands).
S2_L2A_BANDS: tuple[str, ...] = tuple(b for b in S2_L1C_BANDS if b != "B10")

_S2_NAME = re.compile(r"^\s*B0*(\d{1,2})(A?)\s*$", re.IGNORECASE)


def normalize_band_name(name: str | None) -> str | None:
    """Canonical S2 name ("B1" -> "B01", "b8a" -> "B8A"), or None when `name` is not one."""
    if not name:
        return None
    m = _S2_NAME.match(name)
    if m is None:
        return None
    number, a_suffix = int(m.group(1)), m.group(2).upper()
    if a_suffix:
        return "B8A" if number == 8 else None
    if not 1 <= number <= 12:
        return None
    return f"B{number:02d}"


def default_band_names(count: int) -> tuple[str, ...] | None:
    """The S2 band names a model with `count` bands is assumed to take when it names none."""
    if count == len(S2_L1C_BANDS):
        return S2_L1C_BANDS
    if count == len(S2_L2A_BANDS):
        return S2_L2A_BANDS
    return None


#: A band the frame lacks (`match_bands(..., min_present=...)`): the model codes a constant there.
ABSENT = -1


def match_bands(
    file_bands: Sequence[str | None], model_bands: Sequence[str] | None, model_count: int,
    min_present: int | None = None,
) -> list[int]:
    """Indices into the file's bands, one per model band, in the model's order.

    Name matching is used when every file band has an S2 name (after normalisation) and the
    model names its bands; otherwise bands are taken by position, which needs equal counts.
    Every file band must be used: an extra band would be silently dropped, so it is refused.
    A model trained on band subsets (`min_present`, `terracodec.centring`) takes named files
    that lack some of its bands when at least `min_present` are there: `ABSENT` marks the rest.
    """
    names = [normalize_band_name(b) for b in file_bands]
    if model_bands is not None and len(names) > 0 and all(n is not None for n in names):
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InputError(f"input names a band more than once: {', '.join(dupes)}")
        wanted = [normalize_band_name(b) or b for b in model_bands]
        missing = [b for b in wanted if b not in names]
        extra = [n for n in names if n not in wanted]
        if extra:
            raise InputError(
                f"input has bands the model does not code: {', '.join(extra)} "
                f"(model bands: {', '.join(wanted)}"
                + (f"; input lacks {', '.join(missing)})" if missing else ")")
            )
        if missing and min_present is not None and len(wanted) - len(missing) >= min_present:
            return [names.index(b) if b in names else ABSENT for b in wanted]
        if missing:
            if min_present is not None:
                raise InputError(
                    f"model needs at least {min_present} of the bands {', '.join(wanted)}; input has "
                    f"{len(wanted) - len(missing)} of them (lacks {', '.join(missing)})"
                )
            raise InputError(
                f"model needs bands {', '.join(wanted)}; input lacks {', '.join(missing)}"
            )
        return [names.index(b) for b in wanted]
    if len(file_bands) != model_count:
        raise InputError(
            f"input has {len(file_bands)} bands without S2 band names; "
            f"the model needs {model_count} bands"
        )
    return list(range(model_count))
