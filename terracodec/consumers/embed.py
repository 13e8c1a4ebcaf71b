"""`tec embed`: a `.tec` stream -> georeferenced embeddings a foundation model computes from it.

    SOURCE.tec --decode frame by frame--> bands in reflectance --TerraFM (windows)--> tokens
      --> one GeoTIFF per frame: D float32 bands on the 1/16 grid (the latent grid's transform)
    SOURCE.tec --decode the series--> TESSERA inputs (+ S1) --> one 128-band GeoTIFF at 10 m

Everything that can be refused is refused before any decoding (the output names, the
checkpoint, the stream's bands and level), and the files appear together or not at all.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from terracodec.api.args import check_output, parse_frames
from terracodec.api.stream import open_stream
from terracodec.errors import InputError
from terracodec.header import StreamHeader
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.meta import FrameMeta, Grid

ENCODERS = ("terrafm-b", "terrafm-l", "tessera")
PATCH = 16


def _terrafm_modality(header: StreamHeader, level: str | None) -> str:
    from terracodec.consumers.frames import level_of

    level = level or level_of(header)
    if level not in ("l1c", "l2a"):
        raise InputError("the stream does not say whether it is Level-1C or Level-2A: give --level l1c or l2a")
    return f"s2_{level}"


def _names(header: StreamHeader, frames: list[int], output: Path, encoder: str, single: bool) -> list[Path]:
    """One file for `single` outputs, else one per frame; a .tif OUTPUT takes exactly one."""
    count = 1 if single else len(frames)
    if output.suffix.lower() in (".tif", ".tiff"):
        if count != 1:
            raise InputError(f"{output} can hold one frame's embeddings but {count} frames are selected; "
                             "give a directory or pick one frame with --frames")
        return [output]
    if output.exists() and not output.is_dir():
        raise InputError(f"cannot write to {output}: it exists and is not a directory")
    if single:
        return [output / f"{Path(header.frames[frames[0]].meta.name).stem}.{encoder}.tif"]
    stems = [Path(header.frames[i].meta.name).stem for i in frames]
    if len(set(stems)) != len(stems):
        stems = [f"{i:03d}_{s}" for i, s in zip(frames, stems)]
    return [output / f"{s}.{encoder}.tif" for s in stems]


def token_grid(grid: Grid, count: int) -> Grid:
    """The 1/16 grid of a scene grid (the latent grid of `decode_latents`)."""
    from affine import Affine

    transform = grid.affine() * Affine.scale(PATCH)
    gcps = [[r / PATCH, c / PATCH, x, y, z] for r, c, x, y, z in grid.gcps] if grid.gcps else None
    return Grid(math.ceil(grid.height / PATCH), math.ceil(grid.width / PATCH), count, "float32",
                grid.crs_wkt, tuple(transform)[:6], gcps, grid.gcp_crs_wkt)


def _meta(name: str, encoder: str, dim: int, tags: dict[str, str], timestamp: str | None) -> FrameMeta:
    return FrameMeta(name=name, nodata=float("nan"), descriptions=[f"{encoder}_{k:04d}" for k in range(dim)],
                     tags={"ENCODER": encoder, **tags, **({"DATE": timestamp} if timestamp else {})},
                     timestamp=timestamp)


def embed(
    source: str | os.PathLike, output: str | os.PathLike, *, encoder: str = "terrafm-b",
    weights: str | os.PathLike | None = None, frames: Sequence[int] | None = None, level: str | None = None,
    normalization: str = "reflectance", window: int = 512, device: str | None = None,
    s1_asc: Any = None, s1_desc: Any = None, overwrite: bool = False, seed: int | None = None,
    source_kind: str = "pixels", adapter: str | os.PathLike | None = None, s1_weights: Any = None,
) -> list[Path]:
    """Write the embeddings of `source`'s frames to `output` (a .tif or a directory); returns
    the paths. `weights`: the encoder's checkpoint (None: random weights from `seed`, for tests
    and rate studies; the files then say so in their tags). `source_kind` "latents" runs TerraFM
    on the stream's synthesis latents through `adapter` (no synthesis, no patch embedding)."""
    if encoder not in ENCODERS:
        raise InputError(f"unknown encoder {encoder!r} (one of {', '.join(ENCODERS)})")
    if source_kind not in ("pixels", "latents"):
        raise InputError(f"--from must be pixels or latents, got {source_kind!r}")
    if source_kind == "latents" and (encoder == "tessera" or adapter is None):
        raise InputError("--from latents needs a TerraFM encoder and --adapter (tec train-adapter makes one)")
    target = check_output(output)
    if target is None:
        raise InputError("embed needs an output path (-o)")
    reader, header = open_stream(source)
    with reader:
        selected = parse_frames(frames, header.frame_count)
        outputs = AtomicOutputs(overwrite=bool(overwrite), protected=[source])
        paths = _names(header, selected, target, encoder, single=encoder == "tessera")
        for p in paths:
            outputs.check_target(p)
    if encoder == "tessera":
        from terracodec.consumers.embed_tessera import embed_tessera

        return embed_tessera(source, header, selected, paths[0], outputs, weights=weights, device=device,
                             s1_asc=s1_asc, s1_desc=s1_desc, seed=seed, s1_weights=s1_weights)
    return _embed_terrafm(source, header, selected, paths, outputs, size=encoder[-1], weights=weights,
                          level=level, normalization=normalization, window=window, device=device, seed=seed,
                          adapter=adapter if source_kind == "latents" else None)


