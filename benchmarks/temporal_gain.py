"""The temporal gain of TEC-TT: what coding a date *with* the previous dates as context saves.

    .venv/bin/python benchmarks/temporal_gain.py          # ~5 min on 2 cores

On multi-date real data that no model here was trained on (the 10 OSCD test cities, both dates,
13 L1C bands, central 256 x 256 crops; the 5-date eo-learn series, 101 x 100, date order), the
second and later frames are coded three ways, all through the real coders (bytes, not estimated
bits):

* `tt`: the small TEC-TT (`terracodec/weights/tec-tt-small-s2l1c`) with its temporal context
  (`encode_frames` / `decode_frames`, the state carried from date to date);
* `tt_intra`: the same model with no context (each frame coded as a first frame), i.e. the TT as
  an image codec: the difference to `tt` is the temporal gain proper;
* `fp`: our image codec `tec-fp-s2l1c` (13 bands, variable rate, qualities 1..5), whose rate is
  interpolated at the TT's PSNR-10k (piecewise linear in PSNR vs log-rate): the saving of the
  temporal model over the image codec of similar size at equal PSNR.

Frames are padded (edge replication) to a multiple of 64 pixels (the TT's tile multiple) and the
same padded frames go to every codec; PSNR is computed on the original pixels, and rates are
bits per original pixel per band (bpppb). PSNR of a set pools the squared error of all its
frames. Writes `benchmarks/results/temporal_gain.{json,md}`; the last line is
`summary: temporal_gain_pct=<x> ...`, x = the saving of `tt` over `tt_intra` on all later
frames pooled (positive = the context saves bits); `vs_fp_pct`: the saving over TEC-FP at equal
PSNR (n/a outside TEC-FP's PSNR range); `vs_fp_at_most_pct`: where TEC-FP reaches the TT's PSNR
with fewer bits, the bound that this puts on that saving.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "benchmarks" / "results"
TT_WEIGHTS = ROOT / "terracodec" / "weights" / "tec-tt-small-s2l1c"
FP_NAME = "tec-fp-s2l1c"

sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import cpu_name, eolearn_series, oscd_test_series  # noqa: E402
from terracodec.zoo import from_pretrained
from terracodec.bands import S2_L1C_BANDS  # noqa: E402
from terracodec.bench.metrics import PEAK_10K, psnr_from_mse  # noqa: E402


# ----------------------------------------------------------------------------- data
def oscd_test(crop: int) -> list[tuple[str, np.ndarray]]:
    return [(s.name, s.pixels) for s in oscd_test_series(S2_L1C_BANDS, crop)]


def pad_to(x: np.ndarray, multiple: int) -> np.ndarray:
    """[..., H, W] edge-padded at the bottom/right to multiples of `multiple`."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, ph), (0, pw)], mode="edge") if ph or pw else x


# ----------------------------------------------------------------------------- coding
def _tensor(model, frames_dn: np.ndarray) -> torch.Tensor:
    from terracodec.normalization import Normalization

    norm = Normalization.from_config(model.config["normalization"])
    return torch.stack([norm.normalize(torch.from_numpy(f.astype(np.float32))) for f in frames_dn])


def _dn(model, x: torch.Tensor, h: int, w: int) -> np.ndarray:
    from terracodec.normalization import Normalization

    norm = Normalization.from_config(model.config["normalization"])
    return norm.denormalize(x[..., :h, :w].detach().cpu().numpy(), dtype=np.uint16)


def code_tt(model, frames_dn: np.ndarray, context: bool) -> list[tuple[int, np.ndarray]]:
    """(bytes, decoded DN [C, h, w]) per frame; `context=False` codes every frame as a first one."""
    h, w = frames_dn.shape[-2:]
    x = _tensor(model, pad_to(frames_dn, model.multiple))
    enc_state = dec_state = None
    out = []
    for t in range(x.shape[0]):
        payloads, new_enc = model.encode_frames(x[t : t + 1], enc_state)
        x_hat, new_dec = model.decode_frames(payloads, x.shape[-2], x.shape[-1], dec_state)
        if context:
            enc_state, dec_state = new_enc, new_dec
        out.append((len(payloads[0]), _dn(model, x_hat[0], h, w)))
    return out


def code_image(model, frames_dn: np.ndarray) -> list[tuple[int, np.ndarray]]:
    h, w = frames_dn.shape[-2:]
    x = _tensor(model, pad_to(frames_dn, 64))
    out = []
    for t in range(x.shape[0]):
        data = model.encode_tile(x[t])
        x_hat = model.decode_tile(data, x.shape[-2], x.shape[-1])
        out.append((len(data), _dn(model, x_hat, h, w)))
    return out


# ----------------------------------------------------------------------------- metrics
def _pool(rows: list[dict]) -> dict[str, float]:
    """bpppb and PSNR-10k of a set of coded frames (squared errors pooled)."""
    values = sum(r["values"] for r in rows)
    bits = sum(8 * r["bytes"] for r in rows)
    sse = sum(r["sse"] for r in rows)
    return {"bpppb": bits / values, "psnr10k": float(psnr_from_mse(sse / values, PEAK_10K)), "frames": len(rows)}


