"""Before any tile is coded: the stream header for a stack and a model, and the checks that the
inputs are what the model codes (band names, value range and units, baseline offset)."""

from __future__ import annotations

import json
import math
import numbers
import warnings
from typing import Any

import terracodec
from terracodec.api.resolve import kind_of, model_band_names, normalization_config
from terracodec.bands import match_bands, normalize_band_name
from terracodec.errors import CorruptStreamError, InputError, TerracodecWarning
from terracodec.exact import default_valid_range
from terracodec.header import CodecInfo, FrameInfo, StreamHeader
from terracodec.header_compact import compact, expand
from terracodec.io.inputs import codes_s2_dn, frame_scale
from terracodec.limits import MAX_TILE_SIZE
from terracodec.tiling import round_up


def check_valid_range(valid_range: Any) -> tuple[float, float] | None:
    if valid_range is None:
        return None
    try:
        lo, hi = (float(v) for v in valid_range)
    except (TypeError, ValueError):
        raise InputError(f"valid_range must be two numbers (low, high), got {valid_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or any(
        isinstance(v, bool) or not isinstance(v, numbers.Real) for v in valid_range
    ):
        raise InputError(f"valid_range must be two finite numbers, low < high, got {valid_range!r}")
    return lo, hi


def coded_tile_size(tile_size: int, multiple: int) -> int:
    """The tile side the stream uses: `tile_size` rounded to the model's multiple, within the
    format's cap."""
    size = round_up(tile_size, multiple)
    if size > MAX_TILE_SIZE:
        size = MAX_TILE_SIZE // multiple * multiple
    if size < multiple:
        raise InputError(f"the model's tiles are multiples of {multiple} px, above the {MAX_TILE_SIZE} px cap")
    return size


def _band_orders(stack: Any, codec: Any, model_bands: list[str] | None) -> list[list[int]]:
    from terracodec.centring import min_present_bands

    orders = []
    unnamed = []
    least = min_present_bands(codec)
    for meta in stack.frames:
        orders.append(match_bands(meta.descriptions, model_bands, codec.bands, least))
        if model_bands and not all(normalize_band_name(d) for d in meta.descriptions):
            unnamed.append(meta.name)
    if unnamed:
        warnings.warn(TerracodecWarning(
            f"{len(unnamed)} frame(s) ({unnamed[0]}{', ...' if len(unnamed) > 1 else ''}) do not name "
            f"their bands: coded by position as {','.join(model_bands or [])}; if the file's order "
            "differs, name them with --bands (band_names=)"
        ), stacklevel=3)
    return orders


def _frame_offsets(stack: Any, norm_name: str, mode: str | bool, scales: list[float],
                   names: list[list[str | None] | None]) -> list[float]:
    """Per frame, the DN shift of the model's normalisation for the Sentinel-2 baseline offset.

    `mode` True / False says every frame has / lacks the +1000 DN offset; "auto" asks
    `terracodec.io.baseline` frame by frame (tags, then B10 pixels, then the date), so a series
    that straddles January 2022 gets one shift per frame; a frame nothing tells about is coded
    as the model's own kind, with a warning. No detection for normalisations that no answer
    would shift (identity, custom, S1).
    """
    from terracodec.io.baseline import has_baseline_offset
    from terracodec.normalization import baseline_shift

    count = len(stack.frames)
    if baseline_shift(norm_name, True) == 0 and baseline_shift(norm_name, False) == 0:
        return [0.0] * count
    if isinstance(mode, bool):
        return [baseline_shift(norm_name, mode)] * count
    answers = [has_baseline_offset(stack, i, scales[i], names[i]) for i in range(count)]
    unknown = [stack.frames[i].name for i, a in enumerate(answers) if a is None]
    if unknown:
        assumed = "without" if norm_name.endswith("-no-offset") else "with"
        warnings.warn(TerracodecWarning(
            f"cannot tell whether {len(unknown)} frame(s) ({unknown[0]}{', ...' if len(unknown) > 1 else ''}) "
            f"carry Sentinel-2's +1000 DN offset (no baseline tag, no B10, no date): coded as {assumed} it; "
            "say so with --baseline-offset yes|no"
        ), stacklevel=3)
    return [baseline_shift(norm_name, a) for a in answers]


