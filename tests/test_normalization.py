"""SSL4EO-S12 standardisation: presets, round trips in DN units, integer casting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terracodec.errors import InputError
from terracodec.normalization import Normalization


def test_presets_match_band_counts() -> None:
    assert Normalization.default_for(13).name == "ssl4eo-s12-l1c"
    assert Normalization.default_for(12).name == "ssl4eo-s12-l2a"
    identity = Normalization.default_for(2)
    assert identity.mean == (0.0, 0.0) and identity.std == (1.0, 1.0)
    l1c = Normalization.ssl4eo_l1c()
    assert l1c.bands == 13 and l1c.std[10] < 100  # cirrus B10 is nearly constant


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.uint8, np.int32])
def test_integer_round_trip_is_exact(dtype) -> None:
    norm = Normalization.ssl4eo_l2a()
    info = np.iinfo(dtype)
    rng = np.random.default_rng(0)
    dn = rng.integers(max(info.min, -20000), min(info.max, 20000), size=(12, 9, 7)).astype(dtype)
    x = norm.normalize(torch.from_numpy(dn.astype(np.int64)))
    assert x.dtype == torch.float32
    back = norm.denormalize(x, dtype)
    assert back.dtype == torch.from_numpy(np.zeros(1, dtype)).dtype
    assert np.array_equal(back.numpy(), dn)
    assert np.array_equal(norm.denormalize(norm.normalize(dn), dtype), dn)  # numpy in, numpy out


def test_denormalize_clips_rounds_and_keeps_floats() -> None:
    norm = Normalization((100.0,), (10.0,))
    x = torch.tensor([[-20.0, -10.04, 0.049, 1e6, float("nan")]])
    assert norm.denormalize(x, torch.uint8).tolist() == [[0, 0, 100, 255, 0]]
    assert norm.denormalize(x[:, :3], "int16").tolist() == [[-100, 0, 100]]
    floats = norm.denormalize(x[:, :3])
    assert floats.dtype == torch.float64
    assert torch.allclose(floats, torch.tensor([[-100.0, -0.4, 100.49]], dtype=torch.float64))


def test_config_round_trip_and_errors() -> None:
    norm = Normalization.ssl4eo_l1c()
    assert Normalization.from_config(norm.to_config()) == norm
    with pytest.raises(InputError):
        Normalization.from_config({"mean": [1.0]})
    with pytest.raises(InputError):
        Normalization((1.0, 2.0), (1.0, 0.0))
    with pytest.raises(InputError):
        norm.normalize(torch.zeros(12, 4, 4))
    with pytest.raises(InputError):
        norm.denormalize(torch.zeros(13, 2, 2), "complex64")
