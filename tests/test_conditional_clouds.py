"""Cloud-aware coding with `tec-tt-s2l2a` (TEC-TT on TEC-ELIC, issue 18): cells under a cloud
are not sent and decode to the model's prediction from the previous date, on both sides and
under torch's other CPU kernels; the stream records them, `tec decode` writes their sidecar.

Data: three clear dates of the bundled real eo-learn sample (2015-07-11, 08-30, 09-09, without
B10), with a synthetic opaque cloud (9000 DN in every band) painted over 48 x 64 px of the
second date, so that what lies under the cloud is known.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

import terracodec
from terracodec.bands import S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.errors import CorruptStreamError
from terracodec.temporal.clouds import cloudy_cells
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS, latents_elsewhere
from terracodec.zoo import load_model

SAMPLE = Path(terracodec.__file__).resolve().parent / "data" / "sample"
DATES = ("20150711", "20150830", "20150909")
MODEL = "tec-tt-s2l2a"
CLOUD = (slice(16, 64), slice(16, 80))  # whole 16 px cells: rows 1-3, columns 1-4


def _truth() -> np.ndarray:
    frames = []
    for d in DATES:
        with rasterio.open(SAMPLE / f"S2L1C_{d}.tif") as ds:
            frames.append(np.delete(ds.read(), 10, axis=0))  # no B10: the L2A band order
    return np.stack(frames).astype(np.uint16)


def _clouded(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the series with an opaque cloud on its second date, that cloud's [H, W] mask)."""
    cloudy = x.copy()
    cloudy[1][:, CLOUD[0], CLOUD[1]] = 9000
    mask = np.zeros(x.shape[-2:], np.uint8)
    mask[CLOUD] = 1
    return cloudy, mask


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    err = (a.astype(np.float64) - b.astype(np.float64))[:, where]
    return float(10 * np.log10(10000.0**2 / np.mean(err**2)))


def test_cells_under_a_cloud_are_predicted_from_the_past_at_almost_no_cost():
    truth = _truth()
    cloudy, mask = _clouded(truth)
    options = dict(model=MODEL, quality=3, band_names=list(S2_L2A_BANDS), baseline_offset=False)
    filled = terracodec.encode(cloudy, cloud_masks={1: mask}, **options)
    plain = terracodec.encode(cloudy, **options)
    info = terracodec.info(filled)
    assert [f["filled"] > 0 for f in info["frame_info"]] == [False, True, False]
    assert info["frame_info"][1]["bytes"] < 0.5 * terracodec.info(plain)["frame_info"][1]["bytes"]
    out = np.asarray(terracodec.decode(filled).pixels)
    under = mask.astype(bool)
    # what lay under the cloud, from the first date and the clear ground around: better than
    # copying the first date there (30.0 dB), far from the cloud itself
    fill_db, copy_db = _psnr(out[1], truth[1], under), _psnr(truth[0], truth[1], under)
    assert fill_db > copy_db + 3.0 and fill_db > 33.0, (fill_db, copy_db)
    assert _psnr(out[1], truth[1], ~under) > 35.0  # the clear ground is coded as usual
    assert _psnr(out[2], truth[2], np.ones_like(under)) > 35.0  # and the next date reads the fill


