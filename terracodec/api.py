"""The Python API: `encode`, `decode`, `info`, `models` (the `tec` command line mirrors it).

    terracodec.encode(["t1.tif", "t2.tif"], "series.tec", model="tec-fp-tiny", quality=1)
    stack = terracodec.decode("series.tec")                 # arrays + georeferencing
    terracodec.decode("series.tec", "out/", frames=[0])     # or GeoTIFFs

Scenes stream through tile by tile (one tile row of one frame in memory at a time), so a
full Sentinel-2 tile encodes and decodes in bounded memory. Outputs appear atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

import terracodec
from terracodec.bands import default_band_names, match_bands, normalize_band_name
from terracodec.container import ContainerReader, ContainerWriter
from terracodec.errors import CorruptStreamError, InputError, ModelError
from terracodec.exact import default_valid_range
from terracodec.header import CodecInfo, FrameInfo, StreamHeader
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.raster import ArrayStack, Grid, RasterWriter, read_stack
from terracodec.tilecode import decode_tile, encode_tile
from terracodec.tiling import Tile, round_up, tile_grid, tiles_in_window

DEFAULT_MODEL = "tec-fp-s2l1c"
DEFAULT_TILE_SIZE = 512

Progress = Callable[[int, int], None]  # (tiles done, tiles in total)

#: GDAL block cache (MB) while streaming. Each block is read once (encode) or written once
#: (decode), so a big cache only costs memory; GDAL's default is 5 % of RAM. The user's own
#: GDAL_CACHEMAX, if set, wins.
GDAL_CACHE_MB = 256


def _gdal_env() -> rasterio.Env:
    if "GDAL_CACHEMAX" in os.environ:
        return rasterio.Env()
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


# ----------------------------------------------------------------------------- models


def models() -> list[dict]:
    """The available models: name, qualities (what `quality=` takes), bands, kind, ..."""
    from terracodec.models.registry import list_models

    return [dict(m) for m in list_models()]


def _load_named(name: str, quality: Any, weights: str | None) -> Any:
    """A registry model, cached; a weights file is keyed by its size and mtime too."""
    stamp = None
    if weights:
        st = os.stat(weights)
        stamp = (st.st_size, st.st_mtime_ns)
    return _load_cached(name, quality, weights, stamp)


@lru_cache(maxsize=4)
def _load_cached(name: str, quality: Any, weights: str | None, stamp: Any) -> Any:
    from terracodec.models.registry import load_model

    codec = load_model(name, quality, weights=weights) if weights else load_model(name, quality)
    codec.eval()
    return codec


def _resolve_model(
    model: Any, quality: Any, weights: str | os.PathLike | None, device: Any = None
) -> tuple[Any, str, Any]:
    """(codec, name, quality) from a model name or an ImageCodec instance.

    Named models run on `device` (default CPU); an instance stays where it is unless `device`
    is given. Decoding is bit-exact on every device (DESIGN.md), so this is only about speed.
    """
    if isinstance(model, str):
        if weights is not None and not Path(weights).is_file():
            raise ModelError(f"no such weights file: {weights}")
        codec = _load_named(model, quality, str(weights) if weights else None)
        _to_device(codec, device or "cpu")
        _check_kind(codec)
        if quality is None:
            quality = codec.config.get("quality")
        return codec, model, quality
    if not all(hasattr(model, a) for a in ("encode_tile", "decode_tile", "bands", "multiple")):
        raise ModelError(f"not a model name or an ImageCodec: {model!r}")
    _check_kind(model)
    if device is not None:
        _to_device(model, device)
    name = getattr(model, "config", {}).get("name", type(model).__name__)
    if quality is None:
        quality = getattr(model, "config", {}).get("quality")
    return model, name, quality


def _to_device(codec: Any, device: Any) -> None:
    try:
        codec.to(torch.device(device))
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise InputError(f"cannot run on device {device!r}: {str(exc).splitlines()[0]}") from None


#: Model kinds a stream may hold (FORMAT.md `codec.kind`): "image" codes every frame on its
#: own, "temporal" codes each tile's frames in time order, each from the previous ones.
KINDS = ("image", "temporal")


def _check_kind(codec: Any) -> None:
    kind = getattr(codec, "kind", None) or codec.config.get("kind", "image")
    if kind not in KINDS:
        raise ModelError(f"model kind {kind!r} is not supported by .tec format 1.0 ({', '.join(KINDS)})")


def _model_band_names(codec: Any) -> list[str] | None:
    names = getattr(codec, "band_names", None) or codec.config.get("band_names")
    if names is None:
        names = default_band_names(codec.bands)
    return [normalize_band_name(b) or b for b in names] if names else None


def _normalization_config(codec: Any) -> dict:
    cfg = codec.config.get("normalization")
    if cfg is None:
        raise ModelError(f"model {codec.config.get('name')} has no normalisation in its config")
    return cfg


def _normalizer(cfg: dict) -> Any:
    from terracodec.normalization import Normalization

    return Normalization.from_config(cfg)


def _frame_normalizers(header: StreamHeader) -> list[Any]:
    """Each frame's normalisation: the header's, means shifted by the frame's `dn_offset`."""
    base = _normalizer(header.normalization)
    return [base.shifted(f.dn_offset) for f in header.frames]


