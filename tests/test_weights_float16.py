"""Weights stored in float16 (`save_pretrained(float16=True)`): half the file, same model kind."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from terracodec import api
from terracodec.zoo import from_pretrained, load_model


def test_float16_weights_halve_the_file_and_code_like_their_rounded_model(tmp_path):
    model = load_model("tec-fp-s2l2a", 3)
    model.save_pretrained(str(tmp_path / "full"))
    model.save_pretrained(str(tmp_path / "half"), float16=True)
    full, half = (tmp_path / f"{n}.safetensors" for n in ("full", "half"))
    assert half.stat().st_size < 0.6 * full.stat().st_size
    stored = load_file(str(half))
    assert any(v.dtype == torch.float16 for v in stored.values())
    # the entropy models keep their precision
    assert all(v.dtype != torch.float16 for k, v in stored.items() if "entropy_bottleneck" in k)
    a, b = from_pretrained(str(tmp_path / "half")), from_pretrained(str(tmp_path / "half"))
    assert a.weights_hash() == b.weights_hash() != from_pretrained(str(tmp_path / "full")).weights_hash()
    for p in a.parameters():
        assert p.dtype == torch.float32
    rng = np.random.default_rng(0)
    x = rng.integers(500, 3000, (1, 12, 64, 64)).astype(np.uint16)
    blob = api.encode(x, model=a)
    np.testing.assert_array_equal(np.asarray(api.decode(blob, model=a)), np.asarray(api.decode(blob, model=b)))
