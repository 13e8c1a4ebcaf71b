"""Container major 5 (the compact layout): a small chip's fixed cost, the frozen preset
dictionary, and the compact header losing nothing (issue 14: "a compact container")."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio

import terracodec
from terracodec.container import ContainerReader
from terracodec.header import StreamHeader
from terracodec.header_compact import compact, expand
from terracodec.layout_compact import HEADER_DICTIONARY

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


def _chip(src: Path, tmp_path: Path) -> Path:
    """A 264 x 264 x 12 L2A chip, as ML archives hold them (SSL4EO-S12: 264 px): a real L2A
    file's pixels mirrored out to 264 px, with the file's georeferencing, band names and tags."""
    with rasterio.open(src) as ds:
        px, profile, tags, names = ds.read(), dict(ds.profile), ds.tags(), ds.descriptions
    px = np.pad(px, ((0, 0), (0, 264 - px.shape[1]), (0, 264 - px.shape[2])), mode="reflect")
    profile.update(height=264, width=264)
    path = tmp_path / "chip.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(px)
        ds.descriptions = names
        ds.update_tags(**tags)
    return path


def test_a_single_chip_costs_at_most_300_bytes_beside_its_payload(shared_data, tmp_path) -> None:
    """Header, index, preamble and footer of a single-frame chip at the lowest ELIC quality
    (major 3 spent 1,061 bytes on them for such a chip, 27 % of its payload)."""
    out = tmp_path / "chip.tec"
    src = _chip(shared_data / "terramind_examples" / "S2L2A" / "282D_485L_3_3.tif", tmp_path)
    info = terracodec.encode(src, out, model="tec-elic-s2l2a", quality=1, baseline_offset=False)
    with ContainerReader(out) as reader:
        payload = sum(e.size for e in reader.entries.values())
    fixed = out.stat().st_size - payload
    # 7.0: image payloads chained; the centred model's frame carries its 12 band shifts
    assert info["format_version"] == "7.0" and fixed <= 300, fixed
    with rasterio.open(tmp_path / "chip.tif") as ds:
        original = ds.read()
    decoded = terracodec.decode(out)
    assert decoded.pixels[0].shape == original.shape and decoded.crs and decoded.band_descriptions[0][0] == "B01"


def test_the_preset_dictionary_never_changes() -> None:
    """Major 5 headers are compressed with it: changing it would make every file unreadable."""
    assert hashlib.sha256(HEADER_DICTIONARY).hexdigest()[:16] == "94ec7f7cf926c2fa"


@pytest.mark.parametrize("model", ["tec-fp-s2l1c", "tec-tt-small"])
def test_compact_headers_restore_the_full_header(model, tmp_path) -> None:
    stream = terracodec.encode(SAMPLE[:2], model=model)
    with ContainerReader(stream) as reader:
        stored = reader.header
    full = StreamHeader.from_json(expand(stored))
    assert StreamHeader.from_json(expand(compact(full.to_json()))) == full
    assert "crs_wkt" not in stored["grid"] and stored["grid"]["epsg"] == 32633  # named exactly
    assert stored["normalization"] == {"name": "ssl4eo-s12-l1c-no-offset"}


def test_a_frame_lacking_bands_stores_only_what_differs(tmp_path) -> None:
    """A 10-band L2A chip coded by a 12-band centred model: its per-band defaults are counted over
    the file's 10 bands and left out, its band names are the model's (major 7)."""
    from terracodec.bands import S2_L2A_BANDS

    names = [b for b in S2_L2A_BANDS if b not in ("B01", "B09")]
    rng = np.random.default_rng(0)
    x = (1000 + 300 * rng.random((1, 10, 64, 64))).astype(np.uint16)
    stream = terracodec.encode(x, model="tec-fp-s2l2a", quality=1, band_names=names)
    with ContainerReader(stream) as reader:
        stored, major = reader.header, reader.version[0]
    frame = stored["frames"][0]
    assert major == 7 and frame["band_order"].count(-1) == 2 and frame.get("named") is True
    assert not {"descriptions", "offsets", "scales", "units", "band_tags"} & set(frame), frame
    full = StreamHeader.from_json(expand(stored))
    assert list(full.frames[0].meta.descriptions) == names and list(full.frames[0].meta.scales) == [1.0] * 10
    assert StreamHeader.from_json(expand(compact(full.to_json()))) == full
    assert np.asarray(terracodec.decode(stream).pixels).shape == (1, 10, 64, 64)
