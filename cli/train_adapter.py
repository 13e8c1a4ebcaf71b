"""`tec train-adapter`: distil a latent adapter, so that TerraFM runs on a `.tec` file's latents
without the codec's synthesis transform (`terracodec.consumers.distill`)."""

from __future__ import annotations

from pathlib import Path

import click

from terracodec.cli.options import frames_of, int_list
from terracodec.errors import InputError


@click.command("train-adapter")
@click.argument("inputs", nargs=-1, type=click.Path())
@click.option("--frame", "frame_groups", multiple=True, metavar="FILE,FILE,...",
              help="One training input from several files of one date at different resolutions "
                   "(e.g. img1_10m.tif,img1_20m.tif,img1_60m.tif); repeat for more.")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="The adapter: writes OUTPUT.safetensors and OUTPUT.json.")
@click.option("--encoder", type=click.Choice(["terrafm-b", "terrafm-l"]), default="terrafm-b", show_default=True)
@click.option("--weights", type=click.Path(), default=None,
              help="TerraFM's checkpoint. Without it: random weights (--seed), for tests only.")
@click.option("--seed", type=int, default=None, help="Seed of TerraFM's random weights (without --weights).")
@click.option("--model", required=True, help="The codec model whose latents the adapter reads (tec models).")
@click.option("--quality", "quality_text", default=None, help="Qualities to train on, e.g. 1,3,5 (default: all).")
@click.option("--all-qualities", is_flag=True, help="Code every crop at every quality (default: one random quality a crop).")
@click.option("--level", type=click.Choice(["l1c", "l2a"]), default=None,
              help="The processing level when the coded stream does not say (TerraFM's patch embedding).")
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--crop", type=int, default=192, show_default=True, help="Largest crop side (px); crops are 128..CROP.")
@click.option("--crops-per-input", type=int, default=4, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True)
@click.option("--cosine-weight", type=float, default=0.1, show_default=True,
              help="Loss = MSE + this x (1 - cosine) on the embedded patches.")
@click.option("--train-seed", type=int, default=0, show_default=True, help="Seed of crops, qualities and training.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT's files if they exist.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
def train_adapter_command(inputs: tuple[str, ...], frame_groups: tuple[str, ...], output: str, encoder: str,
                          weights: str | None, seed: int | None, model: str, quality_text: str | None,
                          all_qualities: bool, level: str | None, steps: int, crop: int, crops_per_input: int,
                          batch_size: int, lr: float, cosine_weight: float, train_seed: int, overwrite: bool,
                          quiet: bool) -> None:
    """Train an adapter from MODEL's synthesis latents to TerraFM's embedded patches on INPUTS
    (GeoTIFF frames of training scenes only), distilled against the decoded-pixel path."""
    from terracodec.consumers.adapter import save_adapter, terrafm_identity
    from terracodec.consumers.distill import DistillConfig, distill, model_qualities
    from terracodec.consumers.terrafm import build_terrafm
    from terracodec.io.atomic import AtomicOutputs
    from terracodec.weights import stem

    if weights is not None and seed is not None:
        raise InputError("give TerraFM's --weights or a --seed for random weights, not both")
    if steps < 1 or crops_per_input < 1 or batch_size < 1 or lr <= 0:
        raise InputError("--steps, --crops-per-input and --batch-size must be positive, --lr above 0")
    frames = frames_of(inputs, frame_groups)
    base = stem(output)
    check = AtomicOutputs(overwrite=overwrite, protected=[p for f in frames for p in ([f] if isinstance(f, str) else f)])
    for suffix in (".safetensors", ".json"):
        check.check_target(base.with_suffix(suffix))  # refused before any work
    qualities = int_list(quality_text, "--quality")
    available = model_qualities(model)
    if qualities and not set(qualities) <= set(available):
        raise InputError(f"model {model} has no quality {min(set(qualities) - set(available))} (available: {available})")
    cfg = DistillConfig(steps=steps, crop=crop, crop_min=min(128, crop), crops_per_input=crops_per_input,
                        qualities=tuple(qualities) if qualities else None, all_qualities=all_qualities,
                        batch_size=batch_size, lr=lr, cosine_weight=cosine_weight, seed=train_seed)
    identity = terrafm_identity(weights, seed)
    terrafm = build_terrafm(encoder[-1], weights=weights, seed=seed)

    def progress(step: int, row: dict) -> None:
        if quiet:
            return
        if row["stage"] == "pairs":
            click.echo(f"coded {step}/{row['inputs']} inputs: {row['pairs']} pairs", err=True)
        else:
            click.echo(f"step {step}: loss {row['loss']:.4f} mse {row['mse']:.4f} cosine {row['cosine']:.4f}", err=True)

    adapter, _ = distill(frames, model=model, terrafm=terrafm, encoder=encoder, terrafm_weights=identity,
                         cfg=cfg, level=level, progress=progress)
    paths = save_adapter(adapter, base, overwrite=overwrite)
    if not quiet:
        for p in paths:
            click.echo(f"wrote {p}")


__all__ = ["train_adapter_command"]
