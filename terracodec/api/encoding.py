"""`encode`: GeoTIFF stacks or arrays -> a `.tec` stream (a file, or bytes)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import numpy as np

from terracodec.api.args import (
    DEFAULT_TILE_SIZE, check_baseline_offset, check_output, check_scale,
    check_tile_size,
)
from terracodec.api.describe import info
from terracodec.api.prepare import build_header, check_valid_range
from terracodec.api.resolve import resolve_model
from terracodec.api.execute import encode_units
from terracodec.api.plan import plan
from terracodec.api.workers import ModelSpec
from terracodec.container import BAND_SHIFT_MAJOR, CHAINED_MAJOR, CHAINED_STEPS_MAJOR, FORMAT_MAJOR, ContainerWriter
from terracodec.header_compact import compact
from terracodec.header import FIXED_POINT_PATH, PORTABLE_ENTROPY_PATHS, StreamHeader
from terracodec.errors import InputError
from terracodec.io.arrays import ArrayStack, apply_overrides
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.gdal import gdal_env



def _open_inputs(inputs: Any, **overrides: Any) -> Any:
    from terracodec.io.raster import read_stack

    if isinstance(inputs, np.ndarray):
        stack = ArrayStack(inputs, crs=overrides.pop("crs"), transform=overrides.pop("transform"),
                           nodata=overrides.pop("nodata"))
    elif isinstance(inputs, (str, os.PathLike)) or (
        isinstance(inputs, Sequence) and not isinstance(inputs, (bytes, bytearray)) and inputs
    ):
        stack = read_stack(inputs)
    else:
        raise InputError(f"inputs must be GeoTIFF path(s) or a numpy array, got {type(inputs).__name__}")
    try:
        apply_overrides(stack, **overrides)
    except BaseException:
        stack.close()
        raise
    return stack


def encode(
    inputs: Any,
    output: str | os.PathLike | None = None,
    *,
    model: Any = None,
    quality: Any = None,
    weights: str | os.PathLike | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    valid_range: tuple[float, float] | None = None,
    band_names: list[str | None] | None = None,
    crs: Any = None,
    transform: Any = None,
    nodata: float | None = None,
    frame_names: list[str] | None = None,
    timestamps: list[str | None] | None = None,
    device: str | None = None,
    progress: Any = None,
    baseline_offset: str | bool = "auto",
    scale: str | float = "auto",
    overwrite: bool = False,
    executor: Any = None,
    cloud_masks: Any = None,
    cloud_fill: str = "interleave",
) -> bytes | dict:
    """Encode GeoTIFFs (one multi-band image, or frames on one grid) or an array.

    `inputs`: a path; a list of frames in time order, each a path or a list of paths of one
    date at different resolutions (resampled onto the finest, `terracodec.io.raster`); or an
    array [C, H, W] / [T, C, H, W]. `band_names` (by position), `crs`, `transform`, `nodata`,
    `frame_names` and `timestamps` describe an array, or replace what the files say. Writes
    `output` (never over an input; over an existing file only with `overwrite`) and returns
    `info()` of it, or returns the stream's bytes when `output` is None.

    `baseline_offset`: whether the frames carry Sentinel-2's +1000 DN offset (processing
    baseline 04.00+, 2022 on). "auto" detects it per frame (tags, B10 pixels when a band is
    named B10, the date); True / False force it for every frame. Where the model was trained on
    the other kind of data, the frame's normalisation is shifted by 1000 DN and the shift is
    recorded in the stream (`dn_offset`), so decoding still gives the input's DN.

    `model`: a name (`terracodec.models()`) or a codec; None: the model `weights` is (a
    TerraCodec v1 `.pt` is recognised by its contents), else the shipped model that fits the
    input's product level and bands (`terracodec.zoo.choice`; the result's `model_choice` says
    why).

    `executor`: where the work units run (`terracodec.api.execute`): None, this process's
    threads; or anything with `submit` (a `concurrent.futures` pool, a Dask client). The bytes
    are the same either way. `progress(done, total)` counts tiles of frames.

    `scale`: the factor from the input's values to the model's DN; "auto" reads float
    reflectance (0..1) as DN / 10000 and refuses data that cannot be DN (`terracodec.io.inputs`).
    """
    mode = check_baseline_offset(baseline_offset)
    scale = check_scale(scale)
    size = check_tile_size(tile_size)
    vrange = check_valid_range(valid_range)
    target = check_output(output)
    with gdal_env():
        stack = _open_inputs(inputs, band_names=band_names, crs=crs, transform=transform,
                             nodata=nodata, frame_names=frame_names, timestamps=timestamps)
        with stack:
            outputs = AtomicOutputs(overwrite=bool(overwrite), protected=getattr(stack, "paths", []))
            if target is not None:
                outputs.check_target(target)  # before any work
            chosen = None
            if model is None and weights is None:  # the shipped model that fits the input
                from terracodec.zoo.choice import choose_model

                chosen = choose_model(stack.frames, temporal=bool(cloud_masks))
                model = chosen.model
            codec, name, quality = resolve_model(model, quality, weights, device)
            header = build_header(stack, codec, name, quality, size, vrange, mode, scale)
            if cloud_masks:
                stack = _with_clouds(stack, header, codec, name, cloud_masks, cloud_fill)
            spec = ModelSpec.of(codec, str(weights) if weights else None, device) if executor else None
            run = (stack, header, codec, progress, executor, spec)
            if target is None:
                buffer = io.BytesIO()
                encode_into(buffer, *run)
                return buffer.getvalue()
            with outputs:
                outputs.make_dir(target.parent if str(target.parent) else Path("."))
                temp = outputs.temp_for(target)
                try:
                    with open(temp, "r+b") as f:
                        encode_into(f, *run)
                except OSError as exc:
                    raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    described = info(target)
    described["model_choice"] = chosen.reason if chosen else None
    return described


def _with_clouds(stack: Any, header: StreamHeader, codec: Any, name: str, masks: Any, mode: str) -> Any:
    """The stack with its frames' cloudy cells (`io.cloud_masks`); each frame's filled share
    goes into the header, and a centred model's frames are centred on their clear pixels."""
    from terracodec.io.cloud_masks import CloudyStack, detect_cloud_masks, read_cloud_masks
    from terracodec.api.prepare import centre_on_clear_pixels
    from terracodec.temporal.clouds import FILL_MODES, cell_pixels, filled_share

    if getattr(codec, "kind", "image") != "temporal":
        raise InputError(f"--cloud-mask needs a temporal model (tec-tt-*, tec-flextec): {name} codes each frame on its own")
    if mode not in FILL_MODES:
        raise InputError(f"unknown --cloud-fill {mode!r} (expected one of {', '.join(FILL_MODES)})")
    cells = detect_cloud_masks(stack, header) if masks == "auto" else read_cloud_masks(dict(masks), stack)
    repacked = bool(getattr(getattr(codec, "entropy_model", None), "latent_repacking", False))  # FlexTEC
    size = (header.grid.height, header.grid.width)
    for fi, c in cells.items():
        header.frames[fi].filled = filled_share(c, mode, repacked, size=size)
    centre_on_clear_pixels(stack, codec, header, {fi: ~cell_pixels(c, *size) for fi, c in cells.items()})
    return CloudyStack(stack, cells, mode)


