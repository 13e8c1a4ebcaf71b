"""The latents contract (docs/LATENTS.md): `decode_latents(space=...)` gives the entropy-coded
integers (`coded`) or what the synthesis transform decodes (`synthesis`), with a `LatentSpec`;
synthesis-space latents of one image lie in one space at every quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import terracodec
from terracodec.errors import InputError

SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _x(model: str) -> tuple[np.ndarray, list[str] | None]:
    import rasterio

    with rasterio.open(SAMPLE[0]) as ds:
        x = ds.read()
    return (np.delete(x, 10, axis=0), L2A) if model.endswith("s2l2a") else (x, None)


@pytest.mark.parametrize("model", ["tec-fp-s2l1c", "tec-fp-s2l2a", "tec-elic-s2l2a"])
def test_synthesis_latents_have_one_scale_at_every_quality(model) -> None:
    x, bands = _x(model)
    coded, synthesis = [], []
    for q in (1, 5):
        stream = terracodec.encode(x, model=model, quality=q, band_names=bands, baseline_offset=False)
        lat = terracodec.decode_latents(stream)
        syn = terracodec.decode_latents(stream, space="synthesis")
        assert (lat.spec.space, syn.spec.space, syn.spec.stride) == ("coded", "synthesis", 16)
        assert syn.y_hat.shape == lat.y_hat.shape and lat.y_hat.shape[1] == lat.spec.channels
        if model.startswith("tec-fp"):  # one median a channel: unit quantisation steps
            steps = np.diff(np.sort(np.unique(lat.y_hat[0, 5])))
            assert np.allclose(steps, np.round(steps), atol=1e-4)
        # the scale of the latents that survive quantisation at both qualities (the largest)
        coded.append(float(np.percentile(np.abs(lat.y_hat), 99)))
        synthesis.append(float(np.percentile(np.abs(syn.y_hat), 99)))
    assert coded[1] / coded[0] > 3, coded  # the quality's gain: another space per quality
    assert 0.7 < synthesis[1] / synthesis[0] < 1.4, synthesis  # one space


def test_temporal_synthesis_latents_are_the_dequantised_ones() -> None:
    stream = terracodec.encode(SAMPLE[:2], model="tec-tt-small")
    lat = terracodec.decode_latents(stream)
    syn = terracodec.decode_latents(stream, space="synthesis")
    assert lat.features is not None and lat.spec.channels == 64
    assert not np.array_equal(syn.y_hat, lat.y_hat)  # y_hat + f(features)
    assert np.abs(syn.y_hat - lat.y_hat).mean() < np.abs(lat.y_hat).mean()
    with pytest.raises(InputError, match="space"):
        terracodec.decode_latents(stream, space="pixels")
