"""`decode`: a `.tec` stream -> arrays (with georeferencing) or GeoTIFFs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from terracodec.api.args import check_output, parse_frames, parse_window
from terracodec.api.stream import open_stream
from terracodec.container import ContainerReader
from terracodec.errors import InputError
from terracodec.header import StreamHeader
from terracodec.api.filled_masks import filled_pixels, sidecar_path, write_sidecar
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.gdal import gdal_env
from terracodec.io.meta import Grid


@dataclass
class Decoded:
    """Decoded frames with their georeferencing (`np.asarray(decoded)` gives the pixels)."""

    pixels: np.ndarray            # [T, C, H, W] in the files' band order and dtype
    crs: str | None               # WKT
    transform: Any                # affine.Affine of the decoded window
    nodata: list[float | None]    # per frame
    band_descriptions: list[list[str | None]]
    frame_names: list[str]
    timestamps: list[str | None]
    gcps: list[list[float]] | None = None  # [row, col, x, y, z] of the decoded window
    gcp_crs: str | None = None

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.pixels if dtype is None else self.pixels.astype(dtype)


def decode(
    source: str | os.PathLike | bytes,
    output: str | os.PathLike | None = None,
    *,
    frames: Sequence[int] | None = None,
    window: Sequence[int] | None = None,
    cog: bool = False,
    model: Any = None,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
    progress: Any = None,
    overwrite: bool = False,
    executor: Any = None,
) -> Decoded | list[Path]:
    """Decode a `.tec` stream (path or bytes).

    `window` = (col_off, row_off, width, height) in pixels and `frames` = frame indices select
    a part; only the tiles they need are read. With `output` None, returns `Decoded` arrays;
    with a path ending in .tif/.tiff, writes the one selected frame there; otherwise writes one
    GeoTIFF per frame into the directory `output` (named after the encoded files) and returns
    the paths. Existing files are replaced only with `overwrite`, the source never. `model`
    (name or ImageCodec) and `weights` override the model named in the stream; `device`
    ("cpu", "cuda", ...) only changes speed: decoded latents are the same everywhere.
    `executor`: where the work units run (`terracodec.api.execute`; None: this process).
    """
    target = check_output(output)
    reader, header = open_stream(source)
    with reader, gdal_env():
        selected = parse_frames(frames, header.frame_count)
        win = parse_window(window, header.grid.height, header.grid.width)
        protected = [source] if isinstance(source, (str, os.PathLike)) else []
        outputs = AtomicOutputs(overwrite=bool(overwrite), protected=protected)
        if target is not None:
            names = _plan_files(header, selected, target, outputs)  # refused before any work
        from terracodec.api.resolve import decode_model  # torch: only for a stream that passed

        codec = decode_model(header, model, weights, device)
        run = _Run(reader, source, header, codec, selected, win, progress, executor,
                   _spec(codec, weights, device, executor))
        grid = window_grid(header.grid, win)
        if target is None:
            out = np.empty((len(selected), grid.count, grid.height, grid.width), np.dtype(grid.dtype))

            def place(k: int, part: np.ndarray, r: int, c: int) -> None:
                out[k, :, r : r + part.shape[1], c : c + part.shape[2]] = part

            run.decode(place)
            metas = [header.frames[i].meta for i in selected]
            return Decoded(
                out, grid.crs_wkt, grid.affine(), [m.nodata for m in metas],
                [m.descriptions for m in metas], [m.name for m in metas], [m.timestamp for m in metas],
                grid.gcps, grid.gcp_crs_wkt,
            )
        return _decode_to_files(run, grid, names, cog, outputs)


def window_grid(grid: Grid, win: tuple[int, int, int, int]) -> Grid:
    """The grid of a pixel window (its transform and ground control points shifted)."""
    from affine import Affine

    col_off, row_off, width, height = win
    shifted = grid.affine() * Affine.translation(col_off, row_off)
    gcps = None
    if grid.gcps:
        gcps = [[r - row_off, c - col_off, x, y, z] for r, c, x, y, z in grid.gcps]
    return Grid(height, width, grid.count, grid.dtype, grid.crs_wkt, tuple(shifted)[:6], gcps,
                grid.gcp_crs_wkt)


def _spec(codec: Any, weights: Any, device: Any, executor: Any) -> Any:
    if executor is None:
        return None
    from terracodec.api.workers import ModelSpec

    return ModelSpec.of(codec, str(weights) if weights else None, device)


@dataclass
class _Run:
    """One decode: what is read, with which model, which frames and window, run where."""

    reader: ContainerReader
    source: Any
    header: StreamHeader
    codec: Any
    frames: list[int]
    window: tuple[int, int, int, int]
    progress: Any
    executor: Any
    spec: Any

    def decode(self, sink: Any) -> None:
        """Decode the units the window and frames need; `sink(k, pixels, row, col)` places each
        tile's part of the window."""
        from terracodec.api.execute import decode_units
        from terracodec.api.plan import plan

        col_off, row_off, width, height = self.window
        units = plan(self.header, self.frames, self.window)
        total = len(self.frames) * len({u.tile.index for u in units})
        done = 0

        def emit(k: int, t: Any, pixels: Any) -> None:
            nonlocal done
            r0, r1 = max(t.row_off, row_off), min(t.row_off + t.height, row_off + height)
            c0, c1 = max(t.col_off, col_off), min(t.col_off + t.width, col_off + width)
            sink(k, pixels[:, r0 - t.row_off : r1 - t.row_off, c0 - t.col_off : c1 - t.col_off],
                 r0 - row_off, c0 - col_off)
            done += 1
            if self.progress:
                self.progress(done, total)

        stream = self.source if isinstance(self.source, (str, os.PathLike, bytes)) else None
        decode_units(units, self.reader, stream, self.header, self.codec,
                     {fi: k for k, fi in enumerate(self.frames)}, "pixels", emit, self.executor, self.spec)


