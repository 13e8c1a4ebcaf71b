"""`tec`: encode GeoTIFF stacks to `.tec`, decode them back, inspect streams, list models, train.

Each command is a thin layer over `terracodec.api`; errors come out as one line on stderr.
Commands import what they need when they run: `tec --help` and `tec info` never load torch.
"""

from __future__ import annotations

import json

import click

import terracodec
from terracodec.cli.errors import ErrorHandlingGroup
from terracodec.cli.options import coding_options, encode_keywords, jsonable
from terracodec.cli.options import frames_of as _frames_of, int_list as _int_list, parse_cloud_masks
from terracodec.cli.progress import progress_bar
from terracodec.errors import InputError
from terracodec.header import PORTABLE_CODER_PLATFORMS


@click.group(cls=ErrorHandlingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(terracodec.__version__, prog_name="tec")
def main() -> None:
    """Learned compression of Sentinel-2 scenes and time series (GeoTIFF <-> .tec)."""


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Output .tec file.")
@click.option("--frame", "frame_groups", multiple=True, metavar="FILE,FILE,...",
              help="One frame from several files of one date at different resolutions (e.g. "
                   "img1_10m.tif,img1_20m.tif,img1_60m.tif), resampled onto the finest grid; "
                   "repeat in time order. Decoding gives the frame on that grid.")
@coding_options
@click.option("--cloud-mask", "cloud_masks", multiple=True, metavar="FRAME=PATH",
              help="Temporal models: a single-band raster on the input grid, non-zero = cloud, for frame "
                   "FRAME (0-based index or input file name); tokens under cloud are not sent but filled "
                   "from the previous frames (repeat per frame; docs/CLOUDS.md).")
@click.option("--cloud-fill", default="interleave", show_default=True, type=click.Choice(["interleave", "propagate"]),
              help="interleave: fill only the cloudy tokens; propagate: every token of a window from its first cloudy one.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists (never an input).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def encode(inputs: tuple[str, ...], output: str, frame_groups: tuple[str, ...], bands_text: str | None,
           model: str | None, quality: str | None, weights: str | None, tile_size: int, device: str | None,
           baseline_offset: str, scale_text: str, cloud_masks: tuple[str, ...], cloud_fill: str, overwrite: bool,
           quiet: bool) -> None:
    """Encode INPUTS (one multi-band GeoTIFF, or several frames on one grid, in time order)."""
    from terracodec.api.encoding import encode as api_encode

    options = encode_keywords(bands_text, model, quality, weights, tile_size, device, baseline_offset, scale_text)
    if cloud_masks:
        options.update(cloud_masks=parse_cloud_masks(cloud_masks), cloud_fill=cloud_fill)
    frames = _frames_of(inputs, frame_groups)
    with progress_bar("encoding", not quiet) as progress:
        result = api_encode(frames, output, progress=progress, overwrite=overwrite, **options)
    if not quiet:
        click.echo(
            f"wrote {output}: {result['frames']} frame(s) of {result['width']}x{result['height']}"
            f"x{result['bands']} {result['dtype']}, {result['bytes']} bytes, "
            f"{result['bpppb']:.4f} bpppb ({result['model']}, quality {result['quality']}"
            + (f"; chosen for {result['model_choice']}" if result.get("model_choice") else "")
            + ")"
        )
        filled = [f for f in result["frame_info"] if f["filled"]]
        if filled:
            click.echo("filled under clouds: " + ", ".join(f"{f['name']} {100 * f['filled']:.1f} %" for f in filled))
        shifted = [f for f in result["frame_info"] if f["dn_offset"]]
        if shifted:
            click.echo(
                f"baseline offset: normalisation ({result['normalization']}) shifted in "
                f"{len(shifted)} of {result['frames']} frame(s): "
                + ", ".join(f"{f['name']} {f['dn_offset']:+g} DN" for f in shifted)
            )


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="Directory for the filled frames.")
@click.option("--cloud-mask", "cloud_masks", multiple=True, required=True, metavar="FRAME=PATH",
              help="As for `tec encode`: a cloud mask (non-zero = cloud) for frame FRAME; repeat per frame.")
@click.option("--cloud-fill", default="interleave", show_default=True, type=click.Choice(["interleave", "propagate"]))
@click.option("--model", default=None, help="A temporal model (see `tec models`); default: the shipped one that "
              "fits the input (tec-tt-s2l2a for L2A and 12-band L1C, tec-tt-s2l1c for 13-band L1C).")
@click.option("--quality", default=None, help="Quality level; default: the model's.")
@click.option("--weights", type=click.Path(), default=None, help="Weights file replacing the model's.")
@click.option("--bands", "bands_text", default=None, metavar="B01,B02,...", help="Names of the input's bands.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never an input).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def inpaint(inputs: tuple[str, ...], output: str, cloud_masks: tuple[str, ...], cloud_fill: str, model: str | None,
            quality: str | None, weights: str | None, bands_text: str | None, overwrite: bool, quiet: bool) -> None:
    """Gap-fill the cloudy parts of INPUTS (frames in time order): encode with their cloud masks and
    decode in one step, into OUTPUT (one GeoTIFF per frame, `<frame>.filled.tif` beside each filled one)."""
    from terracodec.api.decoding import decode as api_decode
    from terracodec.api.encoding import encode as api_encode
    from terracodec.cli.options import parse_names, parse_quality

    with progress_bar("encoding", not quiet) as progress:
        stream = api_encode(_frames_of(inputs, ()), None, model=model, quality=parse_quality(quality), weights=weights,
                            band_names=parse_names(bands_text, "--bands"), cloud_masks=parse_cloud_masks(cloud_masks),
                            cloud_fill=cloud_fill, progress=progress)
    with progress_bar("decoding", not quiet) as progress:
        paths = api_decode(stream, output, weights=weights, progress=progress, overwrite=overwrite)
    if not quiet:
        click.echo(f"wrote {len(paths)} frame(s) to {output}")


