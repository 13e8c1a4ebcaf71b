"""`tec train`: rate-distortion training of an image codec on GeoTIFFs."""

from __future__ import annotations

from pathlib import Path

import click

from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS, normalize_band_name
from terracodec.errors import InputError

_PRESETS = {"L1C": S2_L1C_BANDS, "L2A": S2_L2A_BANDS}


def parse_bands(text: str) -> tuple[str, ...]:
    """'L1C', 'L2A' or a comma list of S2 band names."""
    if text.upper() in _PRESETS:
        return _PRESETS[text.upper()]
    names = [normalize_band_name(b) for b in text.split(",")]
    if not names or any(n is None for n in names):
        raise InputError(f"--bands takes L1C, L2A or S2 band names such as B02,B03,B04; got {text!r}")
    return tuple(names)


@click.command("train")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for checkpoints and the log.")
@click.option("--arch", type=click.Choice(["tec-fp", "tec-elic"]), default="tec-fp", show_default=True)
@click.option("--bands", "bands_text", default="L1C", show_default=True, help="L1C (13), L2A (12) or a comma list of band names.")
@click.option("--channels", "n", type=int, default=64, show_default=True, help="Transform width N.")
@click.option("--latent", "m", type=int, default=96, show_default=True, help="Latent channels M.")
@click.option("--lambda", "lmbda", type=float, required=True, help="Rate-distortion trade-off: loss = bpppb + lambda * MSE.")
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--clip-norm", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--baseline-offset/--no-baseline-offset", "has_offset", default=False, show_default=True,
              help="Whether the training data carries the +1000 DN offset of S2 processing baseline 04.00+.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
def train_command(inputs, out_dir, arch, bands_text, n, m, lmbda, steps, batch_size, crop, lr, clip_norm, seed, device, has_offset, resume):
    """Train a codec on GeoTIFF files or folders (train splits only!).

    Bands are selected by their names; 20 m and 60 m files of one scene (name suffixes
    _20m/_60m) are resampled to the 10 m grid. Writes OUT/model.safetensors + model.json.
    """
    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from terracodec.models.base import ImageCodec
    from terracodec.normalization import Normalization
    from terracodec.training.data import CropSampler, load_scenes
    from terracodec.training.loop import TrainConfig, train

    bands = parse_bands(bands_text)
    out = Path(out_dir)
    scenes = load_scenes(inputs, bands)
    norm = Normalization.default_for(len(bands))
    if not has_offset and norm.name.startswith("ssl4eo"):
        norm = norm.without_baseline_offset()
    if resume:
        model = ImageCodec.from_pretrained(str(out / "model"))
        norm = Normalization.from_config(model.config["normalization"])
    else:
        config = {"arch": arch, "bands": len(bands), "N": n, "M": m,
                  "band_names": list(bands), "normalization": norm.to_config(), "lambda": lmbda}
        torch.manual_seed(seed)
        model = ImageCodec.from_config(config)
    sampler = CropSampler(scenes, norm, crop=crop, seed=seed)
    cfg = TrainConfig(lmbda=lmbda, steps=steps, batch_size=batch_size, lr=lr, clip_norm=clip_norm,
                      seed=seed, warmup_steps=min(200, steps // 10))

    def save(model, stem: Path) -> None:
        model.update(force=True)
        model.save_pretrained(str(stem))

    with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[info]}"), TimeRemainingColumn()) as bar:
        task = bar.add_task("train", total=steps, info="")

        def report(step: int, row: dict) -> None:
            bar.update(task, completed=step,
                       info=f"bpppb {row['bpppb']:.3f}  mse {row['mse']:.4f}  lr {row['lr']:.1e}")

        train(model, sampler.batches(batch_size), cfg, out, save=save, device=device,
              resume=resume, progress=report)
    click.echo(f"wrote {out / 'model.safetensors'} ({len(scenes)} scenes, {steps} steps)")
