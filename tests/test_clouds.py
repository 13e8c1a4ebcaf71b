"""Cloud-aware coding of temporal models (`terracodec.temporal.clouds`, `--cloud-mask`): filled
tokens cost no bits and decode to the encoder's latents, here and under other CPU kernels; the
modes; the stream records the masks and `tec info` the filled share; bad masks are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

import terracodec
from terracodec.cli.main import main
from terracodec.errors import CorruptStreamError, InputError
from terracodec.temporal.clouds import cloudy_cells, filled_share, filled_tokens, pack_mask, unpack_mask
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS

from _tinytt import frames, one_thread, tiny_tt  # noqa: F401  (fixture)

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))


def test_cells_modes_and_masks() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[0:16, 0:9] = 1  # 56 % of the first cell
    mask[16:32, 0:7] = 1  # 44 % of the cell below: clear
    cells = cloudy_cells(mask)
    assert cells.shape == (3, 3) and cells[0, 0] and not cells[1, 0] and cells.sum() == 1
    grid = torch.zeros(1, 4, 4, dtype=torch.bool)
    grid[0, 1, 2] = True  # window position 6
    inter = filled_tokens(grid, "interleave", repacked=False)
    prop = filled_tokens(grid, "propagate", repacked=False)
    assert inter.shape == (1, 16) and inter[0].nonzero().flatten().tolist() == [6]
    assert prop[0].nonzero().flatten().tolist() == list(range(6, 16))
    assert not filled_tokens(grid, "interleave", repacked=True).any()  # 1 of 16 cells: window kept
    assert filled_share(grid[0].numpy(), "propagate", False) == pytest.approx(10 / 16)
    assert torch.equal(unpack_mask(pack_mask(prop), 1, 16), prop)
    with pytest.raises(CorruptStreamError):
        unpack_mask(pack_mask(prop), 2, 16)
    with pytest.raises(InputError):
        filled_tokens(grid, "everywhere", repacked=False)


@pytest.mark.parametrize("mode", ["interleave", "propagate"])
def test_filled_tokens_cost_nothing_and_decode_to_the_encoders_latents(mode) -> None:
    model = tiny_tt()
    x = frames(2, 3, 4, 64, 128)
    cloud = torch.zeros(2, 4, 8, dtype=torch.bool)
    cloud[0, 1:3, 2:7] = True  # tile 0 partly cloudy, tile 1 clear
    state, coded, payloads = model.start_state(), [], []
    for t in range(3):
        p, state = model.encode_frames(x[t], state, cloud=cloud if t == 1 else None, fill_mode=mode)
        payloads.append(p)
        coded.append(state.pending.clone())
    assert payloads[1][0][0] == 3 and payloads[1][1][0] == 4  # the mask travels with tile 0 only
    plain, _ = model.encode_frames(x[1], model.encode_frames(x[0], model.start_state())[1])
    assert len(payloads[1][0]) < len(plain[0]) and payloads[1][1] == plain[1]
    state = model.start_state()
    for t in range(3):
        latents, state = model.decode_latent_frames(payloads[t], 64, 128, state)
        assert torch.equal(latents["y_hat"], coded[t].to(latents["y_hat"].dtype))


def _mask_file(path: Path, like: Path, rows: slice, cols: slice, extra_rows: int = 0) -> Path:
    with rasterio.open(like) as ds:
        profile, h, w = dict(ds.profile), ds.height, ds.width
    mask = np.zeros((h + extra_rows, w), np.uint8)
    mask[rows, cols] = 255
    profile.update(count=1, dtype="uint8", nodata=None, height=h + extra_rows)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(mask[None])
    return path


def tec(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.slow
def test_cli_codes_clouds_and_says_how_much_was_filled(tmp_path) -> None:
    mask = _mask_file(tmp_path / "cloud.tif", SAMPLE[1], slice(10, 80), slice(0, 70))
    out = tmp_path / "c.tec"
    r = tec("encode", *SAMPLE[:3], "-o", out, "--model", "tec-tt-small", "--cloud-mask", f"{SAMPLE[1].name}={mask}")
    assert r.exit_code == 0, r.output
    info = terracodec.info(out)
    assert info["format_version"] == "8.0" and [f["filled"] > 0.1 for f in info["frame_info"]] == [False, True, False]
    assert "filled under clouds" in tec("info", out).stdout
    plain = terracodec.encode([str(s) for s in SAMPLE[:3]], model="tec-tt-small")
    assert terracodec.info(plain)["frame_info"][1]["bytes"] > info["frame_info"][1]["bytes"]
    decoded = terracodec.decode(out).pixels
    assert decoded.shape == terracodec.decode(plain).pixels.shape
    # the stream decodes to the same latents under the scalar CPU kernels
    here = terracodec.decode_latents(out).y_hat
    code = ("import sys, numpy as np, terracodec; "
            "np.save(sys.argv[2], terracodec.decode_latents(sys.argv[1]).y_hat)")
    env = dict(os.environ, **CPU_KERNEL_ENVIRONMENTS["scalar"])
    proc = subprocess.run([sys.executable, "-c", code, str(out), str(tmp_path / "y.npy")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.asarray(here))


@pytest.mark.parametrize("case", ["other_grid", "unknown_frame", "image_model", "syntax", "twice"])
def test_bad_cloud_masks_are_one_line_and_write_nothing(case, tmp_path) -> None:
    good = _mask_file(tmp_path / "m.tif", SAMPLE[0], slice(0, 32), slice(0, 32))
    args = {
        "other_grid": ["--model", "tec-tt-small", "--cloud-mask",
                       f"1={_mask_file(tmp_path / 'big.tif', SAMPLE[0], slice(0, 8), slice(0, 8), 5)}"],
        "unknown_frame": ["--model", "tec-tt-small", "--cloud-mask", f"7={good}"],
        "image_model": ["--model", "tec-fp-s2l1c", "--cloud-mask", f"1={good}"],
        "syntax": ["--model", "tec-tt-small", "--cloud-mask", str(good)],
        "twice": ["--model", "tec-tt-small", "--cloud-mask", f"1={good}", "--cloud-mask", f"1={good}"],
    }[case]
    out = tmp_path / "x.tec"
    r = tec("encode", *SAMPLE[:2], "-o", out, *args)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "mask" in lines[0], lines
    assert not out.exists() and not list(tmp_path.glob(".*.part"))


def test_info_json_lists_the_filled_share(tmp_path) -> None:
    mask = np.zeros((101, 100), np.uint8)
    mask[:64, :64] = 1
    blob = terracodec.encode([str(s) for s in SAMPLE[:2]], model="tec-tt-small", cloud_masks={1: mask},
                             cloud_fill="propagate")
    shares = [f["filled"] for f in terracodec.info(blob)["frame_info"]]
    assert shares[0] == 0 and 0.2 < shares[1] <= 1
    assert json.loads(json.dumps(terracodec.info(blob)["frame_info"]))[1]["filled"] == shares[1]


@pytest.mark.slow
def test_inpaint_writes_filled_frames_with_their_filled_pixel_masks(tmp_path) -> None:
    """`tec inpaint` = encode with the masks + decode; the sidecar marks the filled cells (16 px
    blocks more than half under the mask) on the frame's grid, and nothing else."""
    mask = _mask_file(tmp_path / "cloud.tif", SAMPLE[2], slice(20, 70), slice(10, 60))
    out = tmp_path / "filled"
    r = tec("inpaint", *SAMPLE[:3], "-o", out, "--cloud-mask", f"2={mask}", "-q")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [s.name for s in SAMPLE[:3]] + [SAMPLE[2].stem + ".filled.tif"])
    with rasterio.open(out / (SAMPLE[2].stem + ".filled.tif")) as ds, rasterio.open(out / SAMPLE[2].name) as frame:
        filled = ds.read(1)
        assert ds.transform == frame.transform and ds.crs == frame.crs and ds.shape == frame.shape
    expected = np.kron(cloudy_cells(rasterio.open(mask).read(1)), np.ones((16, 16), np.uint8))[: filled.shape[0], : filled.shape[1]]
    assert filled.sum() > 0 and np.array_equal(filled, expected)
    again = tec("inpaint", *SAMPLE[:3], "-o", out, "--cloud-mask", f"2={mask}", "-q")
    assert again.exit_code == 1 and "exists" in again.stderr  # nothing replaced by surprise


