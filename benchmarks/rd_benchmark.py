"""Rate-distortion and speed of every terracodec model against classical codecs on real data.

    .venv/bin/python benchmarks/rd_benchmark.py            # default: ~10 min on 2 cores
    .venv/bin/python benchmarks/rd_benchmark.py --full     # whole scenes, every codec on every set

Regenerates `benchmarks/RESULTS.md` and, per data set, `benchmarks/results/rd/<set>/`
(results.json, points.csv, per_sample.csv, bd.csv, rd_<metric>.png), through the same calls as
`tec bench`. Data sets (from ../shared/data, see its MANIFEST.md):

* `oscd13`: the 10 OSCD test cities, both dates as a 2-frame series, 13 L1C bands (20/60 m bands
  resampled to 10 m, bilinear); `oscd12`: the same without B10 (the 12-band set of issue 3);
* `terramind_l1c` / `terramind_l2a`: the 5 TerraMesh samples (224 x 224), 13 / 12 bands;
* held-out Level-2A sets (`_sets.py`): `terramind_l2a_heldout` (2 TerraMesh scenes),
  `bigearthnet_l2a` (6 patches), `worldcereal_l2a_heldout` (one site's clear dates, 10 bands),
  `iota2_l2a` (4 Theia stacks, 10 bands);
* `sen1floods11`: the Sen1Floods11 S2 chip (13 bands, L1C order);
* `eolearn_series`: the 5-date eo-learn L1C series (101 x 100, reflectance x 10000, date order),
  where the video codecs code time.

Registered terracodec models run on every set whose bands they code, at all their qualities:
by default the trained ones that carry their weights (the 13-band `tec-fp-s2l1c` on the L1C
sets, the 12-band `tec-fp-s2l2a` on `oscd12` and `terramind_l2a`; trained temporal models on the
series sets); `--full` adds the untrained test model and every classical codec on every set.

By default each scene is cropped to its central 256 x 256 pixels and the smaller sets run a
subset of the codecs, so that the whole run stays near 10-15 minutes on 2 CPU cores; `--full`
lifts both limits. BD-rates are against JPEG2000 (OpenJPEG) on PSNR-10k. The run ends with the
CPU speed section of issue 3 (`scene_speed.py`: `tec-fp-s2l2a` and `tec-elic-s2l2a` against
OpenJPEG at matched PSNR on a 1024 x 1024 x 12 scene, in the same run; `--no-speed` skips it). The last printed line
is `summary: bd_rate_elic=<x> bd_rate_fp=<x> worst_l2a_bd_rate_elic=<x> worst_l2a_bd_rate_fp=<x>`:
BD-rate (%) against JPEG2000 on OSCD, PSNR-10k, of the trained 12-band TEC-FP (`tec-fp-s2l2a`,
all its qualities) on `oscd12` (else the first trained TEC-FP on `oscd12` / `oscd13`) and of a
trained TEC-ELIC likewise, then the worst BD-rate of `tec-elic-s2l2a` / `tec-fp-s2l2a` over the
held-out L2A sets; `nan` while no such model is registered (or a held-out set did not run).
RESULTS.md carries the generalisation table: every trained image model on every set.
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
RESULTS_DIR = ROOT / "benchmarks" / "results" / "rd"
ANCHOR = "jpeg2000"
#: the model and set behind `bd_rate_fp` (issue 3: the trained 12-band TEC-FP on OSCD)
FP_MODEL, FP_SET = "tec-fp-s2l2a", "oscd12"
#: the 12-band models timed on the 1024 x 1024 x 12 scene (those trained and present)
SPEED_MODELS = (FP_MODEL, "tec-elic-s2l2a")

sys.path.insert(0, str(ROOT))
from _common import SHARED_DATA, cpu_name  # noqa: E402  (this folder is on sys.path)
from _rd_sections import codec_section, method_section  # noqa: E402
from _sets import ALL, HELD_OUT_L2A, SETS  # noqa: E402


def _environment() -> dict[str, Any]:
    import imagecodecs
    import torch

    cpu = cpu_name()
    try:
        import av

        av_version = av.__version__
    except ImportError:
        av_version = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__,
            "imagecodecs": imagecodecs.__version__, "pyav": av_version,
            "load_average_start": os.getloadavg()}


def default_models(series: bool) -> list[str]:
    """Registered models of the default run: trained, with their weights here; temporal models
    only on the series sets (they code dates from dates)."""
    from terracodec.bench.learned import TerracodecModel

    return [m.name for m in TerracodecModel.registered()
            if m.trained and not m.missing_weights() and (m.kind == "image" or series)]


def run_set(key: str, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    from terracodec.bench import make_codecs, run_benchmark
    from terracodec.bench.registry import CLASSICAL
    from terracodec.bench.report import bd_table, write_outputs

    start = time.perf_counter()
    samples = spec["load"](None if args.full else args.crop)
    codecs, unavailable = make_codecs(None, threads=args.threads, device=args.device, weights=args.weights)
    if not args.full:
        wanted = (list(CLASSICAL) if spec["codecs"] == ALL else spec["codecs"]) + \
            default_models(spec.get("series", False))
        codecs = [c for c in codecs if c.name in wanted]
        unavailable = {n: why for n, why in unavailable.items() if n in wanted}
    if args.codecs:
        keep = set(args.codecs) | {ANCHOR}
        codecs = [c for c in codecs if c.name in keep]
    result = run_benchmark(samples, codecs)
    result["skipped"] = {**unavailable, **result["skipped"]}
    result["title"] = spec["title"]
    result["seconds"] = time.perf_counter() - start
    result["crop"] = None if args.full else args.crop
    out = args.results_dir / key
    write_outputs(result, out, ANCHOR, title=key)
    result["bd"] = bd_table(result, ANCHOR)
    pixels = sum(s["shape"][0] * s["shape"][2] * s["shape"][3] for s in result["samples"])
    print(f"{key}: {len(samples)} samples, {pixels / 1e6:.2f} MPix x {result['samples'][0]['shape'][1]} bands, "
          f"{len(result['codecs'])} codecs, {result['seconds']:.0f} s", flush=True)
    return result


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """BD-rate of the trained TEC-ELIC / TEC-FP models against JPEG2000 on OSCD (PSNR-10k):
    {"elic": %, "fp": %, "elic_from": "model on set, n points", "fp_from": ...}."""
    out: dict[str, Any] = {"elic": math.nan, "fp": math.nan, "elic_from": None, "fp_from": None}
    for arch_key, arch in (("elic", "tec-elic"), ("fp", "tec-fp")):
        found = []
        for set_key in ("oscd12", "oscd13"):  # issue 3 measures the 12-band models first
            res = results.get(set_key)
            for row in res["bd"] if res else []:
                info = res["codecs"].get(row["codec"], {}).get("settings", {})
                if info.get("arch") == arch and info.get("trained"):
                    found.append((set_key, row))
        if arch_key == "fp":  # the named 12-band model on oscd12 first
            found.sort(key=lambda f: (f[0], f[1]["codec"]) != (FP_SET, FP_MODEL))
        if found:
            set_key, row = found[0]
            out[arch_key] = row["bd_rate_psnr10k"]
            out[f"{arch_key}_from"] = f"{row['codec']} on {set_key}, {row['points']} points"
    return out


#: The shipped 12-band models whose worst held-out L2A BD-rate the summary reports.
L2A_MODELS = {"elic": "tec-elic-s2l2a", "fp": "tec-fp-s2l2a"}


def generalisation(results: dict[str, dict[str, Any]]) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """({model: {set: BD-rate PSNR-10k vs JPEG2000}} for every trained image model,
    {"elic"/"fp": worst over the held-out L2A sets, "<key>_set": where}) (nan: not run)."""
    table: dict[str, dict[str, float]] = {}
    for key, res in results.items():
        for row in res["bd"]:
            info = res["codecs"].get(row["codec"], {}).get("settings", {})
            if info.get("kind") == "image" and info.get("trained") and row["codec"] != ANCHOR:
                table.setdefault(row["codec"], {})[key] = row["bd_rate_psnr10k"]
    worst: dict[str, Any] = {}
    for short, name in L2A_MODELS.items():
        values = [(v, k) for k, v in table.get(name, {}).items()
                  if k in HELD_OUT_L2A and isinstance(v, float) and math.isfinite(v)]
        missing = [k for k in HELD_OUT_L2A if k in results and table.get(name, {}).get(k) is None]
        if values and not missing:
            worst[short], worst[f"{short}_set"] = max(values)
        else:
            worst[short], worst[f"{short}_set"] = math.nan, None
    return table, worst


def _generalisation_section(table: dict[str, dict[str, float]], sets: list[str]) -> list[str]:
    lines = ["## Generalisation: BD-rate against JPEG2000 on every set (PSNR-10k, %)", "",
             "Negative = fewer bits than JPEG2000 at equal PSNR. Held-out sets (marked *) were never "
             "trained on; `terramind_l2a` mixes three training scenes with the two held-out ones.", "",
             "| model | " + " | ".join(f"{k}{'*' if SETS[k].get('held_out') else ''}" for k in sets) + " |",
             "|---|" + "---:|" * len(sets)]
    for model, row in table.items():
        cells = [f"{row[k]:+.1f}" if isinstance(row.get(k), float) and math.isfinite(row[k]) else "-"
                 for k in sets]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines + [""]


def _fmt(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def write_markdown(results: dict[str, dict[str, Any]], env: dict[str, Any], args: argparse.Namespace,
                   seconds: float, summ: dict[str, Any], speed: list[dict[str, Any]]) -> None:
    from terracodec.bench.measure import METHOD
    from terracodec.bench.registry import CLASSICAL, unavailable_codecs
    from terracodec.bench.report import markdown_bd, markdown_points

    cmd = "python benchmarks/rd_benchmark.py" + (" --full" if args.full else "") + \
        (f" --crop {args.crop}" if not args.full and args.crop != 256 else "") + \
        (" --no-speed" if args.no_speed else "") + \
        (f" --sets {args.sets}" if args.sets != ",".join(SETS) else "") + \
        (f" --codecs {','.join(args.codecs)}" if args.codecs else "") + \
        "".join(f" --weights {m}={w[None]}" for m, w in args.weights.items())
    lines = [
        "# Rate-distortion and speed: terracodec against classical codecs",
        "",
        f"Regenerate with `{cmd}` (this file, and `benchmarks/results/rd/<set>/`: results.json, "
        "points.csv, per_sample.csv, bd.csv, rd_*.png). `tec bench` runs the same code on any inputs.",
        "",
        f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {env['cpu']}, "
        f"{env['cores']} cores, {seconds:.0f} s in all; load average {env['load_average_start'][0]:.1f} "
        f"at the start and {os.getloadavg()[0]:.1f} at the end (the machine is shared: speeds are "
        "indicative, compare codecs within one run only). "
        f"Python {env['python']}, NumPy {env['numpy']}, torch {env['torch']}, imagecodecs "
        f"{env['imagecodecs']}, PyAV {env['pyav']}; codec threads: {args.threads or 'library defaults'}.",
        "",
        f"**Summary** (BD-rate vs JPEG2000, PSNR-10k, OSCD; negative = fewer bits at equal PSNR): "
        f"TEC-ELIC {_fmt(summ['elic'])} %{_source(summ['elic_from'])}, "
        f"TEC-FP {_fmt(summ['fp'])} %{_source(summ['fp_from'])} (`nan`: no trained model of that kind"
        " is registered).",
        "",
    ]
    for sp in speed:
        lines += [f"**CPU speed** ({sp['scene'][1]} x {sp['scene'][2]} x {sp['scene'][0]} scene,"
                  f" {sp['threads']} threads, at matched PSNR-10k): `{sp['model']}` encodes at"
                  f" {sp['enc_ratio']:.2f}x and decodes at {sp['dec_ratio']:.2f}x OpenJPEG's speed"
                  " (geometric mean over its qualities; details below).", ""]
    table, _ = generalisation(results)
    lines += _generalisation_section(table, list(results))
    lines += method_section(METHOD)
    lines += codec_section(results, CLASSICAL, unavailable_codecs())
    if speed:
        import scene_speed

        for sp in speed:
            lines += scene_speed.markdown(sp)
    for key, res in results.items():
        lines += [
            f"## {key}: {res['title']}",
            "",
            f"{len(res['samples'])} samples ({', '.join(s['name'] for s in res['samples'][:12])}"
            f"{', ...' if len(res['samples']) > 12 else ''}); "
            + (f"central crop of at most {res['crop']} x {res['crop']} px; " if res["crop"] else "whole scenes; ")
            + f"shapes [T, C, H, W]: {', '.join(str(tuple(s['shape'])) for s in res['samples'][:4])}"
            f"{', ...' if len(res['samples']) > 4 else ''}. {res['seconds']:.0f} s.",
            "",
            f"BD against {ANCHOR} (rates with container/framing bytes):",
            "",
            markdown_bd(res["bd"]),
            "",
            _ranking(res),
            "",
            f"![{key} PSNR-10k](results/rd/{key}/rd_psnr10k.png)",
            f"![{key} MS-SSIM](results/rd/{key}/rd_ms_ssim_db.png)",
            "",
            f"Other plots: [PSNR-65k](results/rd/{key}/rd_psnr65k.png), "
            f"[SAM](results/rd/{key}/rd_sam_deg.png). Per-band PSNR: `results/rd/{key}/points.csv`.",
            "",
            "<details><summary>All points</summary>",
            "",
            markdown_points(res),
            "",
            "</details>",
            "",
        ]
        for name, why in res["skipped"].items():
            lines.append(f"* {name} not run on this set: {why}")
        lines.append("")
    args.results_md.write_text("\n".join(lines).rstrip() + "\n")


def _source(text: str | None) -> str:
    return f" ({text})" if text else ""


def _ranking(res: dict[str, Any]) -> str:
    """One sentence ordering the codecs by BD-rate (PSNR-10k), written from the numbers."""
    rows = [r for r in res["bd"] if isinstance(r["bd_rate_psnr10k"], float) and math.isfinite(r["bd_rate_psnr10k"])]
    if not rows:
        return f"No codec has a BD-rate against {ANCHOR} on this set."
    rows.sort(key=lambda r: r["bd_rate_psnr10k"])
    order = ", ".join(f"{r['codec']} ({r['bd_rate_psnr10k']:+.1f} %)" for r in rows)
    return f"By BD-rate on PSNR-10k (best first): {order}; {ANCHOR} is 0 % by definition."


def run_speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Issue 3's CPU speed comparison (scene_speed.py) for each of `SPEED_MODELS` that is
    trained and here, written beside the RD results (`scene_speed[_<model>].json/.md`)."""
    import scene_speed
    from terracodec.bench.report import jsonable

    ready = default_models(series=False)
    out, done = args.results_dir.parent, []
    for name in SPEED_MODELS:
        if name not in ready:
            print(f"speed: skipped {name}, not a trained model with weights here", flush=True)
            continue
        start = time.perf_counter()
        res = scene_speed.run(name, threads=args.threads or 1, repeats=args.speed_repeats,
                              log=lambda line: print(f"speed: {line}", flush=True))
        stem = "scene_speed" if name == FP_MODEL else f"scene_speed_{name}"
        (out / f"{stem}.json").write_text(json.dumps(jsonable(res), indent=1) + "\n")
        cmd = f"python benchmarks/scene_speed.py --model {name} --threads {res['threads']} --repeats {res['repeats']}"
        (out / f"{stem}.md").write_text("\n".join([f"Regenerate: `{cmd}` (or run rd_benchmark.py)", ""]
                                                  + scene_speed.markdown(res, "#")))
        print(f"speed: {name} {time.perf_counter() - start:.0f} s; encode {res['enc_ratio']:.2f}x, decode "
              f"{res['dec_ratio']:.2f}x OpenJPEG", flush=True)
        done.append(res)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="whole scenes, every codec on every set")
    parser.add_argument("--crop", type=int, default=256, help="central crop side in pixels (default 256)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma list of data sets")
    parser.add_argument("--codecs", default=None, help="only these codecs (plus the anchor)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="codec threads (default: all cores)")
    parser.add_argument("--device", default=None, help="torch device for terracodec models")
    parser.add_argument("--no-speed", action="store_true",
                        help="skip the CPU speed section (scene_speed.py: 1024^2 x 12 scene vs OpenJPEG)")
    parser.add_argument("--speed-repeats", type=int, default=2, help="timed runs per speed point (fastest counts)")
    parser.add_argument("--weights", action="append", default=[], metavar="MODEL=PATH",
                        help="code MODEL with these weights (.safetensors + .json) instead of its "
                             "shipped ones, e.g. a candidate from tec train (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write RESULTS.md and results/ under this folder instead (trial runs)")
    args = parser.parse_args()
    args.results_md = args.out / "RESULTS.md" if args.out else RESULTS_MD
    args.results_dir = args.out / "results" / "rd" if args.out else RESULTS_DIR
    args.results_dir.mkdir(parents=True, exist_ok=True)
    args.codecs = [c.strip() for c in args.codecs.split(",")] if args.codecs else None
    try:
        args.weights = {m: {None: Path(p)} for m, p in (w.split("=", 1) for w in args.weights)}
    except ValueError:
        sys.exit("error: --weights takes MODEL=PATH")
    if not SHARED_DATA.is_dir():
        sys.exit(f"error: {SHARED_DATA} is not present")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    env = _environment()
    start = time.perf_counter()
    results = {}
    for key in [k.strip() for k in args.sets.split(",") if k.strip()]:
        if key not in SETS:
            sys.exit(f"error: unknown set {key} (known: {', '.join(SETS)})")
        results[key] = run_set(key, SETS[key], args)
    speed = [] if args.no_speed else run_speed(args)
    seconds = time.perf_counter() - start
    summ = summary(results)
    write_markdown(results, env, args, seconds, summ, speed)
    print(f"wrote {args.results_md} and {args.results_dir}/ in {seconds:.0f} s")
    _, worst = generalisation(results)
    print(f"worst held-out L2A set: elic {worst['elic_set']}, fp {worst['fp_set']}")
    print(f"summary: bd_rate_elic={_fmt(summ['elic'])} bd_rate_fp={_fmt(summ['fp'])} "
          f"worst_l2a_bd_rate_elic={_fmt(worst['elic'])} worst_l2a_bd_rate_fp={_fmt(worst['fp'])}")


if __name__ == "__main__":
    main()