def _centre_frames(stack: Any, codec: Any, frames: list[FrameInfo], normalization: dict,
                   vrange: tuple[float, float], clear: dict[int, Any] | None = None) -> None:
    """Each frame's `band_shift` for a model with a centre (`terracodec.centring`); none else.
    `clear`: frame -> `[H, W]` bool of its cloud-free pixels; only those frames are (re)centred,
    on those pixels (cloud-aware coding)."""
    from terracodec.centring import frame_band_shift, model_centre
    from terracodec.normalization import Normalization

    centre = model_centre(codec)
    if centre is None:
        return
    base = Normalization.from_config(normalization)
    for i, f in enumerate(frames):
        if clear is not None and (i not in clear or not clear[i].any()):
            continue  # no mask, or all cloud: the shift of all its pixels stands
        f.band_shift = frame_band_shift(stack, i, f.band_order, base.shifted(f.dn_offset), centre,
                                        vrange, f.meta.nodata, f.dn_scale, None if clear is None else clear[i])


def centre_on_clear_pixels(stack: Any, codec: Any, header: StreamHeader, clear: dict[int, Any]) -> None:
    """Re-centre the frames of `clear` (frame -> `[H, W]` bool cloud-free pixels) on their clear
    pixels: a filled cell decodes to the model's prediction under the frame's normalisation, which
    must describe the ground, not the clouds."""
    _centre_frames(stack, codec, header.frames, header.normalization, header.valid_range, clear)


def build_header(stack: Any, codec: Any, name: str, quality: Any, tile_size: int,
                 valid_range: tuple[float, float] | None, baseline_offset: str | bool,
                 scale: str | float) -> StreamHeader:
    """The header of a stream coding `stack` with `codec`, checked as a reader would."""
    grid = stack.grid
    model_bands = model_band_names(codec)
    orders = _band_orders(stack, codec, model_bands)
    normalization = normalization_config(codec)
    norm_name = str(normalization.get("name", ""))
    vrange = valid_range or default_valid_range(grid.dtype)
    scales = [frame_scale(stack, i, norm_name, vrange, scale, name) for i in range(len(stack.frames))]
    # frames that name no bands are coded as the model's bands by position: B10 is found so
    positional = [None if all(normalize_band_name(d) for d in meta.descriptions) or not model_bands
                  else list(model_bands) for meta in stack.frames]
    shifts = _frame_offsets(stack, norm_name, baseline_offset, scales, positional)
    for meta in stack.frames:  # one entry per band (arrays give none): one form to store
        n = grid.count
        meta.descriptions = list(meta.descriptions) or [None] * n
        meta.band_tags = list(meta.band_tags) or [{} for _ in range(n)]
        meta.scales = list(meta.scales) or [1.0] * n
        meta.offsets = list(meta.offsets) or [0.0] * n
        meta.units = list(meta.units) or [None] * n
    frames = [FrameInfo(meta, order, shift, s)
              for meta, order, shift, s in zip(stack.frames, orders, shifts, scales)]
    _centre_frames(stack, codec, frames, normalization, vrange)
    if scale == "auto" and codes_s2_dn(norm_name) and any(s != 1 for s in scales):
        warnings.warn(TerracodecWarning(
            "float values in 0..2 read as reflectance: coded as DN = 10000 x value, decoded back to "
            "reflectance (--scale 1 codes them as they are)"
        ), stacklevel=3)
    kind = kind_of(codec)
    coded_on = ""
    if kind == "temporal":  # streams are coded with a portable entropy path: they decode anywhere
        from terracodec.temporal.entropy_paths import CURRENT_PATH

        coded_on = str(getattr(codec, "entropy_path", CURRENT_PATH))
    to_hash = getattr(codec, "weights_hash", None)
    multiple = int(codec.multiple)
    header = StreamHeader(
        codec=CodecInfo(name=name, quality=quality, weights_hash=to_hash() if to_hash else "",
                        kind=kind, bands=int(codec.bands), band_names=model_bands,
                        multiple=multiple, coder_platform=coded_on),
        normalization=normalization,
        grid=grid,
        valid_range=vrange,
        tile_size=coded_tile_size(tile_size, multiple),
        frames=frames,
        writer=f"terracodec {terracodec.__version__}",
    )
    try:  # what the reader would refuse is never written: the reader's own checks, on the JSON
        checked = StreamHeader.from_json(json.loads(json.dumps(header.to_json(), allow_nan=False)))
        stored = json.loads(json.dumps(compact(header.to_json()), allow_nan=False))
        if StreamHeader.from_json(expand(stored)) != checked:  # the compact form must lose nothing
            raise ValueError("the compact header does not restore this header")
    except CorruptStreamError as exc:
        raise InputError(str(exc).replace("corrupt .tec file: malformed header", "cannot write this stream")) from None
    except ValueError as exc:
        raise InputError(f"cannot write this stream: {exc}") from None
    return header


__all__ = ["build_header", "check_valid_range", "coded_tile_size"]
