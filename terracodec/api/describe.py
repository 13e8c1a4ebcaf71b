"""`info`: what a stream holds, read from its header and index only (no model, no torch)."""

from __future__ import annotations

import os
from typing import Any

from terracodec.api.stream import open_stream
from terracodec.zoo.table import describe


def _epsg(wkt: str | None) -> int | None:
    if not wkt:
        return None
    from terracodec.io.gdal import parse_crs

    return parse_crs(wkt).to_epsg()  # the header check parsed it already


def info(source: str | os.PathLike | bytes) -> dict[str, Any]:
    """What a stream holds: shape, dtype, model, size, rate, georeferencing, per-frame sizes."""
    reader, header = open_stream(source)
    with reader:
        g = header.grid
        size = reader.file_size
        pixels = g.height * g.width * g.count
        import numpy as np

        index = reader.load_index()
        sizes = index["code_len"].astype(np.int64) + index["patch_len"].astype(np.int64)
        frame_bytes = np.bincount(index["frame"], weights=sizes, minlength=header.frame_count)
        frame_bytes = [int(b) for b in frame_bytes]
        return {
            "format_version": "%d.%d" % reader.version,
            "frames": header.frame_count,
            "height": g.height,
            "width": g.width,
            "bands": g.count,
            "dtype": g.dtype,
            "model": header.codec.name,
            "model_description": describe(header.codec.name),
            "quality": header.codec.quality,
            "normalization": header.normalization.get("name"),
            "kind": header.codec.kind,
            "weights_hash": header.codec.weights_hash,
            "coder_platform": header.codec.coder_platform or None,
            "band_names": header.codec.band_names,
            "bytes": size,
            "bpppb": 8.0 * size / (pixels * header.frame_count),
            "crs": g.crs_wkt,
            "epsg": _epsg(g.crs_wkt),
            "transform": list(g.transform),
            "gcps": len(g.gcps) if g.gcps else 0,
            "tile_size": header.tile_size,
            "tiles_per_frame": header.tiles_per_frame,
            "valid_range": list(header.valid_range),
            "writer": header.writer,
            "frame_info": [
                {
                    "index": i,
                    "name": f.meta.name,
                    "timestamp": f.meta.timestamp,
                    "nodata": f.meta.nodata,
                    "dn_offset": f.dn_offset,
                    "dn_scale": f.dn_scale,
                    "band_shift": list(f.band_shift),
                    # the shifts of the bands the frame has, by the model's band names
                    "band_shift_by_name": {n: v for n, v, k in zip(header.codec.band_names or [],
                                                                     f.band_shift, f.band_order) if k >= 0},
                    "band_descriptions": f.meta.descriptions,
                    "filled": f.filled,
                    "bytes": frame_bytes[i],
                    "bpppb": 8.0 * frame_bytes[i] / pixels,
                }
                for i, f in enumerate(header.frames)
            ],
        }


__all__ = ["info"]
