"""`tec train-flextec`: train a FlexTEC (latent repacking) entropy model on a TEC-ELIC model's
frozen transforms (`terracodec.training.flextec`), and save the temporal model."""

from __future__ import annotations

from pathlib import Path

import click

from terracodec.cli.trained_outputs import checked_outputs, save_trained, series_options
from terracodec.errors import InputError


@click.command("train-flextec")
@series_options
@click.option("--base", default="tec-elic-s2l2a", show_default=True,
              help="The centred TEC-ELIC image model whose transforms FlexTEC keeps (tec models).")
@click.option("--base-quality", type=int, default=5, show_default=True,
              help="The base model's quality whose gains FlexTEC keeps (its rate at k = 16).")
@click.option("--band-dropout", type=float, default=0.0, show_default=True,
              help="Share of series views coded with a random subset of 6+ bands (the others at the centre).")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Start from this FlexTEC's weights (a .safetensors of the same sizes and base).")
@click.option("--channel-order", "order_rule", type=click.Choice(["importance", "index"]), default="importance",
              show_default=True, help="Latent channels in the repacked tokens: by the frame error each costs when "
                                      "not sent (measured on INPUTS), or the image model's order. With --init: the "
                                      "init's order.")
@click.option("--d-model", type=int, default=128, show_default=True, help="Transformer width.")
@click.option("--heads", type=int, default=4, show_default=True)
@click.option("--layers", "layers_text", default="2,2,2", show_default=True,
              help="Per-frame encoder, joint encoder and decoder layers.")
@click.option("--lambda", "lmbda", type=float, default=100.0, show_default=True,
              help="Distortion weight, in the image models' units (rate bpppb + lambda x MSE).")
@click.option("--frames", type=int, default=3, show_default=True, help="Dates per training sequence.")
@click.option("--steps", type=int, default=3000, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True, help="Latent windows per step and frame.")
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--max-gap", type=int, default=2, show_default=True)
@click.option("--views", type=int, default=8, show_default=True, help="Flips/rotations of each series (1..8).")
def train_flextec_command(inputs: tuple[str, ...], output: str, base: str, base_quality: int,
                          sparse_inputs: tuple[str, ...], sparse_views: int, band_dropout: float,
                          init_path: str | None, order_rule: str, min_clear: float, min_bands: int,
                          d_model: int, heads: int, layers_text: str, lmbda: float, frames: int, steps: int,
                          batch_size: int, lr: float, max_gap: int, views: int, seed: int,
                          max_minutes: float | None, overwrite: bool, quiet: bool) -> None:
    """Train FlexTEC on BASE's frozen transforms from INPUTS: folders of dated scenes (date-major
    GeoTIFFs with "<datetime> <band>" descriptions, or one file per date), one series per place."""
    import torch

    from terracodec.cli.options import int_list
    from terracodec.temporal.flextec_elic import from_image_codec
    from terracodec.training.flextec import analyse, channel_alphas, channel_order, train_entropy_model
    from terracodec.training.temporal_prior import model_series
    from terracodec.zoo import load_model

    layers = int_list(layers_text, "--layers") or []
    if len(layers) != 3 or min(layers) < 1 or steps < 1 or batch_size < 1 or lr <= 0 or lmbda <= 0 \
            or frames < 1 or max_gap < 1 or not 1 <= views <= 8 or not 0 <= band_dropout <= 1 or d_model < 1 or heads < 1 or d_model % heads:
        raise InputError("--layers takes 3 positive counts; --steps, --batch-size, --frames, --max-gap, --lambda "
                         "and --lr must be positive, --views 1..8, --band-dropout 0..1, --d-model a multiple of --heads")
    image = load_model(base, base_quality)
    if image.arch != "tec-elic" or "centre" not in image.config:
        raise InputError(f"--base must be a centred TEC-ELIC model (tec-elic-s2l2a), not {base}")
    out, check = checked_outputs(output, inputs, overwrite)  # refused before any work
    sizes = {"d_model": d_model, "num_heads": heads, "layers": layers}
    if init_path:
        sizes.update(_init_order(Path(init_path)))
    torch.manual_seed(seed)
    model = from_image_codec(image, base_quality, sizes)
    if init_path:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:  # the entropy model must load whole (the transforms are the base's anyway)
            missing = model.load_state_dict(load_file(init_path), strict=False).missing_keys
            fits = not any(k.startswith("entropy_model.") for k in missing)
        except (RuntimeError, OSError, SafetensorError):
            fits = False
        if not fits:
            raise InputError(f"--init {init_path}: not a FlexTEC of these sizes")
    model.update()
    say = (lambda text: None) if quiet else (lambda text: click.echo(text, err=True))
    series = model_series(image, inputs, min_bands=min_bands, min_clear=min_clear)
    sparse = model_series(image, sparse_inputs, min_bands=min_bands, min_clear=0.0)
    say(f"{len(series)} series ({sum(len(s.frames) for s in series)} dates), {len(sparse)} sparse pieces")
    latents = (analyse(model, series, views, band_dropout, seed, report=say)
               + analyse(model, sparse, sparse_views, band_dropout, seed + 1))
    if not init_path and order_rule == "importance":  # the untrained entropy model starts anew on the order
        order = channel_order(model, latents, channel_alphas(model, latents, seed=seed))
        say(f"channel order (most costly to predict first): {order[:12]} ...")
        torch.manual_seed(seed)
        model = from_image_codec(image, base_quality, dict(sizes, channel_order=order))
        model.update()
        latents = [y[:, order] for y in latents]
    log = train_entropy_model(model, latents, steps=steps, batch_size=batch_size, lr=lr, lmbda=lmbda, frames=frames,
                              max_gap=max_gap, seed=seed, max_minutes=max_minutes,
                              report=lambda i, r: say(f"step {i}: loss {r['loss']:.4f}, {r['bpppb']:.4f} bpppb, "
                                                      f"mse {r['mse']:.5f} ({r['seconds']:.0f} s)"))
    model.update(force=True)
    model.config.pop("quality", None)
    model.config["training"] = {"inputs": [Path(p).name for p in inputs], "series": [s.name for s in series],
                                "sparse": [Path(p).name for p in sparse_inputs], "lambda": lmbda,
                                "steps": len(log) and log[-1]["step"], "batch_size": batch_size, "lr": lr,
                                "frames": frames, "max_gap": max_gap, "views": views, "seed": seed,
                                "band_dropout": band_dropout, "init": Path(init_path).name if init_path else None,
                                "channel_order": "init" if init_path else order_rule}
    save_trained(model, log, out, check)
    say(f"saved {out}.safetensors")


def _init_order(init: Path) -> dict:
    """The channel order recorded beside an --init's weights (`<stem>.json`), if any."""
    from terracodec.errors import ModelError
    from terracodec.weights import read_config

    if not init.with_suffix(".json").exists():
        return {}
    try:
        config = read_config(init)
    except ModelError as exc:
        raise InputError(f"--init {init}: {exc}") from None
    return {"channel_order": config["channel_order"]} if "channel_order" in config else {}