def _embed_terrafm(source: Any, header: StreamHeader, selected: list[int], paths: list[Path],
                   outputs: AtomicOutputs, *, size: str, weights: Any, level: str | None, normalization: str,
                   window: int, device: str | None, seed: int | None, adapter: Any = None) -> list[Path]:
    from terracodec.consumers.frames import band_indices
    from terracodec.consumers.terrafm import S2_BANDS, build_terrafm
    from terracodec.io.writer import RasterWriter

    modality = _terrafm_modality(header, level)
    if adapter is None:
        for i in selected:
            band_indices(header, i, S2_BANDS, f"TerraFM ({modality})")  # refused before any decoding
    model = build_terrafm(size, weights=weights, seed=seed).to(device or "cpu")
    tokens_of = _adapter_path(source, model, adapter, weights, seed, window) if adapter is not None else \
        _pixel_path(source, header, model, modality, normalization, window)
    grid = token_grid(header.grid, model.dim)
    tags = {"MODALITY": modality, "NORMALIZATION": normalization if adapter is None else "latents",
            "WEIGHTS": Path(weights).name if weights else f"random (seed {seed or 0})",
            **({"ADAPTER": Path(adapter).name} if adapter is not None else {})}
    with outputs:
        outputs.make_dir(paths[0].parent)
        for path, i in zip(paths, selected):
            frame = header.frames[i]
            out = tokens_of(i)
            meta = _meta(frame.meta.name, f"terrafm-{size}", model.dim,
                         dict(tags, SOURCE_FRAME=frame.meta.name), frame.meta.timestamp)
            writer = RasterWriter(path, grid, meta, outputs)
            try:
                writer.write(out, 0, 0)
                writer.close()
            finally:
                writer.abandon()
    return paths


def _pixel_path(source: Any, header: StreamHeader, model: Any, modality: str, normalization: str,
                window: int) -> Any:
    """frame -> tokens [D, h, w] from the decoded frame (NaN where all pixels are nodata)."""
    import torch

    from terracodec.api.decoding import decode
    from terracodec.consumers.frames import frame_input
    from terracodec.consumers.terrafm import S2_BANDS
    from terracodec.consumers.windows import run_windows

    def tokens_of(i: int) -> np.ndarray:
        pixels = decode(source, frames=[i]).pixels[0]
        inputs = frame_input(header, i, pixels, S2_BANDS, f"TerraFM ({modality})", normalization)
        x = torch.from_numpy(inputs.values)[None].to(model.cls_token.device)
        with torch.inference_mode():
            tokens = run_windows(lambda t: model.patch_tokens(t, modality), x, window=window)
        out = tokens[0].float().cpu().numpy()
        out[:, _empty_cells(inputs.nodata, out.shape[1:])] = np.nan
        return out

    return tokens_of


def _adapter_path(source: Any, model: Any, adapter_path: Any, weights: Any, seed: int | None, window: int) -> Any:
    """frame -> tokens [D, h, w] from the stream's synthesis latents through a latent adapter,
    refused (one line) unless the adapter was trained for this stream's codec and this TerraFM."""
    import terracodec
    from terracodec.consumers.adapter import check_adapter, latent_tokens, load_adapter, terrafm_identity

    adapter = load_adapter(adapter_path)
    check_adapter(adapter, terracodec.info(source), terrafm_identity(weights, seed), model.size.name)

    def tokens_of(i: int) -> np.ndarray:
        y_hat = terracodec.decode_latents(source, frames=[i], space="synthesis").y_hat[0]
        return latent_tokens(adapter, model, y_hat, window=window)

    return tokens_of


def _empty_cells(nodata: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Cells of the 1/16 grid whose pixels are all nodata."""
    h, w = nodata.shape
    padded = np.ones((shape[0] * PATCH, shape[1] * PATCH), bool)
    padded[:h, :w] = nodata
    return padded.reshape(shape[0], PATCH, shape[1], PATCH).all(axis=(1, 3))


__all__ = ["ENCODERS", "embed", "token_grid"]
