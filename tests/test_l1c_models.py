"""The 13-band L1C models on TEC-ELIC (issue 17): `tec-elic-s2l1c` (image) and `tec-tt-s2l1c`
(temporal, its transforms frozen). A series' first date is byte for byte the image codec's, later
dates cost less; the CLI picks them for 13-band L1C without `--model`; streams decode identically
under torch's other CPU kernels. Data: the bundled real eo-learn sample (13 bands, 101 x 100)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

import terracodec
from terracodec.cli.main import main
from terracodec.normalization import Normalization
from terracodec.testing import CPU_KERNEL_ENVIRONMENTS, latents_elsewhere
from terracodec.zoo import load_model

SAMPLE = sorted((Path(terracodec.__file__).resolve().parent / "data" / "sample").glob("*.tif"))
CLEAR = [SAMPLE[i] for i in (0, 3, 4)]  # 2015-07-11, 08-30, 09-09 (07-31 is hazy, 08-20 overcast)


def _tiles(model, n: int = 3) -> torch.Tensor:
    norm = Normalization.from_config(model.config["normalization"])
    frames = []
    for path in CLEAR[:n]:
        with rasterio.open(path) as ds:
            x = ds.read()[:, :96, :96].astype(np.float32)
        frames.append(torch.from_numpy(np.asarray(norm.normalize(x), np.float32)))
    return torch.stack(frames)


def test_first_date_is_the_image_codec_and_later_dates_cost_less():
    tt, elic = load_model("tec-tt-s2l1c", 3), load_model("tec-elic-s2l1c", 3)
    assert tt.bands == elic.bands == 13
    x = _tiles(tt)
    state, sizes_tt, sizes_elic = tt.start_state(), [], []
    for t in range(3):
        payload, state = tt.encode_frame(state, x[t])
        image = elic.encode_tile(x[t])
        if t == 0:
            assert payload == image
        sizes_tt.append(len(payload))
        sizes_elic.append(len(image))
    assert sum(sizes_tt[1:]) < 0.95 * sum(sizes_elic[1:]), (sizes_tt, sizes_elic)


def test_cli_picks_the_l1c_models_and_round_trips(tmp_path):
    runner = CliRunner()
    out = tmp_path / "s.tec"
    res = runner.invoke(main, ["encode", *map(str, CLEAR), "-o", str(out), "--quality", "2"])
    assert res.exit_code == 0, res.output
    info = terracodec.info(out)
    assert info["model"] == "tec-tt-s2l1c" and info["kind"] == "temporal" and info["bands"] == 13
    decoded = np.asarray(terracodec.decode(out).pixels)
    truth = np.stack([rasterio.open(p).read() for p in CLEAR]).astype(np.float64)
    psnr = 10 * np.log10(1e8 / np.mean((decoded - truth) ** 2))
    assert decoded.shape == truth.shape and psnr > 30.0, psnr
    single = tmp_path / "one.tec"
    res = runner.invoke(main, ["encode", str(CLEAR[0]), "-o", str(single)])
    assert res.exit_code == 0 and terracodec.info(single)["model"] == "tec-elic-s2l1c", res.output


@pytest.mark.slow
@pytest.mark.parametrize("env_name", sorted(CPU_KERNEL_ENVIRONMENTS))
def test_streams_decode_identically_under_other_cpu_kernels(env_name, tmp_path):
    stream = tmp_path / "s.tec"
    terracodec.encode([str(p) for p in CLEAR], stream, model="tec-tt-s2l1c", quality=5)
    assert np.array_equal(latents_elsewhere(stream, env_name, tmp_path),
                          np.asarray(terracodec.decode_latents(stream).y_hat))