def format_major(header: StreamHeader) -> int:
    """TEC-TT / FlexTEC streams (a portable entropy path) write major 8 (payload version 4, and
    3 around it); image models, `tec-tt-elic` (fixed-point path) and frames filled under
    clouds 7 (payload versions 2 and 3) (docs/FORMAT.md, Versioning)."""
    if header.codec.kind == "temporal" and header.codec.coder_platform in PORTABLE_ENTROPY_PATHS:
        return CHAINED_STEPS_MAJOR
    chained = header.codec.kind == "image" or header.codec.coder_platform == FIXED_POINT_PATH
    if chained or any(fr.filled for fr in header.frames):
        return CHAINED_MAJOR
    return BAND_SHIFT_MAJOR if any(fr.band_shift for fr in header.frames) else FORMAT_MAJOR


def encode_into(f: Any, stack: Any, header: StreamHeader, codec: Any, progress: Any = None,
                executor: Any = None, spec: ModelSpec | None = None) -> int:
    """Code every unit of `header`'s plan into a container in `f`; returns its size in bytes."""
    writer = ContainerWriter(f, compact(header.to_json()), header.frame_count, header.tiles_per_frame,
                             major=format_major(header))
    total, done = header.frame_count * header.tiles_per_frame, 0
    for unit, records in encode_units(plan(header), stack, header, codec, executor, spec):
        for fi, record in zip(unit.frames, records):
            writer.write_tile(fi, unit.tile.index, record)
            done += 1
            if progress:
                progress(done, total)
    return writer.close()


__all__ = ["encode", "encode_into"]
