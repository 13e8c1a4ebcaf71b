"""Every stream `tec encode` writes with a temporal model decodes, with the pixels it should.

* Tiles of 512 px and more, decoded with two threads, under the caller's inference mode
  (`terracodec.decode`, `decode_latents` and the CLI): the context and step tasks run on pool
  threads, which once lost inference mode and failed with "Inplace update to inference tensor
  outside InferenceMode" from 352 px on.
* A TerraCodec v1 TEC-TT checkpoint through the container gives the reconstruction of the
  reference's documented use: inputs standardised with the reference README's statistics
  (SSL4EO-S12 means without the +1000 DN offset); it was 1000 DN high.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import terracodec
from terracodec.bands import S2_L2A_BANDS
from terracodec.cli.main import main
from terracodec.normalization import Normalization
from terracodec.temporal.checkpoint import load_tt_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "terracodec" / "data" / "sample").glob("*.tif"))
TT_V1 = ROOT / "tests" / "fixtures" / "reference_tt"


@pytest.fixture()
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def _grow(dn: np.ndarray, height: int, width: int) -> np.ndarray:
    """Real frames `[T, C, h, w]` mirrored out to `height x width` (a tile larger than 512 px)."""
    reps = (-(-height // dn.shape[2]), -(-width // dn.shape[3]))
    out = dn
    for axis, n in ((2, reps[0]), (3, reps[1])):
        parts = [out if k % 2 == 0 else np.flip(out, axis) for k in range(n)]
        out = np.concatenate(parts, axis=axis)
    return np.ascontiguousarray(out[:, :, :height, :width])


def _sample_series() -> np.ndarray:
    frames = []
    for path in SAMPLE[:2]:
        with rasterio.open(path) as ds:
            frames.append(ds.read())
    return _grow(np.stack(frames), 528, 576)


def _v1_series() -> np.ndarray:
    return _grow(load_file(str(TT_V1 / "data.safetensors"))["dn"].numpy()[:2], 528, 576)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tec-tt-small", "tec-tt"])
def test_large_tiles_decode_on_several_threads(name, two_threads, tmp_path) -> None:
    if name == "tec-tt":  # the published architecture; a v1 checkpoint of random weights
        weights, dn, bands = str(TT_V1 / "tt.pt"), _v1_series(), list(S2_L2A_BANDS)
    else:
        weights, dn, bands = None, _sample_series(), None
    with rasterio.open(SAMPLE[0]) as ds:
        bands = bands or list(ds.descriptions)
    stream = terracodec.encode(dn, model=name, weights=weights, band_names=bands, nodata=0,
                               tile_size=1024, baseline_offset=False)
    assert terracodec.info(stream)["tiles_per_frame"] == 1  # one tile of 528 x 576 px
    with torch.inference_mode():
        decoded = terracodec.decode(stream, weights=weights).pixels
    latents = terracodec.decode_latents(stream, weights=weights)
    assert decoded.shape == dn.shape and np.isfinite(latents.y_hat).all()
    path = tmp_path / "s.tec"
    path.write_bytes(stream)
    args = ["decode", str(path), "-o", str(tmp_path / "out")] + (["--weights", weights] if weights else [])
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with rasterio.open(tmp_path / "out" / "frame_001.tif") as ds:
        assert np.array_equal(ds.read(), decoded[1])


def test_v1_checkpoint_decodes_as_the_reference_documents() -> None:
    """Decoded pixels = the model's eval reconstruction of the input standardised with the
    reference README's means (1000 DN below SSL4EO-S12's published ones), denormalised alike."""
    pt = TT_V1 / "tt.pt"
    dn = load_file(str(TT_V1 / "data.safetensors"))["dn"].numpy()[:2]  # int16 [2, 12, 64, 128]
    stream = terracodec.encode(dn, model="tec-tt", weights=str(pt), band_names=list(S2_L2A_BANDS),
                               tile_size=128, baseline_offset=False)
    decoded = terracodec.decode(stream, weights=str(pt)).pixels.astype(np.float64)
    norm = Normalization.terracodec_v1(12)
    assert norm.mean[0] == pytest.approx(793.243)  # the reference README's B01 mean
    model = load_tt_checkpoint(pt)
    x = torch.stack([torch.as_tensor(norm.normalize(f.astype(np.float64))) for f in dn])
    with torch.no_grad():
        x_hat = model(x[None].float())["x_hat"][0]
    expected = np.stack([norm.denormalize(f.numpy()) for f in x_hat])
    assert np.abs(decoded - expected).mean() < 2.0
