"""Benchmark outputs: Bjontegaard deltas against an anchor, JSON, CSV, RD plots, tables.

BD-rate and BD-PSNR use PSNR-10k (and BD-rate also MS-SSIM in dB) against the anchor codec on
the same samples; lossless codecs are single points and get no Bjontegaard numbers.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from terracodec.bench.metrics import bd_psnr, bd_rate
from terracodec.errors import InputError

#: metric key -> (axis label, higher is better)
RD_METRICS: dict[str, tuple[str, bool]] = {
    "psnr10k": ("PSNR-10k (dB, peak 10000 DN)", True),
    "psnr65k": ("PSNR-65k (dB, peak 65535 DN)", True),
    "ms_ssim_db": ("MS-SSIM in dB: -10 log10(1 - MS-SSIM) (data range 10000)", True),
    "sam_deg": ("SAM (degrees; lower is better)", False),
}

CSV_FIELDS = ["codec", "quality", "lossless", "exact", "bytes", "payload_bytes", "bpppb",
              "bpppb_payload", "bpp", "psnr10k", "psnr65k", "ms_ssim", "ms_ssim_db", "sam_deg",
              "enc_mpix_s", "dec_mpix_s", "enc_peak_mb", "dec_peak_mb", "enc_s", "dec_s",
              "frames", "pixels"]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def curves(result: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Lossy RD points per codec, sorted by rate."""
    out: dict[str, list[dict[str, Any]]] = {}
    for p in result["points"]:
        if not p["lossless"] and _finite(p["psnr10k"]):
            out.setdefault(p["codec"], []).append(p)
    return {k: sorted(v, key=lambda p: p["bpppb"]) for k, v in out.items()}


def bd_table(result: dict[str, Any], anchor: str) -> list[dict[str, Any]]:
    """BD-rate (%) on PSNR-10k and on MS-SSIM dB, and BD-PSNR-10k (dB), of every lossy codec
    against `anchor` (rates: total bytes, container included)."""
    rd = curves(result)
    if anchor not in rd:
        raise InputError(f"anchor codec {anchor} has no lossy points in this run "
                         f"(lossy codecs run: {', '.join(rd) or 'none'})")
    a = rd[anchor]
    rows = []
    for name, pts in rd.items():
        if name == anchor:
            continue

        def curve(points: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
            return [p["bpppb"] for p in points], [p[key] for p in points]

        rows.append({
            "codec": name,
            "anchor": anchor,
            "bd_rate_psnr10k": bd_rate(*curve(a, "psnr10k"), *curve(pts, "psnr10k")),
            "bd_psnr10k": bd_psnr(*curve(a, "psnr10k"), *curve(pts, "psnr10k")),
            "bd_rate_ms_ssim": bd_rate(*curve(a, "ms_ssim_db"), *curve(pts, "ms_ssim_db")),
            "points": len(pts),
        })
    return rows


# ----------------------------------------------------------------------------- files


def jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return jsonable(value.item())
    return value


def write_json(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(jsonable(result), indent=1) + "\n")


def write_csv(result: dict[str, Any], path: Path) -> None:
    bands = list(dict.fromkeys(b for p in result["points"] for b in p["band_psnr10k"]))
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS + [f"psnr10k_{b}" for b in bands])
        for p in result["points"]:
            row = [p[k] for k in CSV_FIELDS] + [p["band_psnr10k"].get(b, "") for b in bands]
            w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])