def _frame_row(sample: str, t: int, n_bytes: int, orig: np.ndarray, dec: np.ndarray) -> dict:
    d = orig.astype(np.float64) - dec.astype(np.float64)
    return {"sample": sample, "frame": t, "bytes": n_bytes, "values": int(orig.size), "sse": float((d * d).sum())}


def rate_at_psnr(curve: list[dict], psnr: float) -> float:
    """FP's bpppb at `psnr`, piecewise linear in (PSNR, log bpppb); nan outside the curve."""
    pts = sorted((c["psnr10k"], math.log(c["bpppb"])) for c in curve)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    if not xs[0] <= psnr <= xs[-1]:
        return math.nan
    return float(math.exp(np.interp(psnr, xs, ys)))


def _gain(rate: float, reference: float) -> float:
    return 100.0 * (1.0 - rate / reference) if reference and not math.isnan(reference) else math.nan


# ----------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> dict[str, Any]:
    from terracodec.models.base import ImageCodec
    from terracodec.zoo import load_model

    torch.set_num_threads(args.threads)
    tt = from_pretrained(str(args.tt)).eval()
    tt.update()
    fps = {q: load_model(FP_NAME, q, weights=args.fp_weights) for q in (1, 2, 3, 4, 5)}
    eolearn = [(s.name, s.pixels) for s in eolearn_series(S2_L1C_BANDS)]
    sets = {"oscd_test": oscd_test(args.crop), "eolearn_series": eolearn}
    if args.quick:
        sets = {"oscd_test": sets["oscd_test"][:2], "eolearn_series": sets["eolearn_series"]}

    frames: dict[str, list[dict]] = {}
    timing: dict[str, float] = {}
    for set_name, samples in sets.items():
        for name, pix in samples:
            print(f"{set_name}/{name} {tuple(pix.shape)}", flush=True)
            coders = {"tt": lambda p: code_tt(tt, p, True), "tt_intra": lambda p: code_tt(tt, p, False)}
            coders.update({f"fp_q{q}": (lambda p, m=m: code_image(m, p)) for q, m in fps.items()})
            for codec, fn in coders.items():
                start = time.perf_counter()
                coded = fn(pix)
                timing[codec] = timing.get(codec, 0.0) + time.perf_counter() - start
                for t, (n_bytes, dec) in enumerate(coded):
                    row = _frame_row(name, t, n_bytes, pix[t], dec)
                    frames.setdefault(codec, []).append(dict(row, set=set_name))

    sets_out: dict[str, Any] = {}
    for set_name in list(sets) + ["all"]:
        pick = lambda codec, later: [  # noqa: E731
            r for r in frames[codec]
            if (set_name == "all" or r["set"] == set_name) and ((r["frame"] > 0) == later)
        ]
        entry: dict[str, Any] = {}
        for part, later in (("later_frames", True), ("first_frames", False)):
            tt_p, intra_p = _pool(pick("tt", later)), _pool(pick("tt_intra", later))
            fp_curve = [dict(_pool(pick(f"fp_q{q}", later)), quality=q) for q in fps]
            fp_at_tt = rate_at_psnr(fp_curve, tt_p["psnr10k"])
            fp_at_intra = rate_at_psnr(fp_curve, intra_p["psnr10k"])
            entry[part] = {
                "tt": tt_p, "tt_intra": intra_p, "fp": fp_curve,
                "fp_bpppb_at_tt_psnr": fp_at_tt,
                "gain_vs_intra_pct": _gain(tt_p["bpppb"], intra_p["bpppb"]),
                "gain_vs_fp_pct": _gain(tt_p["bpppb"], fp_at_tt),
                "gain_vs_fp_at_most_pct": _dominated_bound(tt_p, fp_curve),
                "intra_vs_fp_pct": _gain(intra_p["bpppb"], fp_at_intra),
            }
        sets_out[set_name] = entry
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tt_weights": str(Path(args.tt).relative_to(ROOT)) if Path(args.tt).is_relative_to(ROOT) else str(args.tt),
        "tt_config": {k: v for k, v in tt.config.items() if k != "normalization"},
        "tt_weights_hash": tt.weights_hash(),
        "fp": FP_NAME if args.fp_weights is None else f"{FP_NAME} ({args.fp_weights})",
        "crop": args.crop,
        "environment": {"cpu": cpu_name(), "cores": os.cpu_count(), "threads": args.threads,
                        "python": platform.python_version(), "torch": torch.__version__},
        "seconds": {k: round(v, 1) for k, v in timing.items()},
        "sets": sets_out,
        "frames": {codec: rows for codec, rows in frames.items()},
    }


def _dominated_bound(tt: dict, fp_curve: list[dict]) -> float:
    """Upper bound on the TT's saving over TEC-FP at equal PSNR when TEC-FP points reach at least
    the TT's PSNR with fewer bits (the FP's rate at the TT's PSNR is then at most theirs): the
    tightest `100 * (1 - tt / fp)` over those points; nan when no point dominates."""
    bounds = [_gain(tt["bpppb"], c["bpppb"]) for c in fp_curve
              if c["psnr10k"] >= tt["psnr10k"] and c["bpppb"] < tt["bpppb"]]
    return min(bounds) if bounds else math.nan


