"""FlexTEC over every quality k: real bits against the model's own estimate, and quality.

The issue's target is a trained FlexTEC's rate-distortion curve over k = 1..16 on held-out L2A
series next to separately trained TT models. No FlexTEC or L2A TT is trained here yet, so this
runs the published architecture with the random weights of the reference fixture
(`fixtures_large/flextec_published`, written by tests/fixtures/make_flextec_fixtures.py;
without it the committed tiny fixture) on its 2 frames of 256x256x12 real S2 L2A, and measures
what does not need training: that coding spends what the model estimates.

Per k, both frames are coded with `encode_frames(..., k=k)` (integer path); the estimate is the
model's own eval likelihood of every coded table cell (`LocationScaleGaussianConditional`,
`-sum log2 p` over the tokens that are sent: the scale mapping that training uses, which is also
the one coding uses), and the real bits are the payload bytes x 8 (stream framing included).
The frames are decoded for PSNR-10k against the original (random weights: low, and the same
mechanism at every k).

    python benchmarks/flextec.py     # -> benchmarks/results/flextec.{md,json}

Last line: `summary: worst_bits_gap_pct=<x> bd_rate_vs_tt=n/a` (no trained models to compare).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from _common import RESULTS, write_report
from safetensors.torch import load_file

from terracodec.normalization import Normalization
from terracodec.temporal import TemporalState
from terracodec.temporal.checkpoint import load_tt_checkpoint, tt_model_from_state

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "fixtures_large" / "flextec_published"
SMALL = ROOT / "tests" / "fixtures" / "reference_flextec"


def load() -> tuple[object, torch.Tensor, torch.Tensor, str]:
    folder = PUBLISHED if (PUBLISHED / "meta.json").exists() else SMALL
    if folder == PUBLISHED:
        model = tt_model_from_state(load_file(str(folder / "weights.safetensors")), "published FlexTEC")
    else:
        model = load_tt_checkpoint(folder / "flextec.pt")
    dn = load_file(str(folder / "data.safetensors"))["dn"]
    x = Normalization.ssl4eo_l2a().normalize(dn.to(torch.float64).transpose(0, 1)).transpose(0, 1).float()
    return model, x, dn, folder.name


def main() -> None:
    model, x, dn, source = load()
    size = x.shape[-1]
    em = None
    estimate = [0.0]
    rows = []
    for k in range(1, 17):
        coder = model._coder("int8-v2")[0]  # what `encode_frames` codes with (the stream's path)
        em = coder.bottleneck
        quantize = em.quantize_parameters

        def spy(inputs, scales, means, quantize=quantize):  # the eval likelihood of each coded cell
            if inputs is not None:
                em.quantize_parameters = quantize  # `forward` quantises through it too
                try:
                    _, likelihood = em.forward(inputs, scales, means, training=False)
                finally:
                    em.quantize_parameters = spy
                estimate[0] += float(-torch.log2(likelihood).sum())
            return quantize(inputs, scales, means)

        em.quantize_parameters = spy
        estimate[0], real, psnr = 0.0, 0, []
        try:
            enc, dec = TemporalState(), TemporalState()
            for t in range(x.shape[0]):
                payloads, enc = model.encode_frames(x[t : t + 1], enc, k=k)
                real += 8 * len(payloads[0])
                x_hat, dec = model.decode_frames(payloads, size, size, dec)
                decoded = Normalization.ssl4eo_l2a().denormalize(x_hat[0].to(torch.float64))
                psnr.append(10 * math.log10(1e8 / float(((decoded - dn[t].to(torch.float64)) ** 2).mean())))
        finally:
            del em.quantize_parameters
        pixels = x.shape[0] * x.shape[1] * size * size
        gap = 100.0 * (real / estimate[0] - 1.0)
        rows.append({"k": k, "real_bits": real, "estimate_bits": estimate[0], "gap_pct": gap,
                     "bpppb": real / pixels, "psnr10k": sum(psnr) / len(psnr)})
        print(f"k={k}: real {real} bits, estimate {estimate[0]:.0f}, gap {gap:+.2f} %, "
              f"PSNR-10k {rows[-1]['psnr10k']:.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flextec.json").write_text(json.dumps({"source": source, "rows": rows}, indent=2) + "\n")
    lines = ["# FlexTEC over k: real bits against the model's estimate (benchmarks/flextec.py)", "",
             f"Published FlexTEC architecture, RANDOM weights ({source}), {x.shape[0]} frames of "
             f"{size}x{size}x12 S2 L2A, integer entropy path. Real = payload bytes x 8 (framing included); "
             "estimate = -sum log2 of the coded cells' likelihoods (the training scale mapping).", "",
             "| k | real bits | estimate | gap | bpppb | PSNR-10k |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['k']} | {r['real_bits']} | {r['estimate_bits']:.0f} | {r['gap_pct']:+.2f} % | "
              f"{r['bpppb']:.4f} | {r['psnr10k']:.3f} |" for r in rows]
    lines += ["", "No trained FlexTEC or Level-2A TT exists here: the rate-distortion comparison with "
              "separately trained TT models (`bd_rate_vs_tt`) is not measured.", ""]
    worst = max(abs(r["gap_pct"]) for r in rows)
    write_report("flextec", lines, f"summary: worst_bits_gap_pct={worst:.2f} bd_rate_vs_tt=n/a")


if __name__ == "__main__":
    main()
