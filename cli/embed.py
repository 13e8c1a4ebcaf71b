"""`tec embed`: foundation-model embeddings of a `.tec` stream (TerraFM, TESSERA) as GeoTIFFs."""

from __future__ import annotations

import click

from terracodec.cli.options import int_list


@click.command("embed")
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="A .tif file (one output) or a directory (TerraFM: one GeoTIFF per frame).")
@click.option("--encoder", type=click.Choice(["terrafm-b", "terrafm-l", "tessera"]), default="terrafm-b",
              show_default=True, help="The foundation model.")
@click.option("--weights", type=click.Path(), default=None,
              help="The encoder's published checkpoint (.safetensors, or .pt read without unpickling "
                   "objects). Without it: random weights (--seed), for tests only.")
@click.option("--seed", type=int, default=None,
              help="Seed of the random weights used without --weights; TESSERA: also of its observation sampling.")
@click.option("--frames", default=None, help="Frame indices, e.g. 0,2 (default: all).")
@click.option("--level", type=click.Choice(["l1c", "l2a"]), default=None,
              help="TerraFM: the processing level when the stream does not say (picks the L1C or L2A "
                   "patch embedding).")
@click.option("--normalization", type=click.Choice(["reflectance", "dn"]), default="reflectance",
              show_default=True, help="TerraFM's input: reflectance = (DN - baseline offset) / 10000, or raw DN.")
@click.option("--window", type=int, default=512, show_default=True,
              help="TerraFM: largest side (px) run in one pass; larger scenes run in overlapping windows.")
@click.option("--s1-asc", type=click.Path(), multiple=True,
              help="TESSERA: Sentinel-1 ascending VV/VH in dB on the S2 grid: a one-date raster (DATE tag) "
                   "or a .tec series; repeat for more dates.")
@click.option("--s1-desc", type=click.Path(), multiple=True,
              help="TESSERA: Sentinel-1 descending VV/VH, as --s1-asc.")
@click.option("--s1-weights", type=click.Path(), default=None,
              help="TESSERA: the weights file that S1 .tec streams given to --s1-asc/--s1-desc need to decode.")
@click.option("--from", "source_kind", type=click.Choice(["pixels", "latents"]), default="pixels",
              show_default=True, help="TerraFM: run on decoded frames, or on the stream's latents through "
                                      "--adapter (no synthesis, no patch embedding).")
@click.option("--adapter", type=click.Path(), default=None,
              help="With --from latents: a latent adapter made by tec train-adapter for this stream's model.")
@click.option("--device", default=None, help="Torch device (cpu, cuda, ...); default cpu.")
@click.option("--overwrite", is_flag=True, help="Replace existing files (never SOURCE).")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
def embed_command(source: str, output: str, encoder: str, weights: str | None, seed: int | None,
                  frames: str | None, level: str | None, normalization: str, window: int,
                  s1_asc: tuple[str, ...], s1_desc: tuple[str, ...], s1_weights: str | None, source_kind: str,
                  adapter: str | None, device: str | None, overwrite: bool, quiet: bool) -> None:
    """Embeddings of SOURCE (.tec): TerraFM patch tokens on the 1/16 grid per frame, or one
    TESSERA 128-band embedding of the series at 10 m."""
    from terracodec.consumers.embed import embed

    paths = embed(source, output, encoder=encoder, weights=weights, frames=int_list(frames, "--frames"),
                  level=level, normalization=normalization, window=window, device=device,
                  s1_asc=list(s1_asc), s1_desc=list(s1_desc), overwrite=overwrite, seed=seed,
                  source_kind=source_kind, adapter=adapter, s1_weights=s1_weights)
    if not quiet:
        for p in paths:
            click.echo(f"wrote {p}")