@pytest.mark.parametrize("mode", ["interleave", "propagate"])
def test_both_ends_keep_the_same_latents_on_tiles_off_the_64_px_grid(mode):
    """80 x 80 px tiles (a 5 x 5 latent padded to 8 x 8): the filled mask rides in a version 3
    payload, decoding ends in the encoder's state; a mask without cloudy cells changes nothing."""
    from terracodec.normalization import Normalization

    tt = load_model(MODEL, 2)
    norm = Normalization.from_config(tt.config["normalization"])
    x = torch.stack([torch.from_numpy(np.asarray(norm.normalize(f[:, :80, :80].astype(np.float32)), np.float32))
                     for f in _truth()])
    cloud = torch.zeros(5, 5, dtype=torch.bool)
    cloud[1:3, 0:4] = True
    enc, payloads = tt.start_state(), []
    for t in range(3):
        p, enc = tt.encode_frame(enc, x[t], cloud=cloud if t == 1 else None, fill_mode=mode)
        payloads.append(p)
        if t == 0:
            clear, _ = tt.encode_frame(enc, x[1], cloud=torch.zeros(5, 5, dtype=torch.bool))
            assert clear == tt.encode_frame(enc, x[1])[0]
    assert payloads[1][0] == 3 and payloads[2][0] == 2
    dec = tt.start_state()
    for t in range(3):
        _, dec = tt.decode_frame_latents(dec, payloads[t], 80, 80)
    assert torch.equal(dec.y_hat, enc.y_hat)
    broken = bytearray(payloads[1])
    broken[4] ^= 0x20  # inside the zlib-coded mask
    with pytest.raises(CorruptStreamError):
        state = tt.start_state()
        _, state = tt.decode_frame_latents(state, payloads[0], 80, 80)
        tt.decode_frame_latents(state, bytes(broken), 80, 80)


def _write(folder: Path, x: np.ndarray, mask: np.ndarray) -> tuple[list[str], Path]:
    folder.mkdir()
    with rasterio.open(SAMPLE / f"S2L1C_{DATES[0]}.tif") as ds:
        profile = dict(ds.profile, count=12)
    files = []
    for t, d in enumerate(DATES):
        path = folder / f"S2L2A_{d}.tif"
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(x[t])
            ds.descriptions = tuple(S2_L2A_BANDS)
            ds.update_tags(PROCESSING_BASELINE="03.01")
        files.append(str(path))
    with rasterio.open(folder / "cloud.tif", "w", **dict(profile, count=1, dtype="uint8", nodata=None)) as ds:
        ds.write(mask[None])
    return files, folder / "cloud.tif"


def tec(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_cli_picks_the_l2a_tt_codes_clouds_and_writes_the_filled_pixel_sidecar(tmp_path):
    cloudy, mask = _clouded(_truth())
    files, cloud = _write(tmp_path / "in", cloudy, mask)
    out = tmp_path / "s.tec"
    r = tec("encode", *files, "-o", out, "--cloud-mask", f"{Path(files[1]).name}={cloud}")
    assert r.exit_code == 0, r.output
    info = terracodec.info(out)
    assert info["model"] == MODEL and info["frame_info"][1]["filled"] > 0.25
    assert "filled under clouds" in tec("info", out).stdout
    r = tec("decode", out, "-o", tmp_path / "dec")
    assert r.exit_code == 0, r.output
    sidecars = sorted((tmp_path / "dec").glob("*.filled.tif"))
    assert [p.name for p in sidecars] == [f"S2L2A_{DATES[1]}.filled.tif"]
    with rasterio.open(sidecars[0]) as ds:
        expected = np.kron(cloudy_cells(mask), np.ones((16, 16), np.uint8))[: ds.height, : ds.width]
        assert np.array_equal(ds.read(1), expected)
    r = tec("inpaint", *files, "-o", tmp_path / "gapfilled", "--cloud-mask", f"1={cloud}", "-q")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "gapfilled").glob("*.filled.tif"))) == 1


@pytest.mark.slow
@pytest.mark.parametrize("env_name", sorted(CPU_KERNEL_ENVIRONMENTS))
def test_a_clouded_stream_decodes_identically_under_other_cpu_kernels(env_name, tmp_path):
    cloudy, mask = _clouded(_truth())
    stream = tmp_path / "s.tec"
    terracodec.encode(cloudy, stream, model=MODEL, quality=5, band_names=list(S2_L2A_BANDS),
                      baseline_offset=False, cloud_masks={1: mask}, cloud_fill="propagate")
    assert np.array_equal(latents_elsewhere(stream, env_name, tmp_path),
                          np.asarray(terracodec.decode_latents(stream).y_hat))
