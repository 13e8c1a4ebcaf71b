"""Sentinel-2's +1000 DN baseline offset: detection per frame, the shifted normalisation it
selects, the `dn_offset` it records, and decoding back to the input's own DN.

Real data: the TerraMind S2 L1C examples (three with the offset, two without, MANIFEST.md) and
the bundled eo-learn sample series (2015, no offset) with a +1000 copy made here.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import rasterio
from _rasters import copy_raster
from _toycodec import ToyCodec
from click.testing import CliRunner

from terracodec import api
from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.container import PLAIN_HEADER_MAJOR, ContainerReader, ContainerWriter
from terracodec.demo import SAMPLE_DIR, psnr
from terracodec.errors import InputError, TerracodecWarning
from terracodec.header_compact import expand
from terracodec.io.baseline import (
    b10_median, has_baseline_offset, offset_from_date, offset_from_tags, parse_baseline,
)
from terracodec.io.arrays import ArrayStack
from terracodec.io.meta import FrameMeta
from terracodec.io.raster import read_stack
from terracodec.normalization import BASELINE_OFFSET, Normalization, baseline_shift

#: MANIFEST.md, terramind_examples/S2L1C: B10 ~ 1004-1070 (offset) or ~ 8-60 (none).
TERRAMIND_OFFSET = {"282D_485L_3_3": True, "433D_629L_3_1": True, "609U_541L_3_0": True,
                    "38D_378R_2_3": False, "637U_59R_1_3": False}


# ----------------------------------------------------------------------------- evidence


@pytest.mark.parametrize("text, value", [
    ("04.00", 4.0), ("4.0", 4.0), ("4", 4.0), ("N0400", 4.0), ("0400", 4.0), ("05.09", 5.09),
    ("N0509", 5.09), (" n0211 ", 2.11), ("02.08", 2.08), ("abc", None), ("", None), ("4.0.1", None),
])
def test_parse_baseline(text, value):
    assert parse_baseline(text) == (pytest.approx(value) if value is not None else None)


@pytest.mark.parametrize("tags, band_tags, expected", [
    ({"PROCESSING_BASELINE": "04.00"}, [], True),
    ({"PROCESSING_BASELINE": "N0509"}, [], True),
    ({"PROCESSING_BASELINE": "03.01"}, [], False),
    ({"s2:processing_baseline": "02.14"}, [], False),
    ({"processing_baseline": "garbled"}, [], None),
    ({"BOA_ADD_OFFSET_B2": "-1000"}, [], True),
    ({}, [{}, {"RADIO_ADD_OFFSET": "-1000"}], True),
    ({"BOA_ADD_OFFSET": "0"}, [], False),
    ({"PROCESSING_BASELINE": "03.00", "BOA_ADD_OFFSET": "-1000"}, [], False),  # baseline first
    ({"DATE": "20230101", "SENSOR": "Sentinel-2"}, [{}], None),
])
def test_offset_from_tags(tags, band_tags, expected):
    assert offset_from_tags(FrameMeta("f.tif", tags=tags, band_tags=band_tags)) is expected


@pytest.mark.parametrize("stamp, expected", [
    ("2022-01-25", True), ("2023-06-10T10:11:12Z", True), ("20220124", False),
    ("2015-07-11T10:00:08", False), (None, None), ("yesterday", None), ("2022-13-40", None),
])
def test_offset_from_date(stamp, expected):
    assert offset_from_date(stamp) is expected


class CountingStack:
    """A stack that records every window read through it."""

    def __init__(self, stack):
        self._stack, self.reads = stack, []
        self.frames, self.grid = stack.frames, stack.grid

    def read(self, frame, row_off, col_off, height, width):
        self.reads.append((row_off, height))
        return self._stack.read(frame, row_off, col_off, height, width)


@pytest.mark.parametrize("stem", sorted(TERRAMIND_OFFSET))
def test_b10_rule_classifies_real_terramind_scenes(shared_data, stem):
    path = shared_data / "terramind_examples" / "S2L1C" / f"{stem}.tif"
    with read_stack(path) as stack:
        assert offset_from_tags(stack.frames[0]) is None and stack.frames[0].timestamp is None
        counting = CountingStack(stack)
        assert has_baseline_offset(counting, 0) is TERRAMIND_OFFSET[stem]
        rows = sum(h for _, h in counting.reads)
        assert 0 < rows <= stack.grid.height // 10  # thin strips, never the whole frame
        median = b10_median(stack, 0)
        with rasterio.open(path) as ds:  # the strips agree with the whole band
            assert abs(median - float(np.median(ds.read(11)))) < 100


def test_evidence_order_and_unknown():
    rng = np.random.default_rng(0)
    px = rng.integers(900, 3000, (13, 40, 30)).astype(np.uint16)
    px[10] = rng.integers(5, 40, (40, 30))  # cirrus without the offset
    stack = ArrayStack(px, band_names=list(S2_L1C_BANDS))
    stack.frames[0].timestamp = "2023-05-01"  # the date would say "offset"; B10 goes first
    assert has_baseline_offset(stack, 0) is False
    stack.frames[0].tags = {"PROCESSING_BASELINE": "05.09"}  # tags go before pixels
    assert has_baseline_offset(stack, 0) is True
    px[10][:] = 0  # B10 all nodata-like zeros: no pixel evidence, the date decides
    stack.frames[0].tags = {}
    assert has_baseline_offset(stack, 0) is True
    l2a = ArrayStack(px[[i for i, b in enumerate(S2_L1C_BANDS) if b != "B10"]],
                     band_names=list(S2_L2A_BANDS))
    assert has_baseline_offset(l2a, 0) is None  # no tags, no B10, no date
    unnamed = ArrayStack(px)  # no band names: B10 is not guessed by position
    assert has_baseline_offset(unnamed, 0) is None


def test_shift_rules_and_shifted_normalization():
    plain, no_offset = Normalization.ssl4eo_l1c(), Normalization.ssl4eo_l1c().without_baseline_offset()
    assert baseline_shift(no_offset.name, True) == BASELINE_OFFSET
    assert baseline_shift(no_offset.name, False) == 0 and baseline_shift(no_offset.name, None) == 0
    assert baseline_shift(plain.name, False) == -BASELINE_OFFSET
    assert baseline_shift(plain.name, True) == 0 and baseline_shift("ssl4eo-s12-l2a", None) == 0
    assert baseline_shift("identity", True) == 0 and baseline_shift("custom", False) == 0
    assert no_offset.shifted(BASELINE_OFFSET).mean == pytest.approx(plain.mean)
    assert no_offset.shifted(0) is no_offset
    dn = np.full((13, 2, 2), 2000, np.uint16)
    np.testing.assert_allclose(no_offset.shifted(1000).normalize(dn + 1000), no_offset.normalize(dn),
                               atol=1e-5)


# ----------------------------------------------------------------------------- encode / decode


@pytest.fixture(scope="module")
def sample_pair(tmp_path_factory):
    """The first two bundled sample dates (2015, no offset) and +1000 copies (nodata 0 kept)."""
    tmp = tmp_path_factory.mktemp("baseline")
    files = sorted(SAMPLE_DIR.glob("*.tif"))[:2]

    def add_offset(px):
        px[px != 0] += 1000

    offset = [copy_raster(f, tmp / f"offset_{f.name}", edit=add_offset) for f in files]
    return files, offset


def _pixels(paths):
    out = []
    for p in paths:
        with rasterio.open(p) as ds:
            out.append(ds.read())
    return np.stack(out)


def _code(paths, **kw):
    """(bytes, per-frame dn_offset, PSNR-10k of the decode against the inputs, mean error)."""
    blob = api.encode(paths, model="tec-fp-s2l1c", quality=3, **kw)
    x, y = _pixels(paths), np.asarray(api.decode(blob))
    valid = x != 0
    offsets = [f["dn_offset"] for f in api.info(blob)["frame_info"]]
    bias = float(np.mean(y[valid].astype(np.float64) - x[valid]))
    return blob, offsets, psnr(x, y, 10000, valid), bias


def test_offset_frames_code_as_well_as_plain_ones(sample_pair):
    plain, offset = sample_pair
    ref_blob, ref_offsets, ref_psnr, _ = _code(plain)
    assert ref_offsets == [0, 0]
    blob, offsets, p, bias = _code(offset)  # auto: B10 ~ 1010 DN although the date says 2015
    assert offsets == [BASELINE_OFFSET] * 2
    assert abs(p - ref_psnr) < 0.1 and abs(bias) < 20  # decoded in the input's units
    # Written as major 7 (the compact layout, chained image payloads; dn_offset known), which
    # 1.x readers refuse.
    assert api.info(blob)["format_version"] == api.info(ref_blob)["format_version"] == "7.0"
    assert abs(len(blob) - len(ref_blob)) < 0.02 * len(ref_blob)
    # Forced off, the same offset frames land ~1 std high in every band: clearly worse.
    forced_blob, forced_offsets, forced_psnr, forced_bias = _code(offset, baseline_offset=False)
    assert forced_offsets == [0, 0]
    assert forced_psnr < ref_psnr - 10 and len(forced_blob) > 1.2 * len(ref_blob)
    # Forced on for frames that lack the offset: recorded, decoded in their units, but worse.
    _, yes_offsets, yes_psnr, _ = _code(plain, baseline_offset=True)
    assert yes_offsets == [BASELINE_OFFSET] * 2 and yes_psnr < ref_psnr - 10


def test_mixed_series_gets_one_shift_per_frame(sample_pair):
    plain, offset = sample_pair
    _, offsets, p, bias = _code([plain[0], offset[1]])
    assert offsets == [0, BASELINE_OFFSET]
    _, _, ref_psnr, _ = _code(plain)
    assert abs(p - ref_psnr) < 0.1 and abs(bias) < 20


def test_array_input_finds_b10_by_name_or_by_the_position_it_is_coded_at(sample_pair):
    """Unnamed bands are coded as the model's bands by position (with a warning), so band 10
    is the B10 the model sees: detection reads it there; bands named otherwise have no B10."""
    _, offset = sample_pair
    x = _pixels(offset[:1])[0]
    named = api.info(api.encode(x, model="tec-fp-s2l1c", band_names=list(S2_L1C_BANDS), nodata=0))
    with pytest.warns(TerracodecWarning, match="do not name their bands"):
        unnamed = api.info(api.encode(x, model="tec-fp-s2l1c", nodata=0))
    assert named["frame_info"][0]["dn_offset"] == BASELINE_OFFSET
    assert unnamed["frame_info"][0]["dn_offset"] == BASELINE_OFFSET
    l2a = [b for b in S2_L1C_BANDS if b != "B10"]
    with pytest.warns(TerracodecWarning, match="cannot tell"):  # no B10, no tags, no date
        no_b10 = api.info(api.encode(np.delete(x, 10, axis=0), model="tec-fp-s2l2a", band_names=l2a, nodata=0))
    assert no_b10["frame_info"][0]["dn_offset"] == 0


def test_model_with_offset_statistics_shifts_down_for_old_frames(sample_pair):
    """A model on plain SSL4EO-S12 statistics (TerraCodec v1) and a 2015 frame: means -1000."""
    plain, offset = sample_pair
    toy = ToyCodec(band_names=S2_L1C_BANDS)
    toy.config["normalization"] = Normalization.ssl4eo_l1c().to_config()
    tolerance = toy.step / 2 * max(Normalization.ssl4eo_l1c().std) + 0.5
    for paths, expected in ((plain, -BASELINE_OFFSET), (offset, 0.0)):
        blob = api.encode(paths, model=toy, tile_size=64)
        assert [f["dn_offset"] for f in api.info(blob)["frame_info"]] == [expected] * 2
        x, y = _pixels(paths), np.asarray(api.decode(blob, model=toy))
        assert np.abs(y.astype(np.int64) - x).max() <= tolerance


def _without_dn_offset(blob: bytes) -> bytes:
    """The stream re-written with a header as older writers made it (no `dn_offset` keys)."""
    reader = ContainerReader(blob)
    header = expand(reader.header)  # a major 1 file holds the full schema
    for f in header["frames"]:
        f.pop("dn_offset")
        f.pop("dn_scale", None)
    out = io.BytesIO()
    frames = len(header["frames"])
    writer = ContainerWriter(out, header, frames, len(reader.entries) // frames, major=PLAIN_HEADER_MAJOR)
    for fi, ti in sorted(reader.entries):
        writer.write_tile(fi, ti, reader.read_tile(fi, ti))
    writer.close()
    reader.close()
    return out.getvalue()


def test_old_header_without_the_field_decodes(sample_pair):
    plain, offset = sample_pair
    blob = api.encode(plain, model="tec-fp-s2l1c")
    old = _without_dn_offset(blob)
    assert b"dn_offset" in json.dumps(expand(ContainerReader(blob).header)).encode() and b"dn_offset" not in old
    np.testing.assert_array_equal(np.asarray(api.decode(old)), np.asarray(api.decode(blob)))
    # The field is what brings offset frames back to their own units: without it they come
    # back 1000 DN low.
    shifted = api.encode(offset, model="tec-fp-s2l1c")
    y, y_old = (np.asarray(api.decode(b)).astype(np.int64) for b in (shifted, _without_dn_offset(shifted)))
    assert np.median(y - y_old) == BASELINE_OFFSET


def test_api_refuses_a_bad_mode(sample_pair):
    with pytest.raises(InputError, match="baseline_offset"):
        api.encode(sample_pair[0], model="tec-fp-s2l1c", baseline_offset="maybe")


# ----------------------------------------------------------------------------- CLI


def tec(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_baseline_offset_option_and_info(sample_pair, tmp_path):
    _, offset = sample_pair
    out = tmp_path / "s.tec"
    r = tec("encode", offset[0], "-o", out)
    assert r.exit_code == 0, r.output
    assert "baseline offset" in r.stdout and "+1000 DN" in r.stdout
    r = tec("info", out)
    assert r.exit_code == 0 and "normalisation means +1000 DN" in r.stdout
    assert "ssl4eo-s12-l2a+b10-no-offset" in r.stdout  # tec-elic-s2l1c: L2A statistics plus B10
    r = tec("encode", offset[0], "-o", out, "--baseline-offset", "no", "--overwrite")
    assert r.exit_code == 0 and "baseline offset" not in r.stdout
    assert api.info(out)["frame_info"][0]["dn_offset"] == 0


def test_cli_invalid_baseline_offset_is_a_one_line_error(sample_pair, tmp_path):
    out = tmp_path / "s.tec"
    r = tec("encode", sample_pair[0][0], "-o", out, "--baseline-offset", "maybe")
    assert r.exit_code == 1
    err = r.stderr.strip()
    assert err.startswith("error: --baseline-offset must be auto, yes or no") and "\n" not in err
    assert not out.exists()