def _fmt(x: float, nd: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Temporal gain of the small TEC-TT (`benchmarks/temporal_gain.py`)", "",
        f"Created {res['created']} on {res['environment']['cpu']} ({res['environment']['threads']} thread(s)). "
        f"TT weights `{res['tt_weights']}` (hash {res['tt_weights_hash'][:12]}); image codec `{res['fp']}`. "
        f"OSCD test cities: central {res['crop']} px crops, both dates; eo-learn: 5 dates, 101 x 100. "
        "Real coded bytes; PSNR-10k (peak 10000 DN) on the original pixels; rate in bpppb.", "",
        "`tt`: TT with temporal context; `tt_intra`: the same TT, every frame coded as a first frame "
        "(no context); `fp@psnr`: TEC-FP's rate interpolated at the TT's PSNR.", "",
        "| set | frames | tt bpppb | tt PSNR | tt_intra bpppb | tt_intra PSNR | fp@psnr bpppb "
        "| gain vs intra | gain vs FP | intra vs FP |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for set_name, entry in res["sets"].items():
        for part in ("later_frames", "first_frames"):
            e = entry[part]
            lines.append(
                f"| {set_name} | {part.replace('_', ' ')} ({e['tt']['frames']}) | {_fmt(e['tt']['bpppb'], 4)} "
                f"| {_fmt(e['tt']['psnr10k'])} | {_fmt(e['tt_intra']['bpppb'], 4)} | {_fmt(e['tt_intra']['psnr10k'])} "
                f"| {_fmt(e['fp_bpppb_at_tt_psnr'], 4)} | {_fmt(e['gain_vs_intra_pct'], 1)} % "
                f"| {_fmt(e['gain_vs_fp_pct'], 1)} % | {_fmt(e['intra_vs_fp_pct'], 1)} % |"
            )
    lines += ["", "Where the TT's PSNR lies outside TEC-FP's curve there is no equal-PSNR rate (n/a); "
              "the nearest TEC-FP point (later frames):", ""]
    for set_name, entry in res["sets"].items():
        e = entry["later_frames"]
        near = min(e["fp"], key=lambda c: abs(c["psnr10k"] - e["tt"]["psnr10k"]))
        lines.append(
            f"* {set_name}: tt {_fmt(e['tt']['bpppb'], 4)} bpppb at {_fmt(e['tt']['psnr10k'])} dB; "
            f"tec-fp q{near['quality']} {_fmt(near['bpppb'], 4)} bpppb at {_fmt(near['psnr10k'])} dB "
            f"({_fmt(100 * (near['bpppb'] / e['tt']['bpppb'] - 1), 1)} % bits, "
            f"{_fmt(near['psnr10k'] - e['tt']['psnr10k'])} dB)"
        )
    for set_name, entry in res["sets"].items():
        bound = entry["later_frames"]["gain_vs_fp_at_most_pct"]
        if not math.isnan(bound):
            lines.append(f"* {set_name}: TEC-FP reaches the TT's PSNR with fewer bits, so at equal PSNR "
                         f"the TT saves at most {_fmt(bound, 1)} %: it needs at least {_fmt(-bound, 0)} % more bits than TEC-FP")
    lines += ["", "TEC-FP curves (later frames):", "", "| set | q | bpppb | PSNR-10k |", "|---|---|---|---|"]
    for set_name, entry in res["sets"].items():
        for c in entry["later_frames"]["fp"]:
            lines.append(f"| {set_name} | {c['quality']} | {_fmt(c['bpppb'], 4)} | {_fmt(c['psnr10k'])} |")
    lines += ["", "Per frame (bytes):", "", "| sample | frame | tt | tt_intra | saving |", "|---|---|---|---|---|"]
    for a, b in zip(res["frames"]["tt"], res["frames"]["tt_intra"]):
        lines.append(f"| {a['sample']} | {a['frame']} | {a['bytes']} | {b['bytes']} | "
                     f"{_fmt(100 * (1 - a['bytes'] / b['bytes']), 1)} % |")
    lines += ["", "Coding time (encode + decode, all samples, s): "
              + ", ".join(f"{k} {v}" for k, v in res["seconds"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tt", type=Path, default=TT_WEIGHTS, help="TT weights stem (.safetensors + .json)")
    ap.add_argument("--fp-weights", default=None, help="override the registered TEC-FP weights")
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="2 OSCD cities only (a smoke run)")
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    args = ap.parse_args()
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "temporal_gain.json").write_text(json.dumps(res, indent=1) + "\n")
    (args.out / "temporal_gain.md").write_text(markdown(res))
    print(markdown(res))
    later = res["sets"]["all"]["later_frames"]
    print(f"summary: temporal_gain_pct={_fmt(later['gain_vs_intra_pct'], 2)} "
          f"vs_fp_pct={_fmt(later['gain_vs_fp_pct'], 2)} "
          f"vs_fp_at_most_pct={_fmt(later['gain_vs_fp_at_most_pct'], 2)}")


if __name__ == "__main__":
    main()
