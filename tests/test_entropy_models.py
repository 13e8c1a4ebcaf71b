"""EntropyBottleneck and GaussianConditional: parity with CompressAI 1.2.8 (its values recorded
in tests/fixtures/compressai/ by make_compressai_fixtures.py), tables, coding."""

from __future__ import annotations

import importlib.util

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from terracodec.entropy import EntropyBottleneck, GaussianConditional, default_scale_table
from terracodec.entropy.cdf import code_length_bits
from terracodec.errors import InputError, ModelError

needs_rans = pytest.mark.skipif(
    importlib.util.find_spec("terracodec.entropy.rans") is None,
    reason="terracodec.entropy.rans is not written yet",
)


def _shapes(module: torch.nn.Module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _perturb(module: torch.nn.Module, seed: int, amount: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(amount * torch.randn(p.shape, generator=gen))


def _sub(ref: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1 :]: v for k, v in ref.items() if k.startswith(prefix + ".")}


@pytest.fixture()
def bottlenecks(compressai_ref):
    """(CompressAI's records, our EntropyBottleneck(5) with CompressAI's perturbed weights)."""
    tensors, _ = compressai_ref
    ours = EntropyBottleneck(5)
    ours.load_state_dict(_sub(tensors, "eb.state"), strict=True)
    return tensors, ours


@pytest.fixture()
def gaussians(compressai_ref):
    tensors, meta = compressai_ref
    return tensors, GaussianConditional(meta["gc.scale_table"])


# ------------------------------------------------------------------ state dicts
def test_state_dict_layout_matches_compressai(bottlenecks, gaussians):
    for prefix, (records, ours) in (("eb", bottlenecks), ("gc", gaussians)):
        expected = {k[len(prefix) + 7 :]: tuple(v.shape) for k, v in records.items()
                    if k.startswith(f"{prefix}.state.")}
        assert _shapes(ours) == expected
        ours.update()  # CompressAI's module after update: the same layout, so it loads ours
        expected = {k[len(prefix) + 9 :]: tuple(v.shape) for k, v in records.items()
                    if k.startswith(f"{prefix}.updated.")}
        assert _shapes(ours) == expected


def test_checkpoint_with_tables_loads_into_fresh_module(compressai_ref):
    tensors, _ = compressai_ref
    for prefix, fresh in (("eb", EntropyBottleneck(5)), ("gc", GaussianConditional(None, scale_bound=0.11))):
        updated = _sub(tensors, f"{prefix}.updated")
        fresh.load_state_dict(updated, strict=True)
        assert torch.equal(fresh.quantized_cdf, updated["_quantized_cdf"])
        assert torch.equal(fresh.offset, updated["_offset"])
        # and a checkpoint without tables empties them again
        empty = EntropyBottleneck(5) if prefix == "eb" else GaussianConditional(default_scale_table())
        fresh.load_state_dict(empty.state_dict(), strict=True)
        assert not fresh.has_tables()


# ------------------------------------------------------------------ forward parity
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("training", [True, False])
def test_bottleneck_forward_parity(bottlenecks, dtype, training):
    ref, ours = bottlenecks
    ours = ours.to(dtype)
    tag = f"eb.forward.{str(dtype)[6:]}.{int(training)}"
    x = ref[f"{tag}.x"]
    torch.manual_seed(7)
    y, p = ours(x, training=training)
    assert y.dtype == dtype and p.dtype == dtype
    torch.testing.assert_close(y, ref[f"{tag}.y"], rtol=0, atol=0)
    assert float(((p - ref[f"{tag}.p"]).abs() / ref[f"{tag}.p"]).max().detach()) <= 1e-5
    torch.testing.assert_close(ours.loss().reshape(1), ref[f"{tag}.loss"], rtol=1e-6, atol=0)


def test_bottleneck_gradients_match(bottlenecks):
    ref, ours = bottlenecks
    ours.zero_grad()
    torch.manual_seed(3)
    _, p = ours(ref["eb.grad.x"], training=True)
    (-torch.log2(p).sum() + ours.loss()).backward()
    for name, param in ours.named_parameters():
        torch.testing.assert_close(param.grad, ref[f"eb.grad.{name}"], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("with_means", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_gaussian_forward_parity(gaussians, dtype, with_means, training):
    ref, ours = gaussians
    gen = torch.Generator().manual_seed(11)
    x = (torch.randn(2, 4, 5, 5, generator=gen) * 8).to(dtype)
    scales = (torch.rand(2, 4, 5, 5, generator=gen) * 10).to(dtype)  # some below the bound
    means = (torch.randn(2, 4, 5, 5, generator=gen) * 3).to(dtype) if with_means else None
    torch.manual_seed(5)
    y, p = ours(x, scales, means, training=training)
    tag = f"gc.forward.{str(dtype)[6:]}.{int(with_means)}.{int(training)}"
    assert p.dtype == dtype
    torch.testing.assert_close(y, ref[f"{tag}.y"], rtol=0, atol=0)
    assert float(((p - ref[f"{tag}.p"]).abs() / ref[f"{tag}.p"]).max()) <= 1e-5


def test_gaussian_gradients_match(gaussians):
    ref, ours = gaussians
    s = (torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(2)) * 4).requires_grad_(True)
    m = torch.zeros(1, 3, 4, 4, requires_grad=True)
    torch.manual_seed(4)
    _, p = ours(ref["gc.grad.x"], s, m, training=True)
    (-torch.log2(p)).sum().backward()
    torch.testing.assert_close(s.grad, ref["gc.grad.s"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.grad, ref["gc.grad.m"], rtol=1e-5, atol=1e-6)


def test_build_indexes_parity(gaussians):
    ref, ours = gaussians
    assert torch.equal(ours.build_indexes(ref["gc.indexes.scales"]), ref["gc.indexes.ref"])


# ------------------------------------------------------------------ tables
class _Tables:
    """CompressAI's updated tables, as attributes."""

    def __init__(self, updated: dict) -> None:
        self.quantized_cdf, self.cdf_length = updated["_quantized_cdf"], updated["_cdf_length"]
        self.offset = updated["_offset"]


def test_bottleneck_tables_layout_and_rate(bottlenecks):
    records, ours = bottlenecks
    ref = _Tables(_sub(records, "eb.updated"))
    assert ours.update()
    assert not ours.update()  # already built
    assert torch.equal(ours.offset, ref.offset)
    assert torch.equal(ours.cdf_length, ref.cdf_length)
    assert ours.quantized_cdf.shape == ref.quantized_cdf.shape
    _check_rate_close(ours, ref, *_bottleneck_symbols(ours))


def test_gaussian_tables_layout_and_rate(gaussians):
    records, ours = gaussians
    ref = _Tables(_sub(records, "gc.updated"))
    assert ours.update() and not ours.update()
    assert torch.equal(ours.offset, ref.offset)
    assert torch.equal(ours.cdf_length, ref.cdf_length)
    gen = torch.Generator().manual_seed(9)
    scales = torch.rand(4000, generator=gen) * 20 + 0.05
    x = torch.randn(4000, generator=gen) * scales
    _check_rate_close(ours, ref, torch.round(x).int(), ours.build_indexes(scales))


def _bottleneck_symbols(module):
    """Symbols drawn from the bottleneck's own (float64) densities, 400 per channel (mass
    outside the table becomes a far value, coded as the escape)."""
    lengths = module.cdf_length.long() - 2
    start = module.quantiles[:, 0, 1].detach().double() + module.offset.double()
    samples = torch.arange(int(lengths.max()), dtype=torch.float64)[None, None, :]
    samples = samples + start[:, None, None]
    lower = module._logits_cumulative_exact(samples - 0.5)[:, 0]
    upper = module._logits_cumulative_exact(samples + 0.5)[:, 0]
    pmf = torch.sigmoid(upper) - torch.sigmoid(lower)
    pmf = torch.where(torch.arange(pmf.shape[1])[None, :] < lengths[:, None], pmf, 0.0)
    tail = torch.sigmoid(lower[:, 0]) + torch.sigmoid(-upper.gather(1, lengths[:, None] - 1)[:, 0])
    pmf = torch.cat([pmf, tail[:, None]], dim=1)  # last column: beyond the table (escape)
    gen = torch.Generator().manual_seed(8)
    values = torch.multinomial(pmf, 400, replacement=True, generator=gen)  # [C, 400]
    symbols = values + module.offset.long()[:, None]
    indexes = torch.arange(module.channels)[:, None].expand_as(symbols)
    return symbols.reshape(-1), indexes.reshape(-1)


def _check_rate_close(ours, ref, symbols, indexes):
    bits = code_length_bits(symbols, indexes, ours.quantized_cdf, ours.cdf_length, ours.offset)
    bits_ref = code_length_bits(symbols, indexes, ref.quantized_cdf, ref.cdf_length, ref.offset)
    # same layout, integer-exact rounding: the total rate is within 0.1% of CompressAI's
    assert float(bits.sum()) <= float(bits_ref.sum()) * 1.001
    diff = (torch.log2(torch.diff(ours.quantized_cdf.double(), dim=1).clamp(min=1))
            - torch.log2(torch.diff(ref.quantized_cdf.double(), dim=1).clamp(min=1)))
    valid = torch.arange(diff.shape[1])[None, :] < (ours.cdf_length[:, None] - 1)
    print(f"rate {bits.sum():.1f} vs CompressAI {bits_ref.sum():.1f} bits; "
          f"max per-symbol table difference {diff[valid].abs().max():.2f} bits")


@pytest.mark.parametrize("kind", ["bottleneck", "gaussian"])
def test_tables_are_deterministic(kind):
    def build(threads: int):
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            torch.manual_seed(0)
            if kind == "bottleneck":
                module = EntropyBottleneck(16)
                _perturb(module, 2)
            else:
                module = GaussianConditional(default_scale_table())
            module.update()
            return module
        finally:
            torch.set_num_threads(previous)

    one, two = build(1), build(2)
    assert torch.equal(one.quantized_cdf, two.quantized_cdf)
    assert one.table_hash() == two.table_hash()
    again = one.table_hash()
    one.update(force=True)
    assert one.table_hash() == again


def test_tables_are_built_on_cpu_whatever_the_dtype(bottlenecks):
    _, ours = bottlenecks
    ours.update()
    h = ours.table_hash()
    ours.double().update(force=True)
    assert ours.table_hash() == h
    assert ours.quantized_cdf.dtype == torch.int32


def test_errors_without_tables():
    with pytest.raises(ModelError, match="update"):
        EntropyBottleneck(3).table_hash()
    with pytest.raises(ValueError):
        GaussianConditional([1.0, 0.5])
    with pytest.raises(InputError):
        EntropyBottleneck(3)(torch.zeros(1, 4, 2, 2))


# ------------------------------------------------------------------ coding
@needs_rans
def test_bottleneck_round_trip(bottlenecks):
    _, ours = bottlenecks
    ours.update()
    x = torch.randn(2, 5, 6, 7, generator=torch.Generator().manual_seed(0)) * 5
    x[0, 0, 0, 0] = 1e6  # far outside the table: escape
    data = ours.compress(x)
    assert isinstance(data, bytes)
    y = ours.decompress(data, x.shape)
    ours.eval()
    expected, _ = ours(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@needs_rans
@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-1e5, 1e5, allow_nan=False, width=32), min_size=0, max_size=60),
    st.floats(1e-4, 1e4),
    st.booleans(),
)
def test_gaussian_round_trip_any_values(values, scale, with_means):
    module = _gaussian_with_tables()
    x = torch.tensor(values, dtype=torch.float32).reshape(1, 1, -1)
    scales = torch.full_like(x, scale)
    means = torch.full_like(x, 0.3) if with_means else None
    indexes = module.build_indexes(scales)
    data = module.compress(x, indexes, means)
    y = module.decompress(data, indexes, means)
    expected = torch.round(x - 0.3) + 0.3 if with_means else torch.round(x)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


_GAUSSIAN = {}


def _gaussian_with_tables() -> GaussianConditional:
    if "module" not in _GAUSSIAN:
        module = GaussianConditional(default_scale_table())
        module.update()
        _GAUSSIAN["module"] = module
    return _GAUSSIAN["module"]


@needs_rans
def test_gaussian_coding_rate_close_to_estimate():
    module = _gaussian_with_tables()
    gen = torch.Generator().manual_seed(4)
    scales = torch.rand(1, 8, 32, 32, generator=gen) * 6 + 0.2
    x = torch.randn(1, 8, 32, 32, generator=gen) * scales
    data = module.compress(x, module.build_indexes(scales))
    module.eval()
    _, likelihood = module(x, scales)
    estimate = float(-torch.log2(likelihood).sum())
    assert len(data) * 8 <= estimate * 1.03 + 512


@needs_rans
def test_empty_tensor_round_trip():
    module = _gaussian_with_tables()
    x = torch.zeros(0, 3, 4, 4)
    indexes = module.build_indexes(torch.ones_like(x))
    assert module.decompress(module.compress(x, indexes), indexes).shape == x.shape


@needs_rans
def test_compress_rejects_bad_input():
    module = _gaussian_with_tables()
    x = torch.tensor([[1.0, float("nan")]])
    with pytest.raises(InputError):
        module.compress(x, torch.zeros(1, 2, dtype=torch.int32))
    with pytest.raises(InputError):
        module.compress(torch.zeros(1, 2), torch.full((1, 2), 64, dtype=torch.int32))


@needs_rans
def test_fused_quantize_and_index_codes_like_compress(gaussians):
    ref, ours = gaussians
    ours.update()
    x, scales, means = ref["gc.fused.x"], ref["gc.fused.scales"], ref["gc.fused.means"]
    symbols, indexes = ours.quantize_and_index(x, scales, means)
    assert torch.equal(indexes, ref["gc.fused.indexes"])
    assert torch.equal(symbols, ref["gc.fused.symbols"])
    assert ours.compress_symbols(symbols, indexes) == ours.compress(x, indexes, means)