def _check_baseline_offset(value: Any) -> str | bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value == "auto":
        return "auto"
    raise InputError(f"baseline_offset must be 'auto', True or False, got {value!r}")


def _frame_offsets(stack: Any, norm_name: str, mode: str | bool) -> list[float]:
    """Per frame, the DN shift of the model's normalisation for the Sentinel-2 baseline offset.

    `mode` True / False says every frame has / lacks the +1000 DN offset; "auto" asks
    `terracodec.io.baseline` frame by frame (tags, then B10 pixels, then the date), so a series
    that straddles January 2022 gets one shift per frame. No detection for normalisations that
    no answer would shift (identity, custom, S1).
    """
    from terracodec.io.baseline import has_baseline_offset
    from terracodec.normalization import baseline_shift

    count = len(stack.frames)
    if baseline_shift(norm_name, True) == 0 and baseline_shift(norm_name, False) == 0:
        return [0.0] * count
    return [baseline_shift(norm_name, mode if isinstance(mode, bool) else has_baseline_offset(stack, i))
            for i in range(count)]


# ----------------------------------------------------------------------------- encode


def encode(
    inputs: str | os.PathLike | Sequence[str | os.PathLike] | np.ndarray,
    output: str | os.PathLike | None = None,
    *,
    model: Any = DEFAULT_MODEL,
    quality: Any = None,
    weights: str | os.PathLike | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    valid_range: tuple[float, float] | None = None,
    band_names: list[str | None] | None = None,
    crs: Any = None,
    transform: Affine | tuple[float, ...] | None = None,
    nodata: float | None = None,
    frame_names: list[str] | None = None,
    timestamps: list[str | None] | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    baseline_offset: str | bool = "auto",
) -> bytes | dict:
    """Encode GeoTIFFs (one multi-band image, or frames on one grid) or an array.

    `inputs`: path(s), or an array [C, H, W] / [T, C, H, W] (then `band_names`, `crs`,
    `transform`, `nodata`, `frame_names` describe it). Writes `output` and returns `info()` of
    it, or returns the stream's bytes when `output` is None.

    `baseline_offset`: whether the frames carry Sentinel-2's +1000 DN offset (processing
    baseline 04.00+, 2022 on). "auto" detects it per frame (tags, B10 pixels when a band is
    named B10, the date); True / False force it for every frame. Where the model was trained on
    the other kind of data, the frame's normalisation is shifted by 1000 DN and the shift is
    recorded in the stream (`dn_offset`), so decoding still gives the input's DN.
    """
    mode = _check_baseline_offset(baseline_offset)
    with _gdal_env():
        return _encode(inputs, output, model, quality, weights, tile_size, valid_range, band_names,
                       crs, transform, nodata, frame_names, timestamps, device, progress, mode)


