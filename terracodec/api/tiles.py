"""Scheduling tiles: which tiles are coded in which order, and which run side by side.

What is independent (docs/DESIGN.md): for an image model every (frame, tile) pair; for a
temporal model a tile's sequence, whose frames are coded in time order (frame `i` from frames
`< i` of the same tile). Both are walked tile row by tile row: a row's pixels are read once
(one strip per frame), and its tiles are coded as tasks of `terracodec.parallel.run_tasks`, a
batch of at most `budget()` tiles at a time, each on one intra-op thread. Results do not depend
on the thread count: encoded bytes and decoded pixels are the same with 1 thread or 16.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, BinaryIO

import numpy as np

from terracodec.container import ContainerReader, ContainerWriter, TileRecord
from terracodec.header import StreamHeader
from terracodec.parallel import budget, chunks, float_threads_for, run_tasks
from terracodec.tilecode import decode_tile, decode_tile_latents, encode_tile
from terracodec.tiling import Tile, tile_grid

Progress = Callable[[int, int], None]  # (tiles done, tiles in total)


def frame_normalizers(header: StreamHeader) -> list[Any]:
    """Each frame's normalisation: the header's, means shifted by `dn_offset`, for values that
    are DN / `dn_scale`."""
    from terracodec.normalization import Normalization

    base = Normalization.from_config(header.normalization)
    return [base.shifted(f.dn_offset).scaled(f.dn_scale) for f in header.frames]


def tile_rows(tiles: list[Tile]) -> list[list[Tile]]:
    rows: dict[int, list[Tile]] = {}
    for t in tiles:
        rows.setdefault(t.grid_row, []).append(t)
    return list(rows.values())


def float_threads_of(header: StreamHeader) -> int:
    """Intra-op threads of a stream's float transforms, fixed by its shape (so its pixels are
    the same whatever decodes them, `terracodec.parallel.float_threads_for`). Image streams:
    every (frame, tile) is independent; temporal streams: the tiles."""
    units = header.tiles_per_frame * (header.frame_count if header.codec.kind != "temporal" else 1)
    return float_threads_for(units)


def _batches(items: list) -> list[list]:
    """`items` in batches of `budget()` (one task per thread)."""
    return [items[s] for s in chunks(len(items), max(1, budget()))]


def _sequence(codec: Any, coded_on: str = "") -> Any:
    from terracodec.temporal.tiles import TileSequence

    return TileSequence(codec, coded_on)


def encode_into(f: BinaryIO, stack: Any, header: StreamHeader, codec: Any,
                progress: Progress | None) -> int:
    """Code every tile of `stack` into a container in `f`; returns the bytes written."""
    from terracodec.container import DN_SCALE_MAJOR, FORMAT_MAJOR

    g = header.grid
    tiles = tile_grid(g.height, g.width, header.tile_size, header.codec.multiple)
    norms = frame_normalizers(header)
    major = DN_SCALE_MAJOR if any(fr.dn_scale != 1 for fr in header.frames) else FORMAT_MAJOR
    writer = ContainerWriter(f, header.to_json(), header.frame_count, len(tiles), major=major)
    total, done = header.frame_count * len(tiles), 0
    floats = float_threads_of(header)
    strips: dict[tuple[int, int], np.ndarray] = {}

    def pixels(fi: int, t: Tile) -> np.ndarray:
        """The tile's pixels in model band order, from its row's strip (read once)."""
        if (fi, t.grid_row) not in strips:
            strips.clear()  # units come row by row: earlier strips are done
            strip = stack.read(fi, t.row_off, 0, t.height, g.width)
            strips[fi, t.grid_row] = strip[header.frames[fi].band_order]
        return np.ascontiguousarray(strips[fi, t.grid_row][:, :, t.col_off : t.col_off + t.width])

    def code(units: list[tuple[int, Tile, Any]]) -> None:
        nonlocal done
        tasks = [partial(encode_tile, pixels(fi, t), t, model, norms[fi], header.frames[fi].meta.nodata,
                         header.valid_range) for fi, t, model in units]
        for (fi, t, _), record in zip(units, run_tasks(tasks, float_threads=floats)):
            writer.write_tile(fi, t.index, record)
            done += 1
            if progress:
                progress(done, total)

    if header.codec.kind != "temporal":  # every (frame, tile) on its own
        for batch in _batches([(fi, t, codec) for fi in range(header.frame_count) for t in tiles]):
            code(batch)
    else:  # a tile row at a time, each tile's frames in time order
        for row in tile_rows(tiles):
            sequences = {t.index: _sequence(codec) for t in row}
            for fi in range(header.frame_count):
                for batch in _batches(row):
                    code([(fi, t, sequences[t.index]) for t in batch])
    return writer.close()


def walk(reader: ContainerReader, header: StreamHeader, codec: Any, frames: list[int],
         tiles: list[Tile], want: str) -> Iterator[tuple[int, Tile, Any]]:
    """(k, tile, result) for every selected frame `frames[k]` of every tile in `tiles`:
    `want="pixels"` gives `[C, h, w]` pixels in the file's band order, `"latents"` the model's
    latents (None for a tile stored exactly). Temporal streams decode the frames a selected
    frame depends on, to their latents only."""
    norms = frame_normalizers(header)
    dtype = np.dtype(header.grid.dtype)
    wanted = {fi: k for k, fi in enumerate(frames)}
    floats = float_threads_of(header)

    def one(fi: int, t: Tile, model: Any, record: TileRecord) -> Any:
        if fi not in wanted or want == "latents":
            return decode_tile_latents(record, t, model)  # advances a temporal model's state
        model_order = decode_tile(record, t, model, norms[fi], dtype, header.valid_range,
                                  header.frames[fi].meta.nodata)
        out = np.empty_like(model_order)
        out[header.frames[fi].band_order] = model_order  # back to the file's band order
        return out

    def run(units: list[tuple[int, Tile, Any]]) -> Iterator[tuple[int, Tile, Any]]:
        records = [reader.read_tile(fi, t.index) for fi, t, _ in units]
        results = run_tasks([partial(one, fi, t, m, r) for (fi, t, m), r in zip(units, records)],
                            float_threads=floats)
        for (fi, t, _), result in zip(units, results):
            if fi in wanted:
                yield wanted[fi], t, result

    if header.codec.kind != "temporal":
        for batch in _batches([(fi, t, codec) for fi in frames for t in tiles]):
            yield from run(batch)
        return
    for row in tile_rows(tiles):
        sequences = {t.index: _sequence(codec, header.codec.coder_platform) for t in row}
        for fi in range(max(frames) + 1):
            for batch in _batches(row):
                yield from run([(fi, t, sequences[t.index]) for t in batch])


__all__ = ["Progress", "encode_into", "float_threads_of", "frame_normalizers", "tile_rows", "walk"]
