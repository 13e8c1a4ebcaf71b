"""`tec archive` (folders of GeoTIFFs and Sentinel-2 products -> `.tec` streams + a manifest, on
local workers or a Dask cluster) and `tec verify` (audit streams without decoding them)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from terracodec.cli.options import coding_options, encode_keywords, jsonable


@click.command("archive")
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(), help="Output folder (mirrors SOURCES).")
@click.option("--series-by", "series_by", type=click.Choice(["none", "folder"]), default="none", show_default=True,
              help="folder: the rasters of each folder form one time series (in acquisition order).")
@click.option("--workers", default=1, show_default=True, help="Local worker processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="A Dask distributed scheduler (tcp://host:8786); its workers must see the same paths.")
@click.option("--force", is_flag=True, help="Redo every input, even those whose output verifies.")
@coding_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def archive_command(sources: tuple[str, ...], out: str, series_by: str, workers: int, scheduler: str | None,
                    force: bool, bands_text: str | None, model: str | None, quality: str | None,
                    weights: str | None, tile_size: int, device: str | None, baseline_offset: str,
                    scale_text: str, quiet: bool) -> None:
    """Encode every GeoTIFF and Sentinel-2 product (SAFE folder or zip) under SOURCES into OUT,
    one line per input in OUT/manifest.jsonl; a rerun reuses outputs that verify."""
    from terracodec.archive import archive
    from terracodec.cli.progress import archive_progress

    options = encode_keywords(bands_text, model, quality, weights, tile_size, device, baseline_offset, scale_text)
    start = time.perf_counter()
    with archive_progress(not quiet) as progress:
        records = archive(list(sources), out, series_by=series_by, workers=workers, scheduler=scheduler,
                          force=force, progress=progress, **options)
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        click.echo(f"failed {r['source']}: {r['error']}", err=True)
    if not quiet:
        encoded = sum(r["action"] == "encoded" for r in records)
        total = sum(r["bytes"] or 0 for r in records)
        click.echo(f"archived {len(records) - len(failed)} of {len(records)} input(s) into {out} "
                   f"({encoded} encoded, {len(records) - len(failed) - encoded} reused, {len(failed)} failed; "
                   f"{total} bytes) in {time.perf_counter() - start:.1f} s; manifest {out}/manifest.jsonl")
    if failed:
        sys.exit(1)


@click.command("verify")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file, then a summary object.")
def verify_command(files: tuple[str, ...], as_json: bool) -> None:
    """Check every checksum and the structure of .tec FILES without decoding pixels (exit 1 if any is bad)."""
    from terracodec.archive.verify import verify_file

    start = time.perf_counter()
    verdicts = [verify_file(f) for f in files]
    seconds = time.perf_counter() - start
    size = sum(v.bytes for v in verdicts)
    bad = [v for v in verdicts if not v.ok]
    summary: dict[str, Any] = {"files": len(verdicts), "bad": len(bad), "bytes": size, "seconds": round(seconds, 4),
                               "mb_per_s": round(size / 1e6 / seconds, 1) if seconds > 0 else None}
    if as_json:
        for v in verdicts:
            click.echo(json.dumps(jsonable(v.to_json())))
        click.echo(json.dumps(summary))
    else:
        for v in verdicts:
            if v.ok:
                click.echo(f"ok   {v.path}  ({v.frames} frame(s), {v.tiles} tiles, {v.bytes} bytes)")
            else:
                click.echo(f"BAD  {v.path}: {v.error}")
        click.echo(f"verified {len(verdicts)} file(s), {size / 1e6:.1f} MB in {seconds:.2f} s "
                   f"({summary['mb_per_s']} MB/s); {len(bad)} bad")
    if bad:
        sys.exit(1)