def _encode(inputs: Any, output: Any, model: Any, quality: Any, weights: Any, tile_size: int,
            valid_range: Any, band_names: Any, crs: Any, transform: Any, nodata: Any,
            frame_names: Any, timestamps: Any, device: Any, progress: Progress | None,
            baseline_offset: str | bool) -> bytes | dict:
    if isinstance(inputs, np.ndarray):
        stack: Any = ArrayStack(inputs, band_names=band_names, crs=crs, transform=transform,
                                nodata=nodata, frame_names=frame_names)
    else:
        paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        stack = read_stack(paths)
    with stack:
        codec, name, quality = _resolve_model(model, quality, weights, device)
        header = _encode_header(stack, codec, name, quality, tile_size, valid_range, timestamps,
                                baseline_offset)
        if output is None:
            buffer = io.BytesIO()
            _encode_into(buffer, stack, header, codec, progress)
            return buffer.getvalue()
        with AtomicOutputs() as outputs:
            temp = outputs.temp_for(output)
            try:
                with open(temp, "r+b") as f:
                    _encode_into(f, stack, header, codec, progress)
            except OSError as exc:
                raise InputError(f"cannot write {output}: {exc.strerror or exc}") from None
    return info(output)


def _encode_header(
    stack: Any, codec: Any, name: str, quality: Any, tile_size: int,
    valid_range: tuple[float, float] | None, timestamps: list[str | None] | None,
    baseline_offset: str | bool,
) -> StreamHeader:
    grid: Grid = stack.grid
    model_bands = _model_band_names(codec)
    frames = []
    for meta in stack.frames:
        order = match_bands(meta.descriptions, model_bands, codec.bands)
        frames.append(FrameInfo(meta, order))
    if timestamps is not None:
        if len(timestamps) != len(frames):
            raise InputError(f"{len(timestamps)} timestamps for {len(frames)} frames")
        for f, t in zip(frames, timestamps):
            f.meta.timestamp = t  # the stack's own FrameMeta: detection below sees this date
    normalization = _normalization_config(codec)
    shifts = _frame_offsets(stack, str(normalization.get("name", "")), baseline_offset)
    for f, shift in zip(frames, shifts):
        f.dn_offset = shift
    multiple = int(codec.multiple)
    if tile_size < 1:
        raise InputError(f"tile size must be positive, got {tile_size}")
    tile_size = round_up(tile_size, multiple)
    to_hash = getattr(codec, "weights_hash", None)
    kind = str(getattr(codec, "kind", None) or "image")
    coded_on = ""
    if kind == "temporal":
        from terracodec.temporal.coding import coder_platform

        coded_on = coder_platform()
    return StreamHeader(
        codec=CodecInfo(
            name=name, quality=quality, weights_hash=to_hash() if to_hash else "",
            kind=kind, bands=int(codec.bands), band_names=model_bands, multiple=multiple,
            coder_platform=coded_on,
        ),
        normalization=normalization,
        grid=grid,
        valid_range=tuple(valid_range) if valid_range else default_valid_range(grid.dtype),
        tile_size=tile_size,
        frames=frames,
        writer=f"terracodec {terracodec.__version__}",
    )