def write_bd_csv(rows: list[dict[str, Any]], path: Path) -> None:
    fields = ["codec", "anchor", "bd_rate_psnr10k", "bd_psnr10k", "bd_rate_ms_ssim", "points"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows:
            w.writerow([f"{r[k]:.6g}" if isinstance(r[k], float) else r[k] for k in fields])


def plot_rd(result: dict[str, Any], metric: str, path: Path, anchor: str | None = None,
            title: str | None = None) -> None:
    """One RD plot (PNG): `metric` against bpppb (log axis), one line per lossy codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label, higher = RD_METRICS[metric]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    learned = {n for n, c in result["codecs"].items() if c["settings"].get("arch")}
    untrained = {n for n, c in result["codecs"].items() if c["settings"].get("trained") is False}
    for i, (name, pts) in enumerate(curves(result).items()):
        xs = [p["bpppb"] for p in pts if _finite(p[metric])]
        ys = [p[metric] for p in pts if _finite(p[metric])]
        if not xs:
            continue
        style = dict(marker="o", markersize=4, linewidth=1.5, label=name, color=f"C{i % 10}")
        if name == anchor:
            style.update(color="black", linewidth=2.5, label=f"{name} (anchor)")
        if name in learned:
            style.update(marker="s", linewidth=2.2)
            if name in untrained:
                style.update(label=f"{name} (untrained)")
        else:
            style.update(linestyle="--" if name != anchor else "-")
        ax.plot(xs, ys, **style)
    ax.set_xscale("log")
    ax.set_xlabel("rate (bits per pixel per band, log scale)")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"rate-distortion: {metric}")
    if ax.get_legend_handles_labels()[0]:  # e.g. MS-SSIM skipped: nothing to label
        ax.legend(fontsize=8, loc="lower right" if higher else "upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out_dir: Path, anchor: str | None, title: str | None = None) -> list[Path]:
    """results.json, points.csv, per_sample.csv, bd.csv (with an anchor) and rd_<metric>.png,
    each written to a temporary file and moved into place only when all succeeded."""
    from terracodec.io.atomic import AtomicOutputs

    bd = bd_table(result, anchor) if anchor else []
    result = dict(result, bd=bd, anchor=anchor)
    writers: list[tuple[str, Any]] = [
        ("results.json", lambda p: write_json(result, p)),
        ("points.csv", lambda p: write_csv(result, p)),
        ("per_sample.csv", lambda p: _write_per_sample(result, p)),
    ]
    if anchor:
        writers.append(("bd.csv", lambda p: write_bd_csv(bd, p)))
    for metric in RD_METRICS:
        writers.append((f"rd_{metric}.png", lambda p, m=metric: plot_rd(
            result, m, p, anchor, title=f"{title}: {m}" if title else None)))
    with AtomicOutputs(overwrite=True) as outputs:
        outputs.make_dir(out_dir)
        for name, write in writers:
            temp = outputs.temp_for(out_dir / name, suffix=Path(name).suffix)
            write(temp)
    return [out_dir / name for name, _ in writers]


def _write_per_sample(result: dict[str, Any], path: Path) -> None:
    rows = result["per_sample"]
    fields = list(rows[0]) if rows else ["codec", "quality", "sample"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows:
            w.writerow([_cell(r.get(k)) for k in fields])


def _cell(v: Any) -> Any:
    """A CSV cell: floats to 6 significant digits, lists (per-frame values) joined by ';'."""
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return ";".join(str(_cell(x)) for x in v)
    return "" if v is None else v


# ----------------------------------------------------------------------------- tables


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.{digits}f}"
    return str(v)


POINT_COLUMNS = [
    ("codec", "codec", None), ("quality", "quality", None), ("bpppb", "bpppb", 4),
    ("bpppb_payload", "payload bpppb", 4), ("psnr10k", "PSNR-10k", 2), ("psnr65k", "PSNR-65k", 2),
    ("ms_ssim", "MS-SSIM", 5), ("sam_deg", "SAM deg", 3), ("enc_mpix_s", "enc MPix/s", 2),
    ("dec_mpix_s", "dec MPix/s", 2), ("enc_peak_mb", "enc MB", 0), ("dec_peak_mb", "dec MB", 0),
]


def point_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for p in result["points"]:
        row = []
        for key, _, digits in POINT_COLUMNS:
            v = p[key]
            row.append(_fmt(v, digits) if digits is not None else str(v))
        if p["lossless"]:
            row[4] = row[5] = "lossless" if p["exact"] else "NOT EXACT"
        rows.append(row)
    return rows


def bd_rows(bd: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["codec"], _fmt(r["bd_rate_psnr10k"], 1), _fmt(r["bd_psnr10k"], 2),
             _fmt(r["bd_rate_ms_ssim"], 1), str(r["points"])] for r in bd]


BD_HEADER = ["codec", "BD-rate % (PSNR-10k)", "BD-PSNR-10k dB", "BD-rate % (MS-SSIM dB)", "points"]


def print_tables(result: dict[str, Any], bd: list[dict[str, Any]], anchor: str | None, console: Any = None) -> None:
    """The RD points and the Bjontegaard table as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="rate-distortion points (rates include container/framing bytes)")
    for _, head, digits in POINT_COLUMNS:
        t.add_column(head, justify="left" if digits is None else "right")
    for row in point_rows(result):
        t.add_row(*row)
    console.print(t)
    if anchor:
        b = Table(title=f"Bjontegaard deltas against {anchor} (negative BD-rate = fewer bits)")
        for head in BD_HEADER:
            b.add_column(head, justify="right" if head != "codec" else "left")
        for row in bd_rows(bd):
            b.add_row(*row)
        console.print(b)
    for name, why in result.get("skipped", {}).items():
        console.print(f"skipped {name}: {why}")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_points(result: dict[str, Any]) -> str:
    return markdown_table([h for _, h, _ in POINT_COLUMNS], point_rows(result))


def markdown_bd(bd: list[dict[str, Any]]) -> str:
    return markdown_table(BD_HEADER, bd_rows(bd))
