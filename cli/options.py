"""Parsing what `tec encode` and `tec archive` share: quality, baseline offset, scale, band
names; and JSON output that survives NaN."""

from __future__ import annotations

import math
from typing import Any

import click

from terracodec.api.args import DEFAULT_TILE_SIZE
from terracodec.errors import InputError


def parse_quality(text: str | None) -> Any:
    """`--quality` as the registry spells it: an int or float when it looks like one."""
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


#: `--baseline-offset` words -> `api.encode(baseline_offset=...)`.
_BASELINE_OFFSET = {"auto": "auto", "yes": True, "no": False}


def parse_baseline_offset(text: str) -> str | bool:
    try:
        return _BASELINE_OFFSET[text.strip().lower()]
    except KeyError:
        raise InputError(f"--baseline-offset must be auto, yes or no, got {text!r}") from None


def parse_scale(text: str) -> str | float:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--scale must be auto or a positive number, got {text!r}") from None
    if not 0 < value < math.inf:
        raise InputError(f"--scale must be auto or a positive number, got {text!r}")
    return value


def parse_names(text: str | None, what: str) -> list[str] | None:
    if text is None:
        return None
    names = [v.strip() for v in text.split(",")]
    if not all(names):
        raise InputError(f"{what} takes comma-separated names, got {text!r}")
    return names


def jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def coding_options(command: Any) -> Any:
    """The options of how inputs are coded (`tec encode`, `tec archive`): one definition."""
    for option in reversed(_CODING_OPTIONS):
        command = option(command)
    return command


def encode_keywords(bands_text: str | None, model: str | None, quality: str | None, weights: str | None,
                    tile_size: int, device: str | None, baseline_offset: str, scale_text: str) -> dict[str, Any]:
    """`coding_options`' values as `terracodec.encode` keywords."""
    return dict(model=model, quality=parse_quality(quality), weights=weights, tile_size=tile_size,
                device=device, baseline_offset=parse_baseline_offset(baseline_offset),
                scale=parse_scale(scale_text), band_names=parse_names(bands_text, "--bands"))


_CODING_OPTIONS = [
    click.option("--bands", "bands_text", default=None, metavar="B01,B02,...",
                  help="Names of the input's bands, by position (for files that do not name them)."),
    click.option("--model", default=None,
                  help="Model name (see `tec models`); default: the model --weights is (a TerraCodec "
                       "v1 .pt is recognised), else the shipped model that fits the input's product "
                       "level and bands (L1C 13 bands, L1C 12 bands, L2A 6-12 named bands)."),
    click.option("--quality", default=None, help="Quality level (see `tec models`); default: the model's."),
    click.option("--weights", type=click.Path(), default=None, help="Weights file replacing the model's."),
    click.option("--tile-size", default=DEFAULT_TILE_SIZE, show_default=True,
                  help="Tile side in pixels (at most 1024)."),
    click.option("--device", default=None, help="Torch device for the model (cpu, cuda, ...); default cpu."),
    click.option("--baseline-offset", "baseline_offset", default="auto", show_default=True,
                  metavar="[auto|yes|no]",
                  help="Do the inputs carry Sentinel-2's +1000 DN offset (processing baseline 04.00+, "
                       "2022 on)? auto: detect per frame (tags, B10 pixels, date); yes/no: force it. "
                       "The model's normalisation is shifted to match; decoded DN are unchanged."),
    click.option("--scale", "scale_text", default="auto", show_default=True, metavar="[auto|FACTOR]",
                  help="Factor from the input's values to Sentinel-2 DN. auto: float reflectance "
                       "(0..1) is coded as DN = 10000 x value and decoded back; data that cannot be "
                       "DN (8-bit) is refused."),
]




def int_list(text: str | None, what: str, count: int | None = None) -> list[int] | None:
    """Comma-separated integers (`what` names the option in errors); None for None."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise InputError(f"{what} must be comma-separated integers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise InputError(f"{what} needs {count} comma-separated integers, got {text!r}")
    return values


def parse_cloud_masks(items: tuple[str, ...]) -> dict[str, str] | str:
    """`--cloud-mask FRAME=PATH` items -> {FRAME: PATH} (FRAME resolved against the inputs later),
    or "auto" (`--cloud-mask auto`, alone)."""
    if "auto" in items:
        if len(items) > 1:
            raise InputError("--cloud-mask auto detects every frame's clouds: give no other --cloud-mask")
        return "auto"
    out: dict[str, str] = {}
    for item in items:
        frame, sep, path = item.partition("=")
        if not sep or not frame.strip() or not path:
            raise InputError(f"--cloud-mask needs FRAME=PATH (a frame index or input file name), got {item!r}")
        if frame.strip() in out:
            raise InputError(f"--cloud-mask names frame {frame.strip()!r} twice")
        out[frame.strip()] = path
    return out


def frames_of(inputs: tuple[str, ...], frame_groups: tuple[str, ...]) -> list:
    """Each INPUT is a frame; each --frame FILE,FILE,... is a frame of several files."""
    if inputs and frame_groups:
        raise InputError("give frames either as INPUTS or with --frame, not both")
    if frame_groups:
        return [[p for p in group.split(",") if p] for group in frame_groups]
    if not inputs:
        raise InputError("no input files given (INPUTS or --frame FILE,FILE,...)")
    return list(inputs)


__all__ = ["coding_options", "encode_keywords", "frames_of", "int_list", "jsonable", "parse_baseline_offset",
           "parse_cloud_masks", "parse_names",
           "parse_quality", "parse_scale"]