def _encode_into(f: Any, stack: Any, header: StreamHeader, codec: Any, progress: Progress | None) -> None:
    g = header.grid
    tiles = tile_grid(g.height, g.width, header.tile_size, header.codec.multiple)
    norms = _frame_normalizers(header)
    writer = ContainerWriter(f, header.to_json(), header.frame_count, len(tiles))
    total, done = header.frame_count * len(tiles), 0
    rows: dict[int, list[Tile]] = {}
    for t in tiles:
        rows.setdefault(t.grid_row, []).append(t)
    frame_ids = range(header.frame_count)
    if header.codec.kind == "temporal":  # each tile row's frames in time order (TileSequence)
        steps = [(fi, row) for row in rows.values() for fi in frame_ids]
    else:
        steps = [(fi, row) for fi in frame_ids for row in rows.values()]
    sequences: dict[int, Any] = {}
    for fi, row_tiles in steps:
        frame = header.frames[fi]
        nodata = frame.meta.nodata
        if header.codec.kind == "temporal" and fi == 0:
            from terracodec.temporal.tiles import TileSequence

            sequences = {t.index: TileSequence(codec) for t in row_tiles}
        r0, h = row_tiles[0].row_off, row_tiles[0].height
        strip = stack.read(fi, r0, 0, h, g.width)[frame.band_order]  # model band order
        for t in row_tiles:
            pixels = np.ascontiguousarray(strip[:, :, t.col_off : t.col_off + t.width])
            record = encode_tile(pixels, t, sequences.get(t.index, codec), norms[fi], nodata,
                                 header.valid_range)
            writer.write_tile(fi, t.index, record)
            done += 1
            if progress:
                progress(done, total)
        del strip
    writer.close()


# ----------------------------------------------------------------------------- decode


@dataclass
class Decoded:
    """Decoded frames with their georeferencing (`np.asarray(decoded)` gives the pixels)."""

    pixels: np.ndarray            # [T, C, H, W] in the files' band order and dtype
    crs: str | None               # WKT
    transform: Affine             # of the decoded window
    nodata: list[float | None]    # per frame
    band_descriptions: list[list[str | None]]
    frame_names: list[str]
    timestamps: list[str | None]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.pixels if dtype is None else self.pixels.astype(dtype)


def _open_stream(source: Any) -> tuple[ContainerReader, StreamHeader]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"no such file: {path}")
        if path.is_dir():
            raise InputError(f"not a .tec file: {path} is a directory")
    reader = ContainerReader(source)
    try:
        header = StreamHeader.from_json(reader.header)
        n_tiles = len(tile_grid(header.grid.height, header.grid.width, header.tile_size,
                                header.codec.multiple))
        if len(reader.entries) != header.frame_count * n_tiles:
            raise CorruptStreamError("corrupt .tec file: tile index does not match the header")
    except BaseException:
        reader.close()
        raise
    return reader, header


def _decode_model(header: StreamHeader, model: Any, weights: Any, device: Any) -> Any:
    c = header.codec
    codec, _, _ = _resolve_model(model if model is not None else c.name, c.quality, weights, device)
    to_hash = getattr(codec, "weights_hash", None)
    actual = to_hash() if to_hash else ""
    if actual != c.weights_hash:
        raise ModelError(
            f"stream was coded by {c.name} (quality {c.quality}) with weights {c.weights_hash[:12]}, "
            f"but the loaded model's weights are {actual[:12]}"
        )
    if int(codec.bands) != c.bands or int(codec.multiple) != c.multiple:
        raise ModelError(f"model {c.name} does not match the stream's bands or tile multiple")
    if (getattr(codec, "kind", None) or "image") != c.kind:
        raise ModelError(f"stream holds {c.kind} coding, model {c.name} is a {codec.kind} model")
    return codec


def _parse_frames(frames: Sequence[int] | None, count: int) -> list[int]:
    if frames is None:
        return list(range(count))
    out = [int(f) for f in frames]
    bad = [f for f in out if not 0 <= f < count]
    if bad or not out:
        raise InputError(f"frames {bad or '[]'} outside the stream's {count} frames (0..{count - 1})")
    if len(set(out)) != len(out):
        raise InputError(f"frames {out} name a frame twice")
    return out


def _parse_window(window: Sequence[int] | None, grid: Grid) -> tuple[int, int, int, int]:
    """(col_off, row_off, width, height) checked against the scene."""
    if window is None:
        return 0, 0, grid.width, grid.height
    col_off, row_off, width, height = (int(v) for v in window)
    if width < 1 or height < 1 or col_off < 0 or row_off < 0 or (
        col_off + width > grid.width or row_off + height > grid.height
    ):
        raise InputError(
            f"window {col_off},{row_off},{width},{height} is outside the "
            f"{grid.width}x{grid.height} scene"
        )
    return col_off, row_off, width, height


