"""GDN / IGDN and the bound helpers: parity with CompressAI (weights, outputs, gradients)."""

from __future__ import annotations

import pytest
import torch

from terracodec.layers.bounds import LowerBound, NonNegativeParametrizer
from terracodec.layers.gdn import GDN


def _perturbed(module: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.rand(p.shape, generator=gen))


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches_compressai(compressai_ref, inverse):
    """CompressAI's GDN (weights perturbed, its output and gradients recorded in
    tests/fixtures/compressai/) loads into ours and gives the same results; same layout, so
    CompressAI loads ours too."""
    ref, meta = compressai_ref
    tag = f"gdn.{int(inverse)}"
    ours = GDN(6, inverse=inverse)
    assert {k: list(v.shape) for k, v in ours.state_dict().items()} == meta[f"{tag}.state.keys"]
    ours.load_state_dict({k: ref[f"{tag}.state.{k}"] for k in meta[f"{tag}.state.keys"]}, strict=True)
    x = ref[f"{tag}.x"].clone().requires_grad_(True)
    out = ours(x)
    torch.testing.assert_close(out, ref[f"{tag}.out"], rtol=1e-6, atol=1e-7)
    out.square().sum().backward()
    torch.testing.assert_close(x.grad, ref[f"{tag}.grad.x"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.gamma.grad, ref[f"{tag}.grad.gamma"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.beta.grad, ref[f"{tag}.grad.beta"], rtol=1e-5, atol=1e-6)


def test_gdn_any_spatial_rank():
    layer = GDN(4)
    _perturbed(layer, 5)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 10, generator=gen)
    flat = layer(x.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(layer(x), flat)
    x5 = torch.randn(2, 4, 3, 4, 5, generator=gen)
    torch.testing.assert_close(layer(x5), layer(x5.reshape(2, 4, 12, 5)).reshape(x5.shape))


def test_gdn_fresh_layer_is_per_channel_formula():
    # a fresh layer has a diagonal gamma: y = x / sqrt(beta + gamma_ii x^2)
    layer = GDN(3)
    beta, gamma = layer.effective_parameters()
    x = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    expected = x / torch.sqrt(beta.view(1, 3, 1, 1) + gamma.diagonal().view(1, 3, 1, 1) * x * x)
    torch.testing.assert_close(layer(x), expected)


def test_gdn_rejects_wrong_channels():
    with pytest.raises(ValueError, match="expects"):
        GDN(4)(torch.ones(1, 3, 2, 2))  # the channel count is refused, whatever the values


def test_lower_bound_gradient_rule():
    bound = LowerBound(1.0)
    x = torch.tensor([0.5, 0.5, 2.0], requires_grad=True)
    y = bound(x)
    assert y.tolist() == [1.0, 1.0, 2.0]
    # element 0: gradient would push x down (positive grad of loss) -> blocked;
    # element 1: pushes x up towards the bound -> passes; element 2: above bound -> passes.
    y.backward(torch.tensor([1.0, -1.0, 1.0]))
    assert x.grad.tolist() == [0.0, -1.0, 1.0]


def test_non_negative_parametrizer_round_trip():
    param = NonNegativeParametrizer(minimum=1e-6)
    values = torch.tensor([0.0, 1e-6, 0.5, 3.0])
    recovered = param(param.init(values))
    # values below the minimum are lifted to it; others come back
    torch.testing.assert_close(recovered[1:], values[1:], rtol=1e-5, atol=1e-7)
    assert recovered[0] >= 1e-6 - 1e-9
    assert set(param.state_dict()) == {"pedestal", "lower_bound.bound"}
