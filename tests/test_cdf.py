"""Integer CDF construction: invariants, determinism, and rate against CompressAI's recipe."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import example, given, settings

from terracodec.entropy.cdf import code_length_bits, quantize_pmf, table_hash

TOTAL = 1 << 16


def _check_table(cdf: torch.Tensor, lengths: torch.Tensor) -> None:
    assert cdf.dtype == torch.int32
    for row, n in zip(cdf.tolist(), (lengths + 2).tolist()):
        assert row[0] == 0
        assert row[n - 1] == TOTAL
        assert all(b - a >= 1 for a, b in zip(row[: n - 1], row[1:n])), "zero frequency"
        assert all(v == 0 for v in row[n:]), "padding must be zero"


def _gaussian_pmfs(scales: torch.Tensor):
    center = torch.ceil(scales * 6.1).long()
    lengths = 2 * center + 1
    k = torch.arange(int(lengths.max()), dtype=torch.float64)[None, :] - center[:, None]
    s = scales[:, None]
    cum = torch.special.ndtr
    pmf = cum((0.5 - k.abs()) / s) - cum((-0.5 - k.abs()) / s)
    tail = 2 * cum((-0.5 - center) / scales)
    return pmf, lengths, tail


@settings(max_examples=40, deadline=None)
@example(rows=[[5e-324]], tails=[0.0] * 5)  # a subnormal maximum: scaled exactly, not made uniform
@given(
    st.lists(
        st.lists(
            st.one_of(st.just(0.0), st.floats(0, 1), st.floats(1e-12, 1e-6)),
            min_size=1,
            max_size=40,
        ),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.one_of(st.just(0.0), st.floats(0, 0.1)), min_size=5, max_size=5),
)
def test_tables_are_valid_for_any_pmf(rows, tails):
    width = max(len(r) for r in rows)
    pmf = torch.zeros(len(rows), width, dtype=torch.float64)
    for i, r in enumerate(rows):
        pmf[i, : len(r)] = torch.tensor(r, dtype=torch.float64)
    lengths = torch.tensor([len(r) for r in rows])
    tail = torch.tensor(tails[: len(rows)], dtype=torch.float64)
    cdf = quantize_pmf(pmf, lengths, tail)
    assert cdf.shape == (len(rows), width + 2)
    _check_table(cdf, lengths)
    # every frequency is within a few units of its exact share
    for i, r in enumerate(rows):
        probs = torch.tensor(r + [tails[i]], dtype=torch.float64)
        if probs.sum() == 0:
            continue
        exact = probs / probs.sum() * TOTAL
        freq = torch.diff(cdf[i, : len(r) + 2]).double()
        assert float((freq - exact).abs().max()) <= len(r) + 2
    assert torch.equal(quantize_pmf(pmf, lengths, tail), cdf)


def test_largest_remainder_rounding_is_exact_on_a_known_case():
    # thirds of 2**16: 21845.33 each -> one remainder unit to the first symbol (ties: lowest)
    pmf = torch.tensor([[1 / 3, 1 / 3]], dtype=torch.float64)
    cdf = quantize_pmf(pmf, torch.tensor([2]), torch.tensor([1 / 3], dtype=torch.float64))
    assert torch.diff(cdf[0]).tolist() == [21846, 21845, 21845]


def test_zero_frequencies_are_lifted_and_taken_from_the_largest():
    pmf = torch.tensor([[0.0, 0.7, 0.3, 0.0]], dtype=torch.float64)
    cdf = quantize_pmf(pmf, torch.tensor([4]), torch.tensor([0.0], dtype=torch.float64))
    freq = torch.diff(cdf[0]).tolist()
    exact = [0, round(0.7 * TOTAL), round(0.3 * TOTAL), 0, 0]
    assert freq[0] == freq[3] == freq[4] == 1
    assert freq[1] == exact[1] - 2 and freq[2] == exact[2] - 1  # 3 units from the two largest


def test_errors():
    with pytest.raises(ValueError, match="exceed"):
        quantize_pmf(torch.ones(1, 2, dtype=torch.float64), torch.tensor([3]), torch.zeros(1))
    with pytest.raises(ValueError, match="fit"):
        n = TOTAL
        quantize_pmf(torch.ones(1, n, dtype=torch.float64), torch.tensor([n]), torch.zeros(1))
    with pytest.raises(ValueError, match="16-bit"):
        quantize_pmf(torch.ones(1, 2), torch.tensor([2]), torch.zeros(1), precision=15)


def test_rate_not_worse_than_compressai_recipe(compressai_ref):
    """CompressAI's `pmf_to_quantized_cdf` of Gaussian pmfs (recorded in tests/fixtures/compressai/)
    against ours on the same pmfs."""
    records, _ = compressai_ref
    pmf, lengths, tail = records["cdf.pmf"], records["cdf.lengths"], records["cdf.tail"]
    ours = quantize_pmf(pmf, lengths, tail)
    worst_bits = 0.0
    for i in range(len(lengths)):
        n = int(lengths[i])
        probs = torch.cat([pmf[i, :n], tail[i : i + 1]])
        ref = records["cdf.ref"][i, : n + 2].long()
        f_ref = torch.diff(ref).double()
        f_ours = torch.diff(ours[i, : n + 2]).double()
        cross_ref = -(probs * torch.log2(f_ref / TOTAL)).sum()
        cross_ours = -(probs * torch.log2(f_ours / TOTAL)).sum()
        # our recipe never costs more than CompressAI's (it takes zero-fix units from the
        # most probable symbols, CompressAI from the least probable ones)
        assert cross_ours <= cross_ref + 1e-9
        worst_bits = max(worst_bits, float((torch.log2(f_ours) - torch.log2(f_ref)).abs().max()))
    print(f"max per-symbol difference vs CompressAI tables: {worst_bits:.2f} bits")


def test_hash_and_code_length():
    pmf, lengths, tail = _gaussian_pmfs(torch.tensor([0.5, 2.0], dtype=torch.float64))
    cdf = quantize_pmf(pmf, lengths, tail)
    offsets = -(lengths // 2).to(torch.int32)
    h = table_hash(cdf, lengths + 2, offsets)
    assert len(h) == 64 and h == table_hash(cdf.clone(), lengths + 2, offsets.clone())
    changed = cdf.clone()
    changed[0, 1] += 1
    assert table_hash(changed, lengths + 2, offsets) != h
    assert table_hash(cdf, lengths + 2, offsets + 1) != h
    # code length of symbol 0 under row 1 is -log2(freq / 2**16); far values cost the escape
    bits = code_length_bits(
        torch.tensor([0, 1000]), torch.tensor([1, 1]), cdf, lengths + 2, offsets
    )
    zero_freq = int(cdf[1, -offsets[1] + 1] - cdf[1, -offsets[1]])
    escape = int(lengths[1])
    escape_freq = int(cdf[1, escape + 1] - cdf[1, escape])
    assert bits.tolist() == pytest.approx(
        [-torch.log2(torch.tensor(zero_freq / TOTAL)).item(),
         -torch.log2(torch.tensor(escape_freq / TOTAL)).item()]
    )