def _output_names(header: StreamHeader, selected: list[int]) -> list[str]:
    """Safe, distinct file names for the selected frames (never a path outside the directory)."""
    names = []
    for i in selected:
        name = Path(header.frames[i].meta.name.replace("\\", "/")).name
        if not name or name.startswith(".") or name in ("..",):
            name = f"frame_{i:03d}.tif"
        if not name.lower().endswith((".tif", ".tiff")):
            name += ".tif"
        names.append(name)
    if len(set(names)) != len(names):
        names = [f"{i:03d}_{n}" for i, n in zip(selected, names)]
    return names


def _plan_files(header: StreamHeader, selected: list[int], output: Path, outputs: AtomicOutputs) -> list[Path]:
    """The files a decode writes, each checked (no input, no existing file without overwrite)."""
    if output.suffix.lower() in (".tif", ".tiff"):
        if len(selected) != 1:
            raise InputError(
                f"{output} can hold one frame but {len(selected)} are selected; "
                "give a directory or pick one frame with --frames"
            )
        paths = [output]
    else:
        if output.exists() and not output.is_dir():
            raise InputError(f"cannot write to {output}: it exists and is not a directory")
        paths = [output / n for n in _output_names(header, selected)]
    for p, i in zip(paths, selected):
        outputs.check_target(p)
        if header.frames[i].filled:  # the frame's filled pixels, beside it (docs/CLOUDS.md)
            outputs.check_target(sidecar_path(p))
    return paths


def _decode_to_files(run: _Run, grid: Grid, paths: list[Path], cog: bool,
                     outputs: AtomicOutputs) -> list[Path]:
    from terracodec.io.writer import RasterWriter

    with outputs:
        outputs.make_dir(paths[0].parent)
        writers: list[RasterWriter] = []
        try:
            for k, i in enumerate(run.frames):
                writers.append(RasterWriter(paths[k], grid, run.header.frames[i].meta, outputs, cog=cog))
            run.decode(lambda k, part, r, c: writers[k].write(part, r, c))
            for w in writers:
                w.close()
            for k, i in enumerate(run.frames):
                if run.header.frames[i].filled:
                    write_sidecar(sidecar_path(paths[k]), filled_pixels(run.reader.read_tile, run.header, i, run.window),
                                  grid, outputs)
        finally:
            for w in writers:
                w.abandon()
    return paths


__all__ = ["Decoded", "decode", "window_grid"]
