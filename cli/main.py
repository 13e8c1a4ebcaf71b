"""`tec`: encode GeoTIFF stacks to `.tec`, decode them back, inspect streams, list models, train.

Each command is a thin layer over `terracodec.api`; errors come out as one line on stderr.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

import terracodec
from terracodec import api
from terracodec.cli.errors import ErrorHandlingGroup
from terracodec.cli.progress import progress_bar
from terracodec.errors import InputError


def _int_list(text: str | None, what: str, count: int | None = None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise InputError(f"{what} must be comma-separated integers, got {text!r}") from None
    if count is not None and len(values) != count:
        raise InputError(f"{what} needs {count} comma-separated integers, got {text!r}")
    return values


def _quality(text: str | None) -> Any:
    """`--quality` as the registry spells it: an int or float when it looks like one."""
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


#: `--baseline-offset` words -> `api.encode(baseline_offset=...)`.
_BASELINE_OFFSET = {"auto": "auto", "yes": True, "no": False}


def _baseline_offset(text: str) -> str | bool:
    try:
        return _BASELINE_OFFSET[text.strip().lower()]
    except KeyError:
        raise InputError(f"--baseline-offset must be auto, yes or no, got {text!r}") from None


def _jsonable(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@click.group(cls=ErrorHandlingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(terracodec.__version__, prog_name="tec")
def main() -> None:
    """Learned compression of Sentinel-2 scenes and time series (GeoTIFF <-> .tec)."""


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Output .tec file.")
@click.option("--model", default=api.DEFAULT_MODEL, show_default=True, help="Model name (see `tec models`).")
@click.option("--quality", default=None, help="Quality level (see `tec models`); default: the model's.")
@click.option("--weights", type=click.Path(), default=None, help="Weights file replacing the model's.")
@click.option("--tile-size", default=api.DEFAULT_TILE_SIZE, show_default=True, help="Tile side in pixels.")
@click.option("--device", default=None, help="Torch device for the model (cpu, cuda, ...); default cpu.")
@click.option("--baseline-offset", "baseline_offset", default="auto", show_default=True,
              metavar="[auto|yes|no]",
              help="Do the inputs carry Sentinel-2's +1000 DN offset (processing baseline 04.00+, "
                   "2022 on)? auto: detect per frame (tags, B10 pixels, date); yes/no: force it. "
                   "The model's normalisation is shifted to match; decoded DN are unchanged.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def encode(inputs: tuple[str, ...], output: str, model: str, quality: str | None,
           weights: str | None, tile_size: int, device: str | None, baseline_offset: str,
           quiet: bool) -> None:
    """Encode INPUTS (one multi-band GeoTIFF, or several frames on one grid, in time order)."""
    offset_mode = _baseline_offset(baseline_offset)
    with progress_bar("encoding", not quiet) as progress:
        result = api.encode(list(inputs), output, model=model, quality=_quality(quality),
                            weights=weights, tile_size=tile_size, device=device, progress=progress,
                            baseline_offset=offset_mode)
    if not quiet:
        click.echo(
            f"wrote {output}: {result['frames']} frame(s) of {result['width']}x{result['height']}"
            f"x{result['bands']} {result['dtype']}, {result['bytes']} bytes, "
            f"{result['bpppb']:.4f} bpppb ({result['model']}, quality {result['quality']})"
        )
        shifted = [f for f in result["frame_info"] if f["dn_offset"]]
        if shifted:
            click.echo(
                f"baseline offset: normalisation ({result['normalization']}) shifted in "
                f"{len(shifted)} of {result['frames']} frame(s): "
                + ", ".join(f"{f['name']} {f['dn_offset']:+g} DN" for f in shifted)
            )


@main.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A .tif file (one frame) or a directory (one GeoTIFF per frame).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimised GeoTIFFs.")
@click.option("--window", default=None, help="Pixel window col_off,row_off,width,height.")
@click.option("--frames", default=None, help="Frame indices to decode, e.g. 0,2.")
@click.option("--weights", type=click.Path(), default=None, help="Weights file replacing the model's.")
@click.option("--device", default=None, help="Torch device for the model (cpu, cuda, ...); default cpu.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def decode(source: str, output: str, cog: bool, window: str | None, frames: str | None,
           weights: str | None, device: str | None, quiet: bool) -> None:
    """Decode SOURCE (.tec) into GeoTIFF(s)."""
    win = _int_list(window, "--window", 4)
    sel = _int_list(frames, "--frames")
    with progress_bar("decoding", not quiet) as progress:
        paths = api.decode(source, output, frames=sel, window=win, cog=cog, weights=weights,
                           device=device, progress=progress)
    if not quiet:
        for p in paths:
            click.echo(f"wrote {p}")


@main.command()
@click.argument("source", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(source: str, as_json: bool) -> None:
    """Describe the stream SOURCE (.tec)."""
    d = api.info(source)
    if as_json:
        click.echo(json.dumps(_jsonable(d), indent=2))
        return
    crs = f"EPSG:{d['epsg']}" if d["epsg"] else ("none" if not d["crs"] else "custom (see --json)")
    lines = [
        f"file format    .tec {d['format_version']} ({d['writer']})",
        f"frames         {d['frames']}",
        f"size           {d['width']} x {d['height']} pixels, {d['bands']} bands, {d['dtype']}",
        f"model          {d['model']} (quality {d['quality']}, {d['kind']}, weights {d['weights_hash'][:12]})",
        f"normalisation  {d['normalization'] or 'custom'}",
        *([f"coded on       {d['coder_platform']} (TEC-TT streams decode bit-exactly there)"]
          if d.get("coder_platform") else []),
        f"bytes          {d['bytes']}",
        f"rate           {d['bpppb']:.4f} bits per pixel per band",
        f"crs            {crs}",
        f"transform      {', '.join(repr(v) for v in d['transform'])}",
        f"tiles          {d['tiles_per_frame']} per frame, {d['tile_size']} px",
        "per frame:",
    ]
    for f in d["frame_info"]:
        shift = f"  normalisation means {f['dn_offset']:+g} DN" if f["dn_offset"] else ""
        lines.append(
            f"  {f['index']:>3}  {f['name']}  {f['timestamp'] or '-'}  {f['bytes']} bytes  "
            f"{f['bpppb']:.4f} bpppb{shift}"
        )
    click.echo("\n".join(lines))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json: bool) -> None:
    """List the available models and the --quality values they accept."""
    table = api.models()
    if as_json:
        click.echo(json.dumps(_jsonable(table), indent=2))
        return
    for m in table:
        qualities = ", ".join(str(q) for q in m.get("qualities", []))
        click.echo(f"{m['name']:<20} {m.get('kind', '?'):<9} {m.get('bands', '?'):>3} bands  "
                   f"qualities: {qualities}")


from terracodec.cli.train import train_command  # noqa: E402  (its heavy imports are inside)

main.add_command(train_command)

from terracodec.cli.bench import bench_command  # noqa: E402  (its heavy imports are inside)

main.add_command(bench_command)
