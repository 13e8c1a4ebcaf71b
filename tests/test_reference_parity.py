"""Parity with IBM terracodec 0.3.1 (CompressAI-based) on fixtures made by the reference itself.

The fixtures (tests/fixtures/make_reference_fixtures.py) hold reference FP and ELIC checkpoints
in the published `.pt` layout, a real 12-band S2 L2A crop and the reference outputs. Our models
load the `.pt` files and must reproduce:

* reconstructions of `forward` (eval) and of the coding path: max abs diff <= 1e-4 (normalised);
* the quantised latents of the coding path (same symbols);
* the rate: our ideal code length under our integer tables within 1 % of the reference's
  `-log2` likelihoods, and our payload within 1 % of the reference's `compress()` bits once the
  framing of our streams is allowed for (a payload table of at most 2 + 3n bytes, and per rANS
  stream a header plus the final state of its lane, at most 16 bytes: streams this short get one lane).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from terracodec.entropy import base as entropy_base
from terracodec.entropy.cdf import code_length_bits
from terracodec.zoo import load_checkpoint as load_v1_checkpoint
from terracodec.normalization import S2_L2A_MEAN, S2_L2A_STD, Normalization

pytestmark = pytest.mark.reference

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
TOL = 1e-4
FRAMING_BYTES_PER_STREAM = 16


@pytest.fixture(scope="module")
def reference() -> tuple[dict, dict]:
    from safetensors.torch import load_file

    if not (FIXTURES / "meta.json").is_file():
        pytest.skip("reference fixtures are missing (run tests/fixtures/make_reference_fixtures.py)")
    return load_file(str(FIXTURES / "data.safetensors")), json.loads((FIXTURES / "meta.json").read_text())


@pytest.fixture(scope="module")
def models() -> dict:
    return {name: load_v1_checkpoint(FIXTURES / f"{name}.pt") for name in ("fp", "elic")}


def test_fixture_statistics_are_ours(reference) -> None:
    _, meta = reference
    assert tuple(meta["normalization"]["mean"]) == S2_L2A_MEAN
    assert tuple(meta["normalization"]["std"]) == S2_L2A_STD


def test_fixture_input_is_the_real_crop(reference, shared_data: Path) -> None:
    import rasterio

    data, meta = reference
    r, c, h, w = meta["crop"]
    with rasterio.open(shared_data / meta["source"]) as src:
        dn = src.read(window=((r, r + h), (c, c + w)))
    x = Normalization.ssl4eo_l2a().normalize(torch.from_numpy(dn.astype("int64")))
    assert float((x - data["x"]).abs().max()) < 1e-6


@pytest.mark.parametrize("name", ["fp", "elic"])
def test_forward_parity(reference, models, name: str) -> None:
    data, meta = reference
    with torch.no_grad():
        out = models[name](data["x"][None])
    diff = float((out["x_hat"][0] - data[f"{name}.x_hat_forward"]).abs().max())
    assert diff <= TOL, diff
    bits = float(sum(-torch.log2(v).sum() for v in out["likelihoods"].values()))
    assert bits == pytest.approx(meta["models"][name]["forward_bits"], rel=1e-3)


@pytest.mark.parametrize("name", ["fp", "elic"])
def test_coding_parity(reference, models, name: str, monkeypatch) -> None:
    data, meta = reference
    model = models[name]
    ideal = []
    original = entropy_base.EntropyModel.compress_symbols

    def spy(self, symbols, indexes):
        ideal.append(float(code_length_bits(
            symbols, indexes, self._quantized_cdf, self._cdf_length, self._offset
        ).sum()))
        return original(self, symbols, indexes)

    monkeypatch.setattr(entropy_base.EntropyModel, "compress_symbols", spy)
    payload = model.encode_tile(data["x"])
    x_hat = model.decode_tile(payload, 64, 64)
    diff = float((x_hat - data[f"{name}.x_hat_decoded"]).abs().max())
    assert diff <= TOL, diff
    y_hat = model.decode_latents(payload, 64, 64)["y_hat"]
    assert float((y_hat - data[f"{name}.y_hat"]).abs().max()) <= TOL

    ref = meta["models"][name]
    assert len(ideal) == model.num_streams == len(ref["string_bytes"])
    assert sum(ideal) == pytest.approx(ref["forward_bits"], rel=0.01)
    assert sum(ideal) < ref["bits"]
    framing = 8 * (2 + 3 * model.num_streams + FRAMING_BYTES_PER_STREAM * model.num_streams)
    assert len(payload) * 8 <= ref["bits"] * 1.01 + framing
