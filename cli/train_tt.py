"""`tec train-tt`: train TEC-TT's temporal prior on frozen image-codec transforms
(`terracodec.training.temporal_prior`), and save a temporal model."""

from __future__ import annotations

from pathlib import Path

import click

from terracodec.cli.options import int_list
from terracodec.cli.trained_outputs import checked_outputs, save_trained, series_options
from terracodec.errors import InputError


@click.command("train-tt")
@series_options
@click.option("--base", default="tec-elic-s2l2a", show_default=True,
              help="The TEC-ELIC image model whose transforms and context model the TT keeps (tec models).")
@click.option("--single", "single_inputs", multiple=True, type=click.Path(exists=True),
              help="Single-date scenes: near-duplicate twins only.")
@click.option("--twins/--no-twins", "make_twins", default=True, show_default=True,
              help="Near-duplicate pairs from every series' first date and every single scene.")
@click.option("--quality", "quality_text", default=None, help="Qualities to train on, e.g. 1,3,5 (default: all).")
@click.option("--width", type=int, default=256, show_default=True, help="Hidden width of the side-parameter correction.")
@click.option("--mix-width", type=int, default=64, show_default=True, help="Hidden width of each channel group's mixer.")
@click.option("--steps", type=int, default=6000, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--max-gap", type=int, default=2, show_default=True,
              help="Pairs (t-k, t) with k up to this: the previous clear date may be missing.")
@click.option("--views", type=int, default=8, show_default=True, help="Flips/rotations of each series (1..8).")
def train_tt_command(inputs: tuple[str, ...], output: str, base: str, sparse_inputs: tuple[str, ...],
                     single_inputs: tuple[str, ...], sparse_views: int, make_twins: bool, quality_text: str | None, min_clear: float,
                     min_bands: int, width: int, mix_width: int, steps: int, batch_size: int, lr: float, max_gap: int, views: int,
                     seed: int, max_minutes: float | None, overwrite: bool, quiet: bool) -> None:
    """Train a TEC-TT on BASE's frozen transforms from INPUTS: folders of dated scenes (date-major
    GeoTIFFs with "<datetime> <band>" descriptions, or one file per date), one series per place."""
    import torch

    from terracodec.normalization import Normalization
    from terracodec.training.temporal_prior import analyse, load_singles, merge, model_series, train_prior, twins
    from terracodec.zoo import load_model
    from terracodec.zoo.loading import from_config

    if steps < 1 or batch_size < 1 or lr <= 0 or max_gap < 1 or not 1 <= views <= 8 or min(width, mix_width) < 1:
        raise InputError("--steps, --batch-size, --max-gap and --width must be positive, --lr above 0, --views 1..8")
    image = load_model(base, 1)
    if image.arch != "tec-elic" or "centre" not in image.config:
        raise InputError(f"--base must be a centred TEC-ELIC model (tec-elic-s2l2a), not {base}")
    out, check = checked_outputs(output, inputs, overwrite)  # refused before any work
    qualities = int_list(quality_text, "--quality") or list(range(1, max(1, image.num_qualities) + 1))
    if not set(qualities) <= set(range(1, image.num_qualities + 1)):
        raise InputError(f"{base} has qualities 1..{image.num_qualities}")
    torch.manual_seed(seed)
    config = {k: v for k, v in image.config.items() if k not in ("arch", "quality")}
    config.update(arch="tec-tt-elic", temporal_width=width, mix_width=mix_width, base_model=base)
    model = from_config(config)
    model.load_state_dict({model.image_codec_key(k): v for k, v in image.state_dict().items()},
                          strict=False)  # everything but the temporal parts (they start as identity)
    model.update()
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    series = model_series(image, inputs, min_bands=min_bands, min_clear=min_clear)
    sparse = model_series(image, sparse_inputs, min_bands=min_bands, min_clear=0.0)
    centre = image.config["centre"]
    singles = load_singles(single_inputs, list(image.config["band_names"]), Normalization.from_config(
        image.config["normalization"]), centre, min_bands=min_bands) if single_inputs else []
    doubles = twins([*sparse, *series, *singles], centre, seed=seed) if make_twins else []
    say(f"{len(series)} series ({sum(len(s.frames) for s in series)} dates), {len(sparse)} sparse pieces, "
        f"{len(doubles)} twin pairs")
    pairs = merge([analyse(model, series, qualities, views=views, report=say),
                   analyse(model, sparse, qualities, views=sparse_views),
                   analyse(model, doubles, qualities, views=sparse_views)])
    log = train_prior(model, pairs, steps=steps, batch_size=batch_size, lr=lr, max_gap=max_gap, seed=seed,
                      max_minutes=max_minutes,
                      report=lambda i, r: say(f"step {i}: {r['bpp']:.4f} bpp, intra {r['bpp_intra']:.4f}, "
                                              f"saves {r['saving_pct']:.1f} %"))
    model.config.pop("quality", None)
    model.config["training"] = {"inputs": [Path(p).name for p in inputs], "series": [s.name for s in series], "sparse": [Path(p).name for p in sparse_inputs],
                                "single": [Path(p).name for p in single_inputs], "twins": len(doubles),
                                "steps": len(log) and log[-1]["step"], "batch_size": batch_size, "lr": lr,
                                "max_gap": max_gap, "views": views, "qualities": qualities, "seed": seed}
    save_trained(model, log, out, check)
    say(f"saved {out}.safetensors")
