"""TEC-TT coding speed: ours against the reference package, same weights, same input, one run.

The reference (IBM terracodec 0.3.1) runs in its own virtual environment (`.refvenv`) through
`tests/fixtures/make_tt_fixtures.py published`: it builds the published-size model (d_model 768,
16 heads, 6+4+5 layers, 192 latent channels, ~225 M parameters) with random weights from a fixed
seed (latents widened and scales lifted, see that script), codes the same 256x256x12 frames of
real S2 L2A with `compress()` and `decompress()`, times them, and writes its weights, input and
outputs as safetensors files. We then load those weights (`tt_model_from_state`), code the same
frames with `encode_frames` / `decode_frames`, time every frame, and compare: reconstructions
(max abs difference to the reference's, normalised), decoded latents, and bits.

Per-frame times include the transforms (analysis on encode, synthesis on decode), as the
reference's `compress` / `decompress` do; table construction is excluded on both sides (ours
load from the disk cache, the reference builds its own once). The reference keeps no per-frame
times, so its per-frame figure is its total divided by the number of frames; ours is reported per
frame too: the first frame of a sequence is cheap for us (its context is a learned constant:
one window is encoded and broadcast), later frames pay the two context encoders. The speedups
compare totals over the same frames.

    python benchmarks/tt_speed.py [--frames 2] [--size 256] [--threads N] [--reuse-reference]

Writes benchmarks/results/tt_speed_threads<N>.{json,md}; the last printed line is
`summary: encode_speedup=<x> decode_speedup=<x> later_frames_encode_speedup=<x>
later_frames_decode_speedup=<x>` (the last two: the slowest frame >= 1 against the reference's
per-frame average). On a shared machine, compare at a fixed `--threads` (both sides use it):
the reference's intra-op parallel regions wait for a busy second core; ours run chunks of
windows on that many threads (`terracodec.parallel`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFVENV = ROOT / ".refvenv" / "bin" / "python"
SCRIPT = ROOT / "tests" / "fixtures" / "make_tt_fixtures.py"
RESULTS = ROOT / "benchmarks" / "results"


def _psnr10k(x_hat, dn) -> float:
    """PSNR (peak 10000 DN) of a normalised reconstruction against the original DN."""
    from terracodec.normalization import Normalization

    decoded = Normalization.ssl4eo_l2a().denormalize(x_hat.to(torch.float64))
    mse = float(((decoded - dn.to(torch.float64)) ** 2).mean())
    return 10.0 * math.log10(1e8 / mse)


def run_reference(out: Path, frames: int, size: int, threads: int | None) -> None:
    if not REFVENV.exists():
        sys.exit(f"error: {REFVENV} not found (see tests/fixtures/make_reference_fixtures.py)")
    cmd = [str(REFVENV), str(SCRIPT), "published", "--out", str(out), "--frames", str(frames),
           "--height", str(size), "--width", str(size)]
    if threads:
        cmd += ["--threads", str(threads)]
    print("reference:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads, both sides")
    parser.add_argument("--out", type=Path, default=ROOT / "fixtures_large" / "tt_published")
    parser.add_argument("--reuse-reference", action="store_true",
                        help="reuse the reference outputs in --out when they match")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from safetensors.torch import load_file

    from terracodec.normalization import Normalization
    from terracodec.temporal import TemporalState
    from terracodec.temporal.checkpoint import tt_model_from_state

    meta_path = args.out / "meta.json"
    fresh = True
    if args.reuse_reference and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        # same frames, size and thread count, or the times are not side by side
        fresh = not (meta["frames"] == args.frames and meta["height"] == args.size
                     and meta.get("threads") == args.threads)
    load_before = os.getloadavg()
    if fresh:
        run_reference(args.out, args.frames, args.size, args.threads)
    meta = json.loads(meta_path.read_text())
    data = load_file(str(args.out / "data.safetensors"))

    t0 = time.perf_counter()
    model = tt_model_from_state(load_file(str(args.out / "weights.safetensors")), "reference weights")
    t_load = time.perf_counter() - t0
    x = Normalization.ssl4eo_l2a().normalize(data["dn"].to(torch.float64).transpose(0, 1)).transpose(0, 1).float()
    s = args.size
    with torch.no_grad():
        # Setup, like the tables: the first frame's memory is a constant of the weights (the
        # learned pad latent through both context encoders), computed once per loaded model.
        t0 = time.perf_counter()
        model.memory(TemporalState())
        t_start_memory = time.perf_counter() - t0
        # Warm-up on a small tile: loads the coder's compiled numba kernels (cached on disk).
        warm, _ = model.encode_frames(x[:1, :, :64, :64])
        model.decode_frames(warm, 64, 64)

    enc_state, dec_state = TemporalState(), TemporalState()
    enc_times, dec_times, bits, diffs, latents_equal, psnr = [], [], [], [], [], []
    for t in range(args.frames):
        t0 = time.perf_counter()
        payloads, enc_state = model.encode_frames(x[t : t + 1], enc_state)
        enc_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()  # = decode_frames, keeping the latents for the check
        latents, dec_state = model.decode_latent_frames(payloads, s, s, dec_state)
        with torch.no_grad():
            x_hat = model._synthesize(latents["y_hat"], latents["features"])
        dec_times.append(time.perf_counter() - t0)
        bits.append(len(payloads[0]) * 8)
        diffs.append(float((x_hat[0] - data["x_hat"][t]).abs().max()))
        psnr.append((_psnr10k(x_hat[0], data["dn"][t]), _psnr10k(data["x_hat"][t], data["dn"][t])))
        latents_equal.append(bool(torch.equal(latents["y_hat"][0], data["y_hat"][t])))
        print(f"frame {t}: encode {enc_times[-1]:.2f} s, decode {dec_times[-1]:.2f} s, "
              f"{bits[-1]} bits (reference {meta['bits_compress'][t]}), max |x_hat diff| {diffs[-1]:.2e}",
              flush=True)
    load_after = os.getloadavg()

    ref = meta["seconds"]
    ours_enc, ours_dec = sum(enc_times), sum(dec_times)
    result = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(),
                    "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)]},
        "frames": args.frames, "size": s, "parameters_millions": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "reference_seconds_per_frame": {"encode": ref["compress"] / args.frames,
                                        "decode": ref["decompress"] / args.frames},
        "ours_seconds_per_frame": {"encode": enc_times, "decode": dec_times},
        "encode_speedup": ref["compress"] / ours_enc,
        "decode_speedup": ref["decompress"] / ours_dec,
        # frames >= 1 pay both context encoders (frame 0's context is a constant): the
        # steady state of a long series, against the reference's per-frame average
        "later_frames_encode_speedup": [ref["compress"] / args.frames / e for e in enc_times[1:]],
        "later_frames_decode_speedup": [ref["decompress"] / args.frames / d for d in dec_times[1:]],
        "bits_ours": bits, "bits_reference": meta["bits_compress"],
        "bits_reference_forward_estimate": meta["bits_forward"],
        "max_abs_x_hat_diff": diffs, "latents_equal": latents_equal,
        "psnr10k_ours_reference": psnr,
        "bits_ratio_max": max(b / r for b, r in zip(bits, meta["bits_compress"])),
        "psnr10k_gap_max_db": max(abs(a - b) for a, b in psnr),
        "model_load_seconds": t_load, "first_frame_memory_seconds": t_start_memory,
        "reference_table_seconds": ref["tables"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"tt_speed_threads{torch.get_num_threads()}"
    (RESULTS / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# TEC-TT coding speed (published size, random weights)",
        "",
        f"{args.frames} frames of {s}x{s}x12 S2 L2A, {result['parameters_millions']} M parameters, "
        f"{result['machine']['cores']} cores, torch threads {result['machine']['torch_threads']}, "
        f"load average {result['machine']['load_average_before_after']} (before, after). "
        "`python benchmarks/tt_speed.py" + "".join(" " + a for a in sys.argv[1:]) + "`",
        "",
        "| frame | ours encode s | ours decode s | ours bits | reference bits | max abs x_hat diff | same latents | PSNR-10k ours / reference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in range(args.frames):
        lines.append(f"| {t} | {enc_times[t]:.2f} | {dec_times[t]:.2f} | {bits[t]} | {meta['bits_compress'][t]} "
                     f"| {diffs[t]:.1e} | {latents_equal[t]} | {psnr[t][0]:.3f} / {psnr[t][1]:.3f} |")
    lines += [
        "",
        f"Reference per frame (total / frames): encode {ref['compress'] / args.frames:.1f} s, "
        f"decode {ref['decompress'] / args.frames:.1f} s.",
        f"Speedup over all frames: encode {result['encode_speedup']:.1f}x, decode "
        f"{result['decode_speedup']:.1f}x.",
        "Speedup of each frame >= 1 (both context encoders; the steady state of a series) over "
        "the reference's per-frame average: encode "
        + ", ".join(f"{v:.1f}x" for v in result["later_frames_encode_speedup"]) + "; decode "
        + ", ".join(f"{v:.1f}x" for v in result["later_frames_decode_speedup"]) + ".",
        f"Setup, not timed above: our model load {t_load:.1f} s and first-frame memory "
        f"{t_start_memory:.1f} s (once per loaded model); the reference's table build "
        f"{ref['tables']:.1f} s.",
        "",
    ]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    later = ""
    if args.frames > 1:
        later = (f" later_frames_encode_speedup={min(result['later_frames_encode_speedup']):.2f}"
                 f" later_frames_decode_speedup={min(result['later_frames_decode_speedup']):.2f}")
    print(f"summary: encode_speedup={result['encode_speedup']:.2f} decode_speedup={result['decode_speedup']:.2f}"
          + later + f" bits_ratio_max={result['bits_ratio_max']:.4f} psnr10k_gap_max_db={result['psnr10k_gap_max_db']:.4f}")


if __name__ == "__main__":
    main()