def _decode_tiles(
    reader: ContainerReader, header: StreamHeader, codec: Any, frames: list[int],
    window: tuple[int, int, int, int], sink: Callable[[int, np.ndarray, int, int], None],
    progress: Progress | None,
) -> None:
    """Decode the tiles a window needs, frame by frame; `sink(k, pixels, row, col)` places them."""
    g = header.grid
    col_off, row_off, width, height = window
    tiles = tile_grid(g.height, g.width, header.tile_size, header.codec.multiple)
    needed = tiles_in_window(tiles, row_off, col_off, height, width)
    norms = _frame_normalizers(header)
    dtype = np.dtype(g.dtype)
    total, done = len(frames) * len(needed), 0

    def emit(k: int, fi: int, t: Tile, model: Any) -> None:
        nonlocal done
        record = reader.read_tile(fi, t.index)
        model_order = decode_tile(record, t, model, norms[fi], dtype, header.valid_range)
        pixels = np.empty_like(model_order)
        pixels[header.frames[fi].band_order] = model_order  # back to the file's band order
        r0, r1 = max(t.row_off, row_off), min(t.row_off + t.height, row_off + height)
        c0, c1 = max(t.col_off, col_off), min(t.col_off + t.width, col_off + width)
        part = pixels[:, r0 - t.row_off : r1 - t.row_off, c0 - t.col_off : c1 - t.col_off]
        sink(k, part, r0 - row_off, c0 - col_off)
        done += 1
        if progress:
            progress(done, total)

    if header.codec.kind != "temporal":
        for k, fi in enumerate(frames):
            for t in needed:
                emit(k, fi, t, codec)
        return
    # Temporal: frame i of a tile needs frames < i of that tile, decoded in time order (the
    # frames that are not wanted only to their latents, without synthesis).
    from terracodec.container import FLAG_EXACT_ONLY
    from terracodec.temporal.tiles import TileSequence

    wanted = {fi: k for k, fi in enumerate(frames)}
    for t in needed:
        sequence = TileSequence(codec, header.codec.coder_platform)
        for fi in range(max(frames) + 1):
            if fi in wanted:
                emit(wanted[fi], fi, t, sequence)
                continue
            record = reader.read_tile(fi, t.index)
            if not record.flags & FLAG_EXACT_ONLY:
                sequence.decode_latents(record.code, t.padded_height, t.padded_width)


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
    progress: Progress | None = None,
) -> Decoded | list[Path]:
    """Decode a `.tec` stream (path or bytes).

    `window` = (col_off, row_off, width, height) in pixels and `frames` = frame indices select
    a part; only the tiles they need are read. With `output` None, returns `Decoded` arrays;
    with a path ending in .tif/.tiff, writes the one selected frame there; otherwise writes one
    GeoTIFF per frame into the directory `output` (named after the encoded files) and returns
    the paths. `model` (name or ImageCodec) and `weights` override the model named in the stream;
    `device` ("cpu", "cuda", ...) only changes speed: decoding is bit-exact everywhere.
    """
    reader, header = _open_stream(source)
    with reader, _gdal_env():
        selected = _parse_frames(frames, header.frame_count)
        win = _parse_window(window, header.grid)
        codec = _decode_model(header, model, weights, device)
        grid = _window_grid(header.grid, win)
        if output is None:
            out = np.empty((len(selected), grid.count, grid.height, grid.width), np.dtype(grid.dtype))

            def place(k: int, part: np.ndarray, r: int, c: int) -> None:
                out[k, :, r : r + part.shape[1], c : c + part.shape[2]] = part

            _decode_tiles(reader, header, codec, selected, win, place, progress)
            metas = [header.frames[i].meta for i in selected]
            return Decoded(
                out, grid.crs_wkt, grid.affine(), [m.nodata for m in metas],
                [m.descriptions for m in metas], [m.name for m in metas], [m.timestamp for m in metas],
            )
        return _decode_to_files(reader, header, codec, selected, win, grid, Path(output), cog, progress)


