"""`tec embed --encoder tessera`: a decoded S2 series (+ S1) -> one 128-band GeoTIFF at 10 m.

    SOURCE.tec --decode the selected frames--> DN (x dn_scale), band names, dates, nodata
      --> tessera_inputs (TESSERA's band order and statistics, validity, day of year,
          the frame's baseline offset as the stream records it)
    --s1-asc / --s1-desc (rasters of one date each, or .tec series) on the same grid
      --> embed_grid (40 observations per pixel, seeded) --> [128, H, W] float32

TESSERA embeds each pixel's year independently, so the output is on the scene's own grid.
Without S1, the S1 branch reads TESSERA's own stand-in for a missing direction (one invalid
zero observation, as the public inference does for a tile without S1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from terracodec.errors import InputError
from terracodec.header import StreamHeader
from terracodec.io.atomic import AtomicOutputs
from terracodec.io.meta import FrameMeta, Grid

S1_NAMES = ("VV", "VH")


def _same_grid(a: Grid, b: Grid) -> bool:
    same_crs = (a.crs_wkt or "") == (b.crs_wkt or "")
    if not same_crs and a.crs_wkt and b.crs_wkt:
        from rasterio.crs import CRS

        same_crs = CRS.from_wkt(a.crs_wkt) == CRS.from_wkt(b.crs_wkt)
    return (a.height, a.width) == (b.height, b.width) and same_crs and bool(
        np.allclose(a.transform[:6], b.transform[:6], rtol=0, atol=1e-6 * max(1.0, abs(a.transform[0]))))


def _s1_indices(descriptions: Sequence[str | None], count: int, what: str) -> list[int]:
    names = [(d or "").upper() for d in descriptions]
    if all(n in names for n in S1_NAMES):
        return [names.index(n) for n in S1_NAMES]
    if count == 2:
        return [0, 1]  # undescribed two-band rasters: VV, VH (the Sentinel-1 GRD / RTC order)
    raise InputError(f"{what}: cannot tell which bands are VV and VH (describe them, or give 2-band rasters)")


def load_s1(paths: Sequence[str] | str | None, grid: Grid, what: str,
            weights: str | None = None) -> tuple[np.ndarray, list[str | None]] | None:
    """(values [T1, 2, H, W] float64, timestamps) from `.tec` series (decoded with `weights` when
    their model needs a file) and/or one-date rasters, in time order; InputError when one is not
    on the S2 grid."""
    if not paths:
        return None
    import terracodec
    from terracodec.io.raster import read_stack

    arrays, stamps = [], []
    for p in [paths] if isinstance(paths, str) else paths:
        if str(p).endswith(".tec"):
            decoded = terracodec.decode(str(p), weights=weights)
            g = Grid(decoded.pixels.shape[2], decoded.pixels.shape[3], decoded.pixels.shape[1], "float64",
                     decoded.crs, tuple(decoded.transform)[:6])
            if not _same_grid(g, grid):
                raise InputError(f"{what} {p} is not on the S2 stream's grid")
            for k, descr in enumerate(decoded.band_descriptions):
                idx = _s1_indices(descr, decoded.pixels.shape[1], f"{what} {p}")
                arrays.append(decoded.pixels[k, idx].astype(np.float64))
                stamps.append(decoded.timestamps[k])
            continue
        with read_stack([p]) as stack:
            if not _same_grid(stack.grid, grid):
                raise InputError(f"{what} {p} is not on the S2 stream's grid "
                                 f"({stack.grid.width}x{stack.grid.height} px vs {grid.width}x{grid.height})")
            meta = stack.frames[0]
            idx = _s1_indices(meta.descriptions, stack.grid.count, f"{what} {p}")
            values = stack.read(0, 0, 0, grid.height, grid.width)[idx].astype(np.float64)
            if meta.nodata is not None:
                values[values == meta.nodata] = np.nan
            arrays.append(values)
            stamps.append(meta.timestamp)
    if any(not s for s in stamps):
        raise InputError(f"{what}: a date without its acquisition time (give each raster a DATE or datetime tag)")
    order = sorted(range(len(stamps)), key=lambda k: str(stamps[k]))
    return np.stack([arrays[k] for k in order]), [stamps[k] for k in order]


def _model(weights: Any, seed: int | None, device: str | None) -> Any:
    import torch

    from terracodec.consumers.tessera import TesseraV1, load_tessera

    if weights is not None:
        return load_tessera(weights, device=device or "cpu")
    torch.manual_seed(0 if seed is None else seed)  # random weights: tests and studies only
    return TesseraV1().eval().to(device or "cpu")


def embed_tessera(source: Any, header: StreamHeader, selected: list[int], path: Path, outputs: AtomicOutputs, *,
                  weights: Any, device: str | None, s1_asc: Any, s1_desc: Any, seed: int | None,
                  s1_weights: Any = None) -> list[Path]:
    from terracodec.api.decoding import decode
    from terracodec.consumers.frames import file_band_names, frame_offset, nodata_pixels
    from terracodec.consumers.tessera_inputs import embed_grid, tessera_inputs
    from terracodec.io.writer import RasterWriter

    missing = [header.frames[i].meta.name for i in selected if not header.frames[i].meta.timestamp]
    if missing:
        raise InputError(f"TESSERA needs each frame's date; {', '.join(missing)} has none")
    asc = load_s1(s1_asc, header.grid, "--s1-asc", s1_weights)
    desc = load_s1(s1_desc, header.grid, "--s1-desc", s1_weights)
    model = _model(weights, seed, device)
    decoded = decode(source, frames=selected)
    dn, valid, bands = [], [], None
    for k, i in enumerate(selected):
        frame = header.frames[i]
        file_names = file_band_names(header, i)
        bands = bands or file_names
        if file_names != bands:
            raise InputError("TESSERA needs every frame's bands in one order")
        values = decoded.pixels[k].astype(np.float64)
        valid.append(~nodata_pixels(values, frame.meta.nodata))
        dn.append(values * frame.dn_scale)
    # nodata=0 as well: Sentinel-2's own nodata value, which TESSERA's public code treats as invalid
    inputs = tessera_inputs(np.stack(dn), bands, decoded.timestamps, nodata=0, valid=np.stack(valid),
                            has_offset=[frame_offset(header, i) > 0 for i in selected], s1_asc=asc, s1_desc=desc)
    embedding = np.moveaxis(embed_grid(model, inputs, seed=0 if seed is None else seed), -1, 0)
    grid = Grid(header.grid.height, header.grid.width, embedding.shape[0], "float32", header.grid.crs_wkt,
                header.grid.transform, header.grid.gcps, header.grid.gcp_crs_wkt)
    tags = {"ENCODER": "tessera", "FRAMES": str(len(selected)),
            "FIRST_DATE": str(decoded.timestamps[0]), "LAST_DATE": str(decoded.timestamps[-1]),
            "S1": ", ".join(n for n, s in (("ascending", asc), ("descending", desc)) if s is not None) or "none",
            "WEIGHTS": Path(weights).name if weights else f"random (seed {seed or 0})"}
    meta = FrameMeta(name=path.name, nodata=float("nan"), tags=tags,
                     descriptions=[f"tessera_{k:03d}" for k in range(embedding.shape[0])])
    with outputs:
        outputs.make_dir(path.parent)
        writer = RasterWriter(path, grid, meta, outputs)
        try:
            writer.write(embedding.astype(np.float32), 0, 0)
            writer.close()
        finally:
            writer.abandon()
    return [path]


__all__ = ["embed_tessera", "load_s1"]
