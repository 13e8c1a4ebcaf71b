"""Band centring (terracodec.centring) and frames that lack some of a centred model's bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from terracodec import api
from terracodec.bands import ABSENT, S2_L1C_BANDS, S2_L2A_BANDS, match_bands
from terracodec.container import CHAINED_MAJOR, ContainerReader
from terracodec.errors import CorruptStreamError, InputError
from terracodec.header import StreamHeader
from terracodec.normalization import Normalization
from terracodec.zoo import load_model

SAMPLE = Path(__file__).resolve().parents[1] / "terracodec" / "data" / "sample" / "S2L1C_20150711.tif"
#: What a Level-2A product of the same place looks like to a Level-1C model: path radiance gone,
#: so the short-wave bands hundreds of DN lower (B01..B12 without B10).
L2A_LIKE_SHIFT = np.array([-900, -650, -500, -350, -250, -120, -80, -60, -60, 300, -40, -30])


def _l1c_sample() -> np.ndarray:
    with rasterio.open(SAMPLE) as ds:
        px = ds.read().astype(np.int64)
    keep = [i for i, b in enumerate(S2_L1C_BANDS) if b != "B10"]
    return px[keep]


def _model(centre: bool, min_bands: int | None = None):
    model = load_model("tec-fp-s2l2a", 3).eval()
    model.config.pop("centre", None)
    model.config.pop("min_bands", None)
    if centre:
        norm = Normalization.from_config(model.config["normalization"])
        x = norm.normalize(_l1c_sample().astype(np.float64))
        model.config["centre"] = [float(v) for v in np.asarray(x).mean(axis=(1, 2))]
    if min_bands is not None:
        model.config["min_bands"] = min_bands
    return model


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1e8 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_shifted_bands_moves_each_mean():
    norm = Normalization((10.0, 20.0), (2.0, 4.0))
    assert norm.shifted_bands([]) is norm
    moved = norm.shifted_bands([1.0, -3.0])
    assert moved.mean == (11.0, 17.0) and moved.std == norm.std
    with pytest.raises(InputError):
        norm.shifted_bands([1.0])


def test_centring_undoes_a_processing_level_shift():
    """The same scene with L2A-like band offsets: centred, it codes as well as the original;
    uncentred, the offsets cost dB (the cause of the 32 dB ceiling on L2A)."""
    x = _l1c_sample()
    shifted = np.clip(x + L2A_LIKE_SHIFT[:, None, None], 1, 65535).astype(np.uint16)
    results = {}
    for centre in (False, True):
        model = _model(centre)
        blob = api.encode(shifted[None], model=model, band_names=list(S2_L2A_BANDS))
        results[centre] = _psnr(np.asarray(api.decode(blob, model=model))[0], shifted)
    original = _model(False)
    blob = api.encode(x.astype(np.uint16)[None], model=original, band_names=list(S2_L2A_BANDS))
    reference = _psnr(np.asarray(api.decode(blob, model=original))[0], x)
    assert results[True] > results[False] + 1.0
    assert results[True] > reference - 1.0


def test_centred_streams_record_their_shift_in_major_7(tmp_path):
    """Image streams are major 7 (chained payloads) centred or not; 7 carries the shifts as 6 does."""
    x = _l1c_sample().astype(np.uint16)
    path = tmp_path / "c.tec"
    described = api.encode(x[None], path, model=_model(True), band_names=list(S2_L2A_BANDS))
    shift = described["frame_info"][0]["band_shift"]
    assert len(shift) == 12 and all(float(v).is_integer() for v in shift)
    assert max(abs(v) for v in shift) <= 10  # the sample is its own centre (means from a subsample)
    with open(path, "rb") as f:
        assert ContainerReader(f).version[0] == CHAINED_MAJOR
    plain = api.encode(x[None], tmp_path / "p.tec", model=_model(False), band_names=list(S2_L2A_BANDS))
    assert plain["frame_info"][0]["band_shift"] == []
    with open(tmp_path / "p.tec", "rb") as f:
        assert ContainerReader(f).version[0] == CHAINED_MAJOR


def test_band_shift_is_decoded_from_the_stream_not_recomputed():
    """The decoder applies the stored shift: the same bytes decode alike with any model config."""
    x = _l1c_sample().astype(np.uint16)
    blob = api.encode(x[None], model=_model(True), band_names=list(S2_L2A_BANDS))
    a = np.asarray(api.decode(blob, model=_model(True)))
    b = np.asarray(api.decode(blob, model=_model(False)))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [[1.0] * 11, [float("nan")] * 12, [2e9] * 12, "x"])
def test_malformed_band_shift_is_a_corrupt_stream(bad):
    x = _l1c_sample().astype(np.uint16)
    blob = api.encode(x[None], model=_model(True), band_names=list(S2_L2A_BANDS))
    import io

    d = ContainerReader(io.BytesIO(blob)).header
    from terracodec.header_compact import expand

    full = expand(d)
    full["frames"][0]["band_shift"] = bad
    with pytest.raises(CorruptStreamError):
        StreamHeader.from_json(full)


def test_match_bands_marks_absent_bands_only_when_allowed():
    ten = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    order = match_bands(ten, S2_L2A_BANDS, 12, min_present=6)
    assert order[0] == ABSENT and order[9] == ABSENT and order[1] == 0 and order[11] == 9
    with pytest.raises(InputError, match="lacks B01"):
        match_bands(ten, S2_L2A_BANDS, 12)
    with pytest.raises(InputError, match="at least 11"):
        match_bands(ten, S2_L2A_BANDS, 12, min_present=11)
    with pytest.raises(InputError, match="does not code"):
        match_bands(ten + ["B10"], S2_L2A_BANDS, 12, min_present=6)


TEN = ["B12", "B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11"]


def _ten_band_file(tmp_path: Path, names: list[str] = TEN) -> tuple[Path, np.ndarray]:
    """A real file of the sample's bands `names` (default: without B01, B09, B10, shuffled)."""
    with rasterio.open(SAMPLE) as ds:
        px = ds.read()
        profile = dict(ds.profile, count=len(names))
    data = px[[S2_L1C_BANDS.index(n) for n in names]]
    path = tmp_path / f"bands{len(names)}.tif"
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        ds.descriptions = names
    return path, data