def _window_grid(grid: Grid, win: tuple[int, int, int, int]) -> Grid:
    col_off, row_off, width, height = win
    shifted = window_transform(Window(col_off, row_off, width, height), grid.affine())
    return Grid(height, width, grid.count, grid.dtype, grid.crs_wkt, tuple(shifted)[:6])


def _output_names(header: StreamHeader, selected: list[int]) -> list[str]:
    """Safe, distinct file names for the selected frames (never a path outside the directory)."""
    names = []
    for i in selected:
        name = Path(header.frames[i].meta.name.replace("\\", "/")).name
        if not name or name.startswith("."):
            name = f"frame_{i:03d}.tif"
        if not name.lower().endswith((".tif", ".tiff")):
            name += ".tif"
        names.append(name)
    if len(set(names)) != len(names):
        names = [f"{i:03d}_{n}" for i, n in zip(selected, names)]
    return names


def _decode_to_files(
    reader: ContainerReader, header: StreamHeader, codec: Any, selected: list[int],
    win: tuple[int, int, int, int], grid: Grid, output: Path, cog: bool, progress: Progress | None,
) -> list[Path]:
    single = output.suffix.lower() in (".tif", ".tiff")
    if single and len(selected) != 1:
        raise InputError(
            f"{output} can hold one frame but {len(selected)} are selected; "
            "give a directory or pick one frame with --frames"
        )
    with AtomicOutputs() as outputs:
        if single:
            paths = [output]
        else:
            outputs.make_dir(output)
            paths = [output / n for n in _output_names(header, selected)]
        writers: list[RasterWriter] = []
        try:
            for k, i in enumerate(selected):
                writers.append(RasterWriter(paths[k], grid, header.frames[i].meta, outputs, cog=cog))

            def place(k: int, part: np.ndarray, r: int, c: int) -> None:
                writers[k].write(part, r, c)

            _decode_tiles(reader, header, codec, selected, win, place, progress)
            for w in writers:
                w.close()
        finally:
            for w in writers:
                w.abandon()
    return paths


# ----------------------------------------------------------------------------- latents

LATENT_STRIDE = 16  # every terracodec model's latents lie on a 1/16 grid


@dataclass
class Latents:
    """Decoded latents of a stream on their georeferenced 1/16 grid (no synthesis).

    A stable interface for models that work on the compressed representation (e.g. embedding
    encoders): latent pixel (r, c) covers scene pixels [16r, 16r + 16) x [16c, 16c + 16);
    `transform` is the scene's with 16x larger pixels. Latents of tiles stored exactly (all
    nodata) are NaN.
    """

    y_hat: np.ndarray                  # [T, M, ceil(H/16), ceil(W/16)] float32, quantised latents
    features: np.ndarray | None        # [T, D, ...] decoder features (temporal models), else None
    crs: str | None                    # WKT
    transform: Affine                  # of the latent grid
    frame_names: list[str]
    timestamps: list[str | None]


