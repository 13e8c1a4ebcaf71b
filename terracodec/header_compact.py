"""The compact header of container major 5: the full header (`StreamHeader.to_json`) with
everything a reader can restore left out.

Archives of ML chips (SSL4EO-S12, BigEarthNet) are millions of small files, where a header of
a kilobyte costs more than the payload's savings over JPEG2000. So the writer drops what is a
default (empty tags, unit scales, zero offsets, identity band order, `dn_offset` 0, a stream's
default valid range, the model's default band names...), names a registered normalisation
instead of listing its 24 numbers, and names the CRS by its EPSG code where that code is exactly
the same CRS. `expand` puts every field back before the header's checks run, so a reader sees
the same header either way (docs/FORMAT.md, Versioning).
"""

from __future__ import annotations

import copy
from typing import Any

from terracodec.bands import default_band_names
from terracodec.exact import default_valid_range
from terracodec.presets import preset_stats


def _epsg_of(wkt: str | None) -> int | None:
    """The EPSG code of a CRS when that code is exactly the same CRS, else None."""
    if not wkt:
        return None
    from terracodec.io.gdal import parse_crs

    try:
        crs = parse_crs(wkt)
        code = crs.to_epsg()
        return code if code is not None and parse_crs(f"EPSG:{code}") == crs else None
    except ValueError:
        return None


def compact(full: dict) -> dict:
    """What major 5 stores of a full header dict."""
    h = copy.deepcopy(full)
    codec, grid, bands = h["codec"], h["grid"], h["codec"]["bands"]
    if codec.get("kind") == "image":
        del codec["kind"]
    if not codec.get("coder_platform"):
        codec.pop("coder_platform", None)
    names = codec.get("band_names")
    defaults = default_band_names(bands)
    if names is not None and defaults is not None and list(names) == list(defaults):
        del codec["band_names"]
    norm = h["normalization"]
    stats = preset_stats(str(norm.get("name", "")), bands)
    if stats is not None and (tuple(norm.get("mean", ())), tuple(norm.get("std", ()))) == stats and len(norm) == 3:
        h["normalization"] = {"name": norm["name"]}
    code = _epsg_of(grid.get("crs_wkt"))
    if code is not None:
        grid["epsg"] = code
        del grid["crs_wkt"]
    if list(h["valid_range"]) == list(default_valid_range(grid["dtype"])):
        del h["valid_range"]
    h["tiling"] = {"tile_size": h["tiling"]["tile_size"]}
    h.pop("patch", None)
    for f in h["frames"]:
        _compact_frame(f, bands, names)
    return h


def _file_bands(order: Any, bands: int) -> int:
    """Bands of a frame's file: the model's, less those it lacks (`band_order` -1)."""
    if isinstance(order, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in order):
        return sum(1 for i in order if i >= 0)
    return bands


def _defaults(n: int) -> tuple[tuple[str, Any], ...]:
    return (("tags", {}), ("band_tags", [{}] * n), ("scales", [1.0] * n), ("offsets", [0.0] * n),
            ("units", [None] * n), ("timestamp", None), ("nodata", None), ("dn_offset", 0.0), ("dn_scale", 1.0))


def _compact_frame(f: dict, bands: int, model_names: list[str] | None) -> None:
    order = f.get("band_order")
    n = _file_bands(order, bands)
    if order == list(range(bands)):
        del f["band_order"]
    else:
        order = order or list(range(bands))
    if model_names is not None and f.get("descriptions") is not None and len(f["descriptions"]) == n and all(
        f["descriptions"][i] == model_names[k] for k, i in enumerate(order) if i >= 0
    ):
        del f["descriptions"]  # the model's names, in the file's order
        f["named"] = True
    elif f.get("descriptions") == [None] * n:
        del f["descriptions"]
    for key, default in _defaults(n):
        if key in f and f[key] == default:
            del f[key]


def expand(h: Any) -> Any:
    """The full header dict of a major 5 header (anything malformed is left for the header's
    checks to refuse)."""
    if not isinstance(h, dict):
        return h
    h = copy.deepcopy(h)
    codec, grid = h.get("codec"), h.get("grid")
    if not isinstance(codec, dict) or not isinstance(grid, dict):
        return h
    bands = codec.get("bands")
    if not isinstance(bands, int) or isinstance(bands, bool) or not 0 < bands <= 1 << 16:
        return h
    codec.setdefault("kind", "image")
    codec.setdefault("coder_platform", "")
    if "band_names" not in codec:
        defaults = default_band_names(bands)
        codec["band_names"] = list(defaults) if defaults else None
    norm = h.get("normalization")
    if isinstance(norm, dict) and set(norm) == {"name"}:
        stats = preset_stats(str(norm["name"]), bands)
        if stats is not None:
            h["normalization"] = {"name": norm["name"], "mean": list(stats[0]), "std": list(stats[1])}
    if "epsg" in grid:
        code = grid.pop("epsg")
        grid.setdefault("crs_wkt", _epsg_wkt(code))  # both given: the WKT stands (and is checked)
    if "valid_range" not in h and isinstance(grid.get("dtype"), str):
        try:
            h["valid_range"] = list(default_valid_range(grid["dtype"]))
        except Exception:  # an unknown dtype: the header's checks say so
            pass
    if isinstance(h.get("tiling"), dict):
        h["tiling"].setdefault("padding", "edge")
    h.setdefault("patch", "zlib")
    for f in h.get("frames") or []:
        if isinstance(f, dict):
            _expand_frame(f, bands, codec.get("band_names"))
    return h


def _expand_frame(f: dict, bands: int, model_names: Any) -> None:
    f.setdefault("band_order", list(range(bands)))
    named = f.pop("named", False)
    order = f["band_order"]
    n = _file_bands(order, bands)
    if named and isinstance(model_names, list) and isinstance(order, list) and len(model_names) == len(order) and \
            sorted(i for i in order if isinstance(i, int) and i >= 0) == list(range(n)):
        descriptions: list[Any] = [None] * n
        for k, i in enumerate(order):
            if i >= 0:
                descriptions[i] = model_names[k]
        f.setdefault("descriptions", descriptions)
    f.setdefault("descriptions", [None] * n)
    for key, default in _defaults(n):
        f.setdefault(key, copy.deepcopy(default))


def _epsg_wkt(code: Any) -> Any:
    if isinstance(code, bool) or not isinstance(code, int):
        return code  # the header's checks refuse it
    from terracodec.io.gdal import parse_crs

    try:
        return parse_crs(f"EPSG:{code}").to_wkt()
    except ValueError:
        return f"EPSG:{code} (unknown)"


__all__ = ["compact", "expand"]