def test_a_frame_without_some_bands_codes_and_decodes_its_own_bands(tmp_path):
    path, data = _ten_band_file(tmp_path)
    model = load_model("tec-fp-s2l2a", 3).eval()  # shipped: trained on band subsets (config min_bands)
    assert model.config["min_bands"] <= 10
    described = api.encode(path, tmp_path / "ten.tec", model=model)
    assert described["bands"] == 10
    shifts = described["frame_info"][0]["band_shift_by_name"]  # what `tec info` shows
    assert sorted(shifts) == sorted(TEN) and any(shifts.values())
    out = np.asarray(api.decode(tmp_path / "ten.tec", model=model))[0]
    assert out.shape == data.shape
    assert _psnr(out, data) > 30.0
    # the absent bands cost little: about the bytes of the same place with all 12 bands (the
    # shipped model: 1123 vs 1082 bytes at quality 3), not the bytes of two more bands of texture
    twelve, _ = _ten_band_file(tmp_path, list(S2_L2A_BANDS))
    full = api.encode(twelve, tmp_path / "twelve.tec", model=model)
    assert described["bytes"] < 1.1 * full["bytes"]


def test_a_model_without_band_subsets_refuses_the_frame(tmp_path):
    path, _ = _ten_band_file(tmp_path)
    with pytest.raises(InputError, match="lacks B01"):
        api.encode(path, tmp_path / "x.tec", model=_model(True))
    assert not (tmp_path / "x.tec").exists()


@pytest.mark.parametrize("known", [(5,), (5, 6)])
def test_an_older_reader_refuses_a_centred_stream(monkeypatch, known):
    """What a terracodec before major 6 (or 7) does with a centred image stream: one-line
    refusal, not a decode with the wrong means or a misread payload."""
    import io

    import terracodec.container as container

    x = _l1c_sample().astype(np.uint16)
    blob = api.encode(x[None], model=_model(True), band_names=list(S2_L2A_BANDS))
    monkeypatch.setattr(container, "READ_MAJORS", tuple(m for m in container.READ_MAJORS if m <= 4 or m in known))
    with pytest.raises(CorruptStreamError, match=r"unsupported .tec format version 7\.0"):
        ContainerReader(io.BytesIO(blob))
