"""TESSERA v1 against the public code (fixtures from tests/fixtures/make_tessera_fixtures.py, made
in a separate virtual environment with the public `tessera_infer`), loading users' checkpoints,
and building its inputs from a decoded series (synthetic, and real WorldCereal S2 + S1)."""

from __future__ import annotations

import json
import runpy
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import torch
from _tinytt import one_thread  # noqa: F401  (autouse fixture: small products, one thread)
from safetensors.torch import load_file, save_file

from terracodec.consumers.tessera import (
    S1_MEAN, S1_STD, S2_BANDS, S2_MEAN, S2_STD, PixelSeries, TesseraConfig, TesseraV1, config_from_state,
    embed_pixels, load_tessera,
)
from terracodec.consumers.tessera_inputs import embed_grid, s1_series, s2_series, tessera_inputs, tessera_sar
from terracodec.errors import InputError, ModelError

FIXTURES = Path(__file__).parent / "fixtures"
DIR = FIXTURES / "tessera"
META = json.loads((DIR / "meta.json").read_text())
WEIGHTS = DIR / "weights.safetensors"
#: WorldCereal sites with both the 10 m and the 20 m S2 bands (MANIFEST.md section 8).
SITES = ("00002806639B424A", "0000280849BAC91C")


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in load_file(str(DIR / "tensors.safetensors")).items()}


@pytest.fixture(scope="module")
def small() -> TesseraV1:
    return load_tessera(WEIGHTS)


def _forward(model: TesseraV1, ref: dict, prefix: str) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(ref[f"{prefix}.s2_x"]), torch.from_numpy(ref[f"{prefix}.s1_x"])).numpy()


def _tile_inputs(ref: dict, name: str):
    """The public tile's arrays as a decoded series would hold them: [T, C, H, W], band names,
    ISO timestamps, the public mask as the caller's validity."""
    a = {k.split(".", 1)[1]: v for k, v in ref.items() if k.startswith(f"{name}.")}
    stamps = META["tiles"][name]["timestamps"]
    sar = {f"s1_{d}": (a[f"sar_{d}"].transpose(0, 3, 1, 2), stamps[d]) for d in ("asc", "desc") if stamps[d]}
    return tessera_inputs(a["bands"].transpose(0, 3, 1, 2), S2_BANDS, stamps["s2"], valid=a["masks"] > 0,
                          s1_units="tessera", **sar), a["embedding"]


def test_loaded_model_is_the_reduced_fixture_model(small):
    assert small.config == TesseraConfig(16, 4, 2, 1, 96, 96, "concat")
    assert not small.training


def test_model_matches_the_public_code(ref, small):
    assert float(np.abs(_forward(small, ref, "packed") - ref["packed.out"]).max()) < 1e-4


def test_heads_are_not_in_the_shapes_but_change_the_output(ref):
    other = load_tessera(WEIGHTS, heads=2)
    assert float(np.abs(_forward(other, ref, "packed") - ref["packed.out"]).max()) > 1e-3


def test_published_size_has_the_public_keys_and_arithmetic(ref):
    model = TesseraV1()
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(shapes.items()) == list(META["published_shapes"].items())
    seeded_state = runpy.run_path(str(FIXTURES / "make_tessera_fixtures.py"))["seeded_state"]
    model.load_state_dict(seeded_state(shapes, META["seed"]), strict=True)
    assert float(np.abs(_forward(model, ref, "published") - ref["published.out"]).max()) < 1e-4


@pytest.mark.parametrize("name", sorted(META["tiles"]))
def test_tiles_embed_as_the_public_process_tile(ref, small, name):
    inputs, theirs = _tile_inputs(ref, name)
    tile = META["tiles"][name]
    ours = embed_grid(small, inputs, seed=tile["seed"], repeats=tile["repeat_times"], batch_size=META["batch_size"])
    assert ours.shape == theirs.shape
    assert float(np.abs(ours - theirs).max()) < 1e-4
    assert not ours[0, 1].any() and ours[0, 0].any()  # no data at all: zeros; never valid: embedded