@main.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A .tif file (one frame) or a directory (one GeoTIFF per frame).")
@click.option("--cog", is_flag=True, help="Write Cloud-Optimised GeoTIFFs.")
@click.option("--window", default=None, help="Pixel window col_off,row_off,width,height.")
@click.option("--frames", default=None, help="Frame indices to decode, e.g. 0,2.")
@click.option("--weights", type=click.Path(), default=None, help="Weights file replacing the model's.")
@click.option("--device", default=None, help="Torch device for the model (cpu, cuda, ...); default cpu.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never SOURCE).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def decode(source: str, output: str, cog: bool, window: str | None, frames: str | None,
           weights: str | None, device: str | None, overwrite: bool, quiet: bool) -> None:
    """Decode SOURCE (.tec) into GeoTIFF(s)."""
    from terracodec.api.decoding import decode as api_decode

    win = _int_list(window, "--window", 4)
    sel = _int_list(frames, "--frames")
    with progress_bar("decoding", not quiet) as progress:
        paths = api_decode(source, output, frames=sel, window=win, cog=cog, weights=weights,
                           device=device, progress=progress, overwrite=overwrite)
    if not quiet:
        for p in paths:
            click.echo(f"wrote {p}")


@main.command()
@click.argument("source", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def info(source: str, as_json: bool) -> None:
    """Describe the stream SOURCE (.tec)."""
    from terracodec.api.describe import info as api_info

    d = api_info(source)
    if as_json:
        click.echo(json.dumps(jsonable(d), indent=2))
        return
    crs = f"EPSG:{d['epsg']}" if d["epsg"] else ("none" if not d["crs"] else "custom (see --json)")
    lines = [
        f"file format    .tec {d['format_version']} ({d['writer']})",
        f"frames         {d['frames']}",
        f"size           {d['width']} x {d['height']} pixels, {d['bands']} bands, {d['dtype']}",
        f"model          {d['model']} (quality {d['quality']}, {d['kind']}, weights {d['weights_hash'][:12]})",
        *([f"               {d['model_description']}"] if d.get("model_description") else []),
        f"normalisation  {d['normalization'] or 'custom'}",
        *([f"coded on       {d['coder_platform']} ("
           + ("portable entropy path: decodes bit-exactly on any machine)" if d["coder_platform"] in PORTABLE_CODER_PLATFORMS
              else "float entropy path: decodes bit-exactly only there)")]
          if d.get("coder_platform") else []),
        f"bytes          {d['bytes']}",
        f"rate           {d['bpppb']:.4f} bits per pixel per band",
        f"crs            {crs}",
        f"transform      {', '.join(repr(v) for v in d['transform'])}",
        *([f"gcps           {d['gcps']} ground control points"] if d.get("gcps") else []),
        f"tiles          {d['tiles_per_frame']} per frame, {d['tile_size']} px",
        "per frame:",
    ]
    for f in d["frame_info"]:
        shift = f"  normalisation means {f['dn_offset']:+g} DN" if f["dn_offset"] else ""
        if f.get("dn_scale", 1) != 1:
            shift += f"  coded as DN = {f['dn_scale']:g} x value"
        if any(f.get("band_shift") or []):
            shift += "  centred: band means " + " ".join(
                f"{n} {v:+g}" for n, v in f["band_shift_by_name"].items()) + " DN"
        if f.get("filled"):
            shift += f"  filled under clouds: {100 * f['filled']:.1f} % of pixels"
        lines.append(
            f"  {f['index']:>3}  {f['name']}  {f['timestamp'] or '-'}  {f['bytes']} bytes  "
            f"{f['bpppb']:.4f} bpppb{shift}"
        )
    click.echo("\n".join(lines))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models(as_json: bool) -> None:
    """List the available models and the --quality values they accept."""
    from terracodec.zoo.table import list_models

    table = list_models()
    if as_json:
        click.echo(json.dumps(jsonable(table), indent=2))
        return
    for m in table:
        qualities = ", ".join(str(q) for q in m.get("qualities", []))
        bands = m.get("bands") or "any"
        click.echo(f"{m['name']:<20} {m.get('kind', '?'):<9} {bands:>3} bands  "
                   f"qualities: {qualities}")


from terracodec.cli.train import train_command  # noqa: E402  (its heavy imports are inside)

main.add_command(train_command)

from terracodec.cli.bench import bench_command  # noqa: E402  (its heavy imports are inside)

main.add_command(bench_command)

from terracodec.cli.archive import archive_command, verify_command  # noqa: E402  (heavy imports inside)

main.add_command(archive_command)
main.add_command(verify_command)

from terracodec.cli.embed import embed_command  # noqa: E402  (heavy imports inside)

main.add_command(embed_command)

from terracodec.cli.train_adapter import train_adapter_command  # noqa: E402  (heavy imports inside)

main.add_command(train_adapter_command)

from terracodec.cli.train_tt import train_tt_command  # noqa: E402  (heavy imports inside)

main.add_command(train_tt_command)

from terracodec.cli.train_flextec import train_flextec_command  # noqa: E402  (heavy imports inside)

main.add_command(train_flextec_command)


if __name__ == "__main__":
    main()
