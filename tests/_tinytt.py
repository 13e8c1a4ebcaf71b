"""Small seeded TEC-TT models for tests (random weights; latents widened so that coding is not
all zeros, as a trained model's latents span several integers; predicted scales lifted to
their spread)."""

from __future__ import annotations

import pytest
import torch

from terracodec.temporal import TemporalCodec
from terracodec.testing import widen_random_tt


@pytest.fixture(autouse=True)
def one_thread():
    """Many small operations: on a shared 2-core machine a second thread mostly waits."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

TINY = {
    "bands": 4, "latent_channels": 16, "transform_channels": [8, 8, 8, 16], "residual_blocks": 1,
    "d_model": 16, "num_heads": 2, "layers": [1, 1, 1],
}


def tiny_tt(seed: int = 0, gain: float = 12.0, scale_bias: float = 1.5, **overrides) -> TemporalCodec:
    torch.manual_seed(seed)
    model = widen_random_tt(TemporalCodec(dict(TINY, **overrides)), gain, scale_bias)
    model.update()
    return model.eval()


def frames(batch: int, count: int, bands: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    """`[count, batch, bands, H, W]`: smooth random fields that drift from frame to frame."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.randn(batch, bands, height // 8, width // 8, generator=gen)
    out = []
    for _ in range(count):
        base = base + 0.3 * torch.randn(base.shape, generator=gen)
        out.append(torch.nn.functional.interpolate(base, size=(height, width), mode="bilinear"))
    return torch.stack(out)