def test_sampling_is_seeded(ref, small):
    inputs, _ = _tile_inputs(ref, "full")
    first = embed_grid(small, inputs, seed=3)
    assert np.array_equal(first, embed_grid(small, inputs, seed=3))
    assert float(np.abs(first - embed_grid(small, inputs, seed=4)).max()) > 1e-3


def test_absent_s1_is_the_public_stand_in(ref, small):
    inputs, _ = _tile_inputs(ref, "full")
    n = inputs.s2.values.shape[0]
    stand_in = PixelSeries(np.broadcast_to((0 - S1_MEAN) / (S1_STD + np.float32(1e-9)), (n, 1, 2)),
                           np.array([180]), np.zeros((n, 1), bool))
    empty = PixelSeries(np.zeros((n, 0, 2), np.float32), np.zeros(0, int), np.zeros((n, 0), bool))
    none = embed_pixels(small, inputs.s2, seed=5)
    assert np.array_equal(none, embed_pixels(small, inputs.s2, stand_in, stand_in, seed=5))
    assert np.array_equal(none, embed_pixels(small, inputs.s2, empty, None, seed=5))
    with_sar = embed_pixels(small, inputs.s2, inputs.s1_asc, inputs.s1_desc, seed=5)
    assert float(np.abs(none - with_sar).max()) > 1e-3


def _public_checkpoint(tmp_path: Path) -> Path:
    """The public training checkpoint's layout: `model_state` of the whole SSL model, compiled."""
    state = {f"_orig_mod.{k}": v for k, v in load_file(str(WEIGHTS)).items()}
    state["_orig_mod.projector.net.0.weight"] = torch.randn(8, 16)
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 3, "model_state": state, "optimizer_state": {"state": {}, "lr": 0.01}}, path)
    return path


def test_loads_pt_files(tmp_path, ref):
    bare = tmp_path / "bare.pt"
    torch.save(load_file(str(WEIGHTS)), bare)
    for path in (bare, _public_checkpoint(tmp_path)):
        assert float(np.abs(_forward(load_tessera(path), ref, "packed") - ref["packed.out"]).max()) < 1e-4


def _wrong_states() -> list[dict[str, torch.Tensor]]:
    good = load_file(str(WEIGHTS))
    terrafm = {"cls_token": torch.zeros(1, 1, 768), "patch_embed.proj.weight": torch.zeros(768, 12, 16, 16),
               "blocks.0.attn.qkv.weight": torch.zeros(2304, 768)}
    return [
        terrafm,
        {"weight": torch.randn(4, 4), "bias": torch.randn(4)},
        {**good, "dim_reducer.0.bias": torch.zeros(7)},
        {**good, "s2_backbone.embedding.0.weight": torch.zeros(64, 12)},
        {k: v for k, v in good.items() if "gru_cell.W_hh" not in k},
        {**good, "s1_backbone.attn_pool.query.weight": torch.zeros(64)},
    ]


@pytest.mark.parametrize("case", range(len(_wrong_states())))
def test_wrong_checkpoints_are_one_line_model_errors(tmp_path, case):
    path = tmp_path / "wrong.safetensors"
    save_file(_wrong_states()[case], str(path))
    with pytest.raises(ModelError) as info:
        load_tessera(path)
    assert "\n" not in str(info.value) and ("TESSERA" in str(info.value) or "fit" in str(info.value))


def test_unreadable_checkpoint_is_a_model_error(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError):
        load_tessera(path)


def test_config_is_read_from_shapes():
    config = TesseraConfig(8, 2, 1, 3, 24, 40, "sum")
    assert config_from_state(TesseraV1(config).state_dict(), heads=2) == config


