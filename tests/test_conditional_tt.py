"""TEC-TT on TEC-ELIC (`tec-tt-s2l2a`, issue 17): a series' first date is coded exactly as the
image codec codes it, later dates cost fewer bytes at the same quality, streams round-trip
through the public API and the CLI, decode identically under torch's other CPU kernels, and
bad use fails in one line. Data: the bundled real eo-learn sample (5 dates), without B10."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

import terracodec
from terracodec.bands import S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.errors import CorruptStreamError
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS
from terracodec.zoo import load_model

from _rasters import sample_l2a_series as _series, write_series as _write_series

MODEL = "tec-tt-s2l2a"


def _tiles(model, x: np.ndarray) -> torch.Tensor:
    """Normalised 64 x 64 crops `[T, 12, 64, 64]` of a series (the model's own normalisation)."""
    from terracodec.normalization import Normalization

    norm = Normalization.from_config(model.config["normalization"])
    return torch.stack([torch.from_numpy(np.asarray(norm.normalize(f[:, :64, :64].astype(np.float32)),
                                                    np.float32)) for f in x])


def test_first_date_is_the_image_codec_and_later_dates_cost_less():
    tt, elic = load_model(MODEL, 3), load_model("tec-elic-s2l2a", 3)
    x = _tiles(tt, _series(3))
    state = tt.start_state()
    sizes_tt, sizes_elic = [], []
    for t in range(3):
        payload, state = tt.encode_frame(state, x[t])
        image = elic.encode_tile(x[t])
        if t == 0:
            assert payload == image  # no context: byte for byte the image codec
        sizes_tt.append(len(payload))
        sizes_elic.append(len(image))
    assert sum(sizes_tt[1:]) < 0.95 * sum(sizes_elic[1:]), (sizes_tt, sizes_elic)


def test_model_round_trip_and_state_matter():
    tt = load_model(MODEL, 2)
    x = _tiles(tt, _series(2))
    enc = tt.start_state()
    payloads = []
    for t in range(2):
        p, enc = tt.encode_frame(enc, x[t])
        payloads.append(p)
    dec = tt.start_state()
    for t in range(2):
        latents, dec = tt.decode_frame_latents(dec, payloads[t], 64, 64)
    assert torch.equal(dec.y_hat, enc.y_hat)
    # The second payload read without its context is refused or decodes to other latents.
    try:
        wrong, _ = tt.decode_frame_latents(tt.start_state(), payloads[1], 64, 64)
    except CorruptStreamError:
        return
    assert not torch.equal(wrong["y_hat"], latents["y_hat"])


def test_api_round_trip_of_a_series_is_lossy_but_close(tmp_path):
    x = _series(3)
    data = terracodec.encode(x, model=MODEL, quality=4, band_names=list(S2_L2A_BANDS))
    info = terracodec.info(data)
    assert info["kind"] == "temporal" and info["coder_platform"] == "fixed-point-v1"
    assert info["format_version"].startswith("7.")
    out = np.asarray(terracodec.decode(data).pixels)
    assert out.shape == x.shape
    err = out.astype(np.float64) - x.astype(np.float64)
    psnr = 10 * np.log10(10000.0**2 / np.mean(err**2))
    assert psnr > 30.0, psnr
    per_frame = [f["bytes"] for f in info["frame_info"]]
    assert min(per_frame[1:]) < per_frame[0]


def test_cli_encode_decode_whole_files(tmp_path):
    files = _write_series(tmp_path / "in", _series(3))
    with rasterio.open(files[0]) as ds:
        crs = ds.crs
    runner = CliRunner()
    res = runner.invoke(main, ["encode", *files, "-o", str(tmp_path / "s.tec"), "--model", MODEL, "--quality", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(main, ["decode", str(tmp_path / "s.tec"), "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    outs = sorted((tmp_path / "out").glob("*.tif"))
    assert len(outs) == 3
    with rasterio.open(outs[-1]) as ds:
        assert ds.count == 12 and ds.crs == crs


CHILD = r"""
import sys, numpy as np, terracodec
lat = terracodec.decode_latents(sys.argv[1])
np.savez(sys.argv[2], y=lat.y_hat, pixels=terracodec.decode(sys.argv[1]).pixels)
"""


@pytest.mark.slow
@pytest.mark.parametrize("env_name", sorted(CPU_KERNEL_ENVIRONMENTS))
def test_streams_decode_identically_under_other_cpu_kernels(env_name, tmp_path):
    stream = tmp_path / "s.tec"
    terracodec.encode(_series(3), stream, model=MODEL, quality=5, band_names=list(S2_L2A_BANDS))
    outs = {}
    for label, env in (("here", {}), ("there", CPU_KERNEL_ENVIRONMENTS[env_name])):
        out = tmp_path / f"{label}.npz"
        proc = subprocess.run([sys.executable, "-c", CHILD, str(stream), str(out)], env=dict(os.environ, **env),
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[label] = dict(np.load(out))
    assert np.array_equal(outs["here"]["y"], outs["there"]["y"])
    assert np.abs(outs["here"]["pixels"].astype(int) - outs["there"]["pixels"].astype(int)).max() <= 2


def test_a_flipped_byte_in_a_later_date_is_detected(tmp_path):
    data = bytearray(terracodec.encode(_series(2), model=MODEL, quality=1, band_names=list(S2_L2A_BANDS)))
    data[-40] ^= 0x10
    with pytest.raises(CorruptStreamError):
        terracodec.decode(bytes(data))


def test_train_tt_learns_and_saves_a_loadable_model(tmp_path):
    """`tec train-tt` on a folder of one file per date: a few steps, then the saved model codes."""
    src = tmp_path / "series"
    x = _series(3)
    _write_series(src, x)
    out = tmp_path / "w" / "tt"
    res = CliRunner().invoke(main, ["train-tt", str(src), "-o", str(out), "--steps", "50", "--views", "1",
                                    "--quality", "1,5", "--batch-size", "8", "--width", "32", "-q"])
    assert res.exit_code == 0, res.output
    log = json.loads(out.with_suffix(".log.json").read_text())
    assert log[-1]["step"] == 50 and log[-1]["bpp"] < log[-1]["bpp_intra"]
    data = terracodec.encode(x, model=MODEL, quality=1, weights=str(out) + ".safetensors",
                             band_names=list(S2_L2A_BANDS))
    assert np.asarray(terracodec.decode(data, weights=str(out) + ".safetensors").pixels).shape == x.shape
    res = CliRunner().invoke(main, ["train-tt", str(src), "-o", str(out), "--steps", "5", "-q"])
    assert res.exit_code != 0 and "exists" in res.output