def decode_latents(
    source: str | os.PathLike | bytes,
    *,
    frames: Sequence[int] | None = None,
    model: Any = None,
    weights: str | os.PathLike | None = None,
    device: str | None = None,
) -> Latents:
    """The quantised latents (and, for temporal models, the entropy decoder's features) of the
    selected frames of a stream, tile by tile, without running the synthesis transform."""
    from terracodec.container import FLAG_EXACT_ONLY

    reader, header = _open_stream(source)
    with reader:
        selected = _parse_frames(frames, header.frame_count)
        codec = _decode_model(header, model, weights, device)
        g, s = header.grid, LATENT_STRIDE
        tiles = tile_grid(g.height, g.width, header.tile_size, header.codec.multiple)
        lh, lw = -(-g.height // s), -(-g.width // s)
        temporal = header.codec.kind == "temporal"
        wanted = {fi: k for k, fi in enumerate(selected)}
        y_out: np.ndarray | None = None
        f_out: np.ndarray | None = None
        for t in tiles:
            if temporal:
                from terracodec.temporal.tiles import TileSequence

                sequence = TileSequence(codec, header.codec.coder_platform)
            for fi in range(max(selected) + 1) if temporal else selected:
                record = reader.read_tile(fi, t.index)
                if record.flags & FLAG_EXACT_ONLY:
                    continue
                with torch.inference_mode():
                    if temporal:
                        lat = sequence.decode_latents(record.code, t.padded_height, t.padded_width)
                    else:
                        lat = codec.decode_latents(record.code, t.padded_height, t.padded_width)
                if fi not in wanted:
                    continue
                y = lat["y_hat"].detach().float().cpu().numpy()
                f = lat.get("features")
                if y_out is None:
                    y_out = np.full((len(selected), y.shape[0], lh, lw), np.nan, np.float32)
                    if f is not None:
                        f_out = np.full((len(selected), f.shape[0], lh, lw), np.nan, np.float32)
                r0, c0 = t.row_off // s, t.col_off // s
                h, w = -(-t.height // s), -(-t.width // s)
                y_out[wanted[fi], :, r0 : r0 + h, c0 : c0 + w] = y[:, :h, :w]
                if f_out is not None and f is not None:
                    f_out[wanted[fi], :, r0 : r0 + h, c0 : c0 + w] = f.detach().float().cpu().numpy()[:, :h, :w]
        if y_out is None:
            raise InputError("every selected tile is stored exactly: there are no latents")
        metas = [header.frames[i].meta for i in selected]
        return Latents(y_out, f_out, g.crs_wkt, g.affine() * Affine.scale(s),
                       [m.name for m in metas], [m.timestamp for m in metas])


# ----------------------------------------------------------------------------- info


def info(source: str | os.PathLike | bytes) -> dict:
    """What a stream holds: shape, dtype, model, size, rate, georeferencing, per-frame sizes."""
    reader, header = _open_stream(source)
    with reader:
        g = header.grid
        size = reader.file_size
        pixels = g.height * g.width * g.count
        frame_bytes = [0] * header.frame_count
        for (fi, _), e in reader.entries.items():
            frame_bytes[fi] += e.size
        crs_epsg = None
        if g.crs_wkt:
            from rasterio.crs import CRS

            crs_epsg = CRS.from_wkt(g.crs_wkt).to_epsg()
        n_tiles = len(reader.entries) // max(1, header.frame_count)
        return {
            "format_version": "%d.%d" % reader.version,
            "frames": header.frame_count,
            "height": g.height,
            "width": g.width,
            "bands": g.count,
            "dtype": g.dtype,
            "model": header.codec.name,
            "quality": header.codec.quality,
            "normalization": (header.normalization.get("name")
                              if isinstance(header.normalization, dict) else None),
            "kind": header.codec.kind,
            "weights_hash": header.codec.weights_hash,
            "coder_platform": header.codec.coder_platform or None,
            "band_names": header.codec.band_names,
            "bytes": size,
            "bpppb": 8.0 * size / (pixels * header.frame_count),
            "crs": g.crs_wkt,
            "epsg": crs_epsg,
            "transform": list(g.transform),
            "tile_size": header.tile_size,
            "tiles_per_frame": n_tiles,
            "valid_range": list(header.valid_range),
            "writer": header.writer,
            "frame_info": [
                {
                    "index": i,
                    "name": f.meta.name,
                    "timestamp": f.meta.timestamp,
                    "nodata": f.meta.nodata,
                    "dn_offset": f.dn_offset,
                    "band_descriptions": f.meta.descriptions,
                    "bytes": frame_bytes[i],
                    "bpppb": 8.0 * frame_bytes[i] / pixels,
                }
                for i, f in enumerate(header.frames)
            ],
        }