def test_auto_detection_finds_the_cloudy_dates_of_the_bundled_series() -> None:
    """The bundled eo-learn series: 2015-07-31 is hazy and 08-20 overcast (blue reflectance 0.15
    and 0.30 over farmland and forest), the other dates clear; the first frame is never filled."""
    blob = terracodec.encode([str(s) for s in SAMPLE], model="tec-tt-small", cloud_masks="auto")
    shares = [f["filled"] for f in terracodec.info(blob)["frame_info"]]
    assert shares[0] == 0 and shares[1] > 0.3 and shares[2] > 0.85 and shares[3] == shares[4] == 0, shares
    with pytest.raises(InputError, match="auto"):
        from terracodec.cli.options import parse_cloud_masks

        parse_cloud_masks(("auto", "1=m.tif"))


def test_a_repacked_model_fills_whole_windows_together_with_quality_k() -> None:
    """FlexTEC (the small published-architecture fixture): a window more than half cloudy sends
    no token, the others their first k; both sides end with the same latents."""
    from test_flextec import SMALL, _load

    from terracodec.temporal import TemporalState
    from terracodec.temporal.checkpoint import load_tt_checkpoint

    model = load_tt_checkpoint(SMALL / "flextec.pt")
    meta, _, x = _load(SMALL)
    size = meta["height"]
    cells = size // 16
    cloud = torch.zeros(1, cells, cells, dtype=torch.bool)
    cloud[0, :4, :4] = True  # the first window, whole
    cloud[0, 4:5, 4:6] = True  # 2 of 16 cells of another: kept
    enc, dec = TemporalState(), TemporalState()
    for t in range(2):
        payloads, enc = model.encode_frames(x[t: t + 1], enc, k=8, cloud=cloud if t else None)
        latents, dec = model.decode_latent_frames(payloads, size, size, dec)
        assert torch.equal(latents["y_hat"][0], enc.pending[0].to(latents["y_hat"].dtype))
    from terracodec.models.payload import split_filled

    mask_bytes, _ = split_filled(payloads[0])
    windows = model.entropy_model.tokenizer.windows(cells, cells)
    filled = unpack_mask(mask_bytes, windows, 16)
    assert filled[0].all() and not filled[1:].any()


@pytest.mark.slow
def test_a_window_decode_writes_the_window_of_the_filled_pixel_mask(tmp_path) -> None:
    mask = np.zeros((101, 100), np.uint8)
    mask[20:70, 10:60] = 1
    blob = terracodec.encode([str(s) for s in SAMPLE[:2]], model="tec-tt-small", cloud_masks={1: mask})
    whole = terracodec.decode(blob, tmp_path / "whole", frames=[1])
    part = terracodec.decode(blob, tmp_path / "part", frames=[1], window=(5, 10, 60, 70))
    with rasterio.open(whole[0].with_name(whole[0].stem + ".filled.tif")) as a, \
            rasterio.open(part[0].with_name(part[0].stem + ".filled.tif")) as b:
        full = a.read(1)
        assert full.sum() > 0 and np.array_equal(b.read(1), full[10:80, 5:65])
        assert b.transform == rasterio.open(part[0]).transform