# --------------------------------------------------------------------------- inputs
STAMPS = ["2021-03-01T10:00:00Z", "2022-01-25T23:30:00-02:00", "2022-06-01T10:00:00"]
NAMES = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _synthetic() -> np.ndarray:
    dn = np.random.default_rng(0).integers(1, 9000, size=(3, 12, 2, 3)).astype(np.float32)
    for c in range(12):
        dn[:, c, 0, 0] = 100 * (c + 1) + np.array([0, 1, 2])  # identifiable values; 800.. and 1100..
    return dn


def test_bands_are_remapped_standardised_and_dated():
    dn = _synthetic()
    series, present = s2_series(dn, NAMES, STAMPS)
    for k, band in enumerate(S2_BANDS):
        expected = (dn[0, NAMES.index(band), 1, 2] - S2_MEAN[k]) / S2_STD[k]
        assert abs(series.values[5, 0, k] - expected) < 1e-5
    assert series.doy.tolist() == [60, 26, 152]  # 2022-01-25T23:30-02:00 is the 26th in UTC
    assert present.all() and series.valid.all()


def test_offset_is_removed_after_2022_01_25_unless_told():
    dn = _synthetic()
    by_date = s2_series(dn, NAMES, STAMPS)[0].values[0] * S2_STD + S2_MEAN  # pixel (0, 0): [T, 10]
    b04, b8a = S2_BANDS.index("B04"), S2_BANDS.index("B8A")  # 400.. (kept), 900.. (kept)
    b11 = S2_BANDS.index("B11")  # 1100 + t: -1000 on the frames after 2022-01-25 (UTC)
    assert np.allclose(by_date[:, b11], [1100, 101, 102], atol=1e-2)
    assert np.allclose(by_date[:, b04], [400, 401, 402], atol=1e-2)
    assert np.allclose(by_date[:, b8a], [900, 901, 902], atol=1e-2)
    told = s2_series(dn, NAMES, STAMPS, has_offset=[True, False, False])[0].values[0] * S2_STD + S2_MEAN
    assert np.allclose(told[:, b11], [100, 1101, 1102], atol=1e-2)


def test_nodata_and_masks_make_observations_invalid():
    dn = _synthetic()
    dn[1, NAMES.index("B12"), 0, 1] = 0  # one band missing: the observation is invalid
    dn[:, :, 1, 0] = 0  # no data in any frame: not embedded
    dn[2, NAMES.index("B02"), 1, 1] = np.nan
    clouds = np.ones((3, 2, 3), bool)
    clouds[0, 0, 2] = False
    series, present = s2_series(dn, NAMES, STAMPS, valid=clouds)
    assert not series.valid[1, 1] and not series.valid[4, 2] and not series.valid[2, 0]
    assert series.valid.sum() == 18 - 1 - 3 - 1 - 1
    assert present.tolist() == [True, True, True, False, True, True]
    assert np.isfinite(series.values).all()


@pytest.mark.parametrize("change, words", [
    (lambda n, s: ([b for b in n if b not in ("B8A", "B11")], s), "lacks B8A, B11"),
    (lambda n, s: (n, [*s[:2], None]), "frame 2 has no timestamp"),
    (lambda n, s: (n, [*s[:2], "June"]), "unreadable timestamp"),
])
def test_input_errors_are_one_line(change, words):
    dn = _synthetic()
    names, stamps = change(NAMES, STAMPS)
    dn = dn[:, [NAMES.index(b) for b in names]]
    with pytest.raises(InputError) as info:
        s2_series(dn, names, stamps)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_s1_units_validity_and_grid():
    db = np.array([-10.0, -30.0, np.nan, -8.2])
    assert tessera_sar(db).tolist() == [6000.0, 0.0, 0.0, 6720.0]
    assert tessera_sar(10 ** (db / 10), "linear")[[0, 1, 3]].tolist() == [6000.0, 0.0, 6720.0]
    sar = np.full((2, 2, 2, 3), -10.0)
    sar[0, :, 0, 0] = np.nan
    sar[1, 1, 0, 1] = -40.0  # VH clipped to 0, VV still there: valid
    series = s1_series(sar, STAMPS[:2], (2, 3))
    assert series.valid.tolist()[0] == [False, True] and series.valid[1].all()
    with pytest.raises(InputError, match="differs from the S2 grid"):
        s1_series(sar, STAMPS[:2], (4, 6))


