"""`tec bench`: rate-distortion and speed of terracodec models against classical codecs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from terracodec.errors import InputError


def parse_qualities(items: tuple[str, ...]) -> dict[str, list[Any]]:
    """`CODEC=v1,v2,...` items -> {codec: [values]} (numbers where they look like numbers)."""
    out: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise InputError(f"--qualities takes CODEC=v1,v2,...; got {item!r}")
        parsed: list[Any] = []
        for v in values.split(","):
            v = v.strip()
            if not v:
                continue
            for kind in (int, float):
                try:
                    parsed.append(kind(v))
                    break
                except ValueError:
                    pass
            else:
                parsed.append(v)
        out[name.strip()] = parsed
    return out


def parse_weights(items: tuple[str, ...], models: list[str]) -> list[tuple[str | None, Any, str]]:
    """`--weights` items -> (model or None, quality or None, path).

    `PATH` (for the one model in --codecs), `MODEL=PATH` (every quality swept) or
    `MODEL@Q=PATH` (quality Q only; repeat for a curve of fixed-rate checkpoints).
    """
    out: list[tuple[str | None, Any, str]] = []
    for item in items:
        head, sep, path = item.partition("=")
        name, at, q = head.partition("@")
        if not sep or name.strip() not in models:
            out.append((None, None, item))  # a bare path (which may itself contain '=')
            continue
        quality: Any = None
        if at:
            q = q.strip()
            quality = int(q) if q.isdigit() else q
            if quality == "":
                raise InputError(f"--weights takes MODEL@QUALITY=PATH; got {item!r}")
        if not path.strip():
            raise InputError(f"--weights {item!r} names no file")
        out.append((name.strip(), quality, path.strip()))
    return out


def parse_codecs(text: str | None) -> list[str] | None:
    if text is None or text.strip().lower() == "all":
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InputError("--codecs is empty")
    return names


@click.command("bench")
@click.argument("inputs", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder for results.json, points.csv, per_sample.csv, bd.csv and rd_*.png.")
@click.option("--codecs", "codecs_text", default="all", show_default=True,
              help="Comma list of codecs (see --list), or 'all' (those available here).")
@click.option("--anchor", default="jpeg2000", show_default=True,
              help="Codec the Bjontegaard deltas are measured against ('' for none).")
@click.option("--qualities", "quality_items", multiple=True, metavar="CODEC=V1,V2,...",
              help="Quality sweep of one codec (repeatable); default: the codec's own sweep.")
@click.option("--bands", "bands_text", default=None,
              help="L1C, L2A or a comma list of S2 band names; default: every S2 band present.")
@click.option("--series", is_flag=True,
              help="Each input folder is one time series (its scenes are the dates).")
@click.option("--crop", type=int, default=None, help="Use the central CROP x CROP pixels of each input.")
@click.option("--threads", type=int, default=None,
              help="Threads for the codecs that take a number (and torch); default: library defaults.")
@click.option("--device", default=None, help="Torch device for terracodec models (cpu, cuda, ...).")
@click.option("--weights", "weights_items", multiple=True, metavar="[MODEL[@Q]=]PATH",
              help="Weights for a terracodec model (repeatable): a TerraCodec v1 .pt or a .safetensors "
                   "with its .json. PATH alone: the one model in --codecs, at its default quality (or "
                   "the --qualities given); MODEL=PATH: every quality; MODEL@Q=PATH: quality Q only.")
@click.option("--no-ms-ssim", is_flag=True, help="Skip MS-SSIM (the slowest metric).")
@click.option("--list", "list_only", is_flag=True, help="List the codecs and whether they run here, then exit.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no tables.")
def bench_command(inputs, out_dir, codecs_text, anchor, quality_items, bands_text, series, crop,
                  threads, device, weights_items, no_ms_ssim, list_only, quiet):
    """Sweep codecs over INPUTS (GeoTIFFs, scene folders, .npy) and report rate-distortion,
    speed and memory, with BD-rate / BD-PSNR against --anchor."""
    from rich.console import Console

    from terracodec.bench import load_inputs, make_codecs
    from terracodec.bench.registry import assign_weights, codec_names, unavailable_codecs
    from terracodec.bench.report import bd_table, print_tables, write_outputs
    from terracodec.cli.train import parse_bands

    names = parse_codecs(codecs_text)
    from terracodec import api

    weights = assign_weights(parse_weights(weights_items, [m["name"] for m in api.models()]), names)
    if list_only:
        missing = unavailable_codecs(weights)
        for name in codec_names():
            click.echo(f"{name:<20} {'unavailable: ' + missing[name] if name in missing else 'available'}")
        return
    if not inputs or not out_dir:
        raise InputError("tec bench needs INPUT... and --out DIR (or --list)")
    qualities = parse_qualities(quality_items)
    bands = list(parse_bands(bands_text)) if bands_text else None
    anchor = anchor or None
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be positive, got {threads}")
        import torch

        torch.set_num_threads(threads)
    samples = load_inputs(list(inputs), bands=bands, series=series, crop=crop)
    codecs, skipped = make_codecs(names, threads=threads, device=device, weights=weights)
    if anchor:
        _check_anchor(anchor, codecs, samples)
    console = Console(stderr=False, width=max(Console().width, 160))
    result = _run(samples, codecs, qualities, not no_ms_ssim, quiet)
    result["skipped"] = {**skipped, **result["skipped"]}
    paths = write_outputs(result, Path(out_dir), anchor)
    if not quiet:
        print_tables(result, bd_table(result, anchor) if anchor else [], anchor, console)
        click.echo(f"wrote {', '.join(str(p) for p in paths)}")


def _check_anchor(anchor: str, codecs: list, samples: list) -> None:
    """Fail before the sweep, not after it, when the anchor cannot give a curve."""
    codec = next((c for c in codecs if c.name == anchor), None)
    if codec is None:
        raise InputError(f"anchor {anchor} is not among the codecs run; add it to --codecs or pass --anchor ''")
    if codec.lossless:
        raise InputError(f"anchor {anchor} is lossless: it has no rate-distortion curve")
    for s in samples:
        why = codec.unsupported(s.pixels if codec.series else s.pixels[0], s.band_names)
        if why:
            raise InputError(f"anchor {anchor} cannot code {s.name}: {why}")


def _run(samples, codecs, qualities, with_ms_ssim: bool, quiet: bool) -> dict:
    from terracodec.bench import run_benchmark

    if quiet or not sys.stderr.isatty():
        return run_benchmark(samples, codecs, qualities, with_ms_ssim=with_ms_ssim)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=None)

        def update(what: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=what)

        return run_benchmark(samples, codecs, qualities, with_ms_ssim=with_ms_ssim, progress=update)