# --------------------------------------------------------------------------- real data
def _read(path: Path, frames: int, per_frame: int) -> tuple[np.ndarray, list[str], list[str]]:
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(path) as src:
        data = src.read(list(range(1, frames * per_frame + 1)))
        stamps, names = zip(*(d.split(" ") for d in src.descriptions[: frames * per_frame]))
    return data.reshape(frames, per_frame, *data.shape[1:]), list(stamps[::per_frame]), list(names[:per_frame])


def _up(a: np.ndarray) -> np.ndarray:
    return a.repeat(2, axis=-2).repeat(2, axis=-1)


@pytest.mark.parametrize("name", SITES)
def test_real_worldcereal_series(shared_data, small, name):
    site = shared_data / "worldcereal_s2l2a_dense_ts" / name
    if not (site / "s2_l2a_10m.tif").is_file():
        pytest.skip(f"WorldCereal site {name} is not in {shared_data}")
    fine, stamps, fine_names = _read(site / "s2_l2a_10m.tif", 12, 4)
    coarse, stamps20, coarse_names = _read(site / "s2_l2a_20m.tif", 12, 6)
    scl, _, _ = _read(site / "s2_scl_20m.tif", 12, 1)
    assert stamps == stamps20
    dn = np.concatenate([fine, _up(coarse)], axis=1)
    names = fine_names + coarse_names
    assert tuple(names) != S2_BANDS and sorted(names) == sorted(S2_BANDS)
    dn[0, names.index("B8A"), :4] = 0
    clear = _up(~np.isin(scl[:, 0], [0, 1, 2, 3, 8, 9]))
    series, present = s2_series(dn, names, stamps, valid=clear)

    h, w = dn.shape[2:]
    raw = series.values * S2_STD + S2_MEAN
    assert np.allclose(raw[:, :, 0].T.reshape(12, h, w), fine[:, fine_names.index("B04")], atol=0.05)
    assert np.allclose(raw[:, :, 4].T.reshape(12, h, w)[1:], _up(coarse[1:, coarse_names.index("B8A")]), atol=0.05)
    valid = series.valid.T.reshape(12, h, w)
    assert not valid[0, :4].any() and np.array_equal(valid[1:], clear[1:] & (dn[1:] > 0).all(axis=1))
    assert 0 < valid.mean() < 1 and present.all()
    yday = [date.fromisoformat(s[:10]).toordinal() - date(int(s[:4]), 1, 1).toordinal() + 1 for s in stamps]
    assert series.doy.tolist() == yday

    s1, s1_stamps, _ = _read(site / "s1_grd_asc_20m.tif", 8, 2)
    asc = s1_series(_up(s1 / 10000.0), s1_stamps, (h, w), nodata=0.0)
    vv = (asc.values[..., 0] * S1_STD[0] + S1_MEAN[0])[asc.valid]
    assert 4000 < vv.mean() < 8000  # cropland VV of about -9 dB: (2 * -9 + 50) * 200 = 6400
    with pytest.raises(InputError, match="32x32 differs"):
        s1_series(s1 / 10000.0, s1_stamps, (h, w))
    with pytest.raises(InputError, match="lacks B8A"):
        s2_series(np.delete(dn, names.index("B8A"), axis=1), [n for n in names if n != "B8A"], stamps)

    crop = tessera_inputs(dn[:, :, :6, :6], names, stamps, valid=clear[:, :6, :6],
                          s1_asc=(_up(s1 / 10000.0)[:, :, :6, :6], s1_stamps))
    out = embed_grid(small, crop, seed=0)
    assert out.shape == (6, 6, 16) and np.isfinite(out).all() and np.abs(out).sum(axis=-1).min() > 0
