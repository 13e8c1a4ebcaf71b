"""`tec train`: rate-distortion training of an image codec on GeoTIFFs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS, normalize_band_name
from terracodec.errors import InputError

if TYPE_CHECKING:
    from terracodec.models.base import ImageCodec
    from terracodec.normalization import Normalization

_PRESETS = {"L1C": S2_L1C_BANDS, "L2A": S2_L2A_BANDS}


def parse_bands(text: str) -> tuple[str, ...]:
    """'L1C', 'L2A' or a comma list of S2 band names."""
    if text.upper() in _PRESETS:
        return _PRESETS[text.upper()]
    names = [normalize_band_name(b) for b in text.split(",")]
    if not names or any(n is None for n in names):
        raise InputError(f"--bands takes L1C, L2A or S2 band names such as B02,B03,B04; got {text!r}")
    return tuple(names)


def parse_lambdas(text: str) -> list[float]:
    """'30' or '10,30,100' -> positive, strictly increasing lambdas."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise InputError(f"--lambda takes a number or a comma list of numbers; got {text!r}") from None
    if any(v <= 0 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise InputError(f"--lambda values must be positive and increasing; got {text!r}")
    return values


#: The small TEC-TT trained here (docs/MODELS.md); `--channels`/`--latent` set its widths.
TT_SMALL = {"arch": "tec-tt", "residual_blocks": 1, "d_model": 96, "num_heads": 4,
            "mlp_expansion": 4, "layers": [2, 2, 2]}


def model_sizes(arch: str, channels: int, latent: int, text: str | None) -> dict:
    """The architecture's sizes from `--channels`/`--latent`, then the `--arch-config` JSON
    overrides (tec-tt starts from the small TT config)."""
    import json

    if arch == "tec-tt":
        config = dict(TT_SMALL, latent_channels=latent, transform_channels=[channels] * 3 + [latent])
    else:
        config = {"arch": arch, "N": channels, "M": latent}
    if text:
        try:
            extra = json.loads(text)
        except json.JSONDecodeError:
            extra = None
        if not isinstance(extra, dict):
            raise InputError(f"--arch-config takes a JSON object; got {text!r}")
        config.update(extra, arch=arch)
    return config


def training_normalization(bands: tuple[str, ...], has_offset: bool) -> Normalization:
    """The model's normalisation for training data with / without the S2 baseline offset."""
    from terracodec.normalization import Normalization

    norm = Normalization.default_for(len(bands))
    if not has_offset and norm.name.startswith("ssl4eo"):
        norm = norm.without_baseline_offset()
    return norm


def new_model(arch: str, channels: int, latent: int, arch_text: str | None, bands: tuple[str, ...],
              norm: Normalization, lambdas: list[float], seed: int) -> ImageCodec:
    """A freshly initialised model (seeded) whose config holds its bands, normalisation and
    lambda (one) or lambdas (quality levels)."""
    import torch

    from terracodec.models.base import ImageCodec

    config = dict(model_sizes(arch, channels, latent, arch_text), bands=len(bands), band_names=list(bands),
                  normalization=norm.to_config())
    if len(lambdas) > 1:
        config["lambdas"] = lambdas
    else:
        config["lambda"] = lambdas[0]
    from terracodec.zoo import from_config

    torch.manual_seed(seed)
    return from_config(config)


@click.command("train")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for checkpoints and the log.")
@click.option("--arch", type=click.Choice(["tec-fp", "tec-elic", "tec-tt"]), default="tec-fp", show_default=True,
              help="tec-tt trains the temporal codec on multi-date folders (one folder per scene).")
@click.option("--bands", "bands_text", default="L1C", show_default=True, help="L1C (13), L2A (12) or a comma list of band names.")
@click.option("--channels", "n", type=int, default=64, show_default=True, help="Transform width N.")
@click.option("--latent", "m", type=int, default=96, show_default=True, help="Latent channels M.")
@click.option("--lambda", "lambda_text", required=True,
              help="Rate-distortion trade-off: loss = bpppb + lambda * MSE. A comma list (lowest "
                   "rate first) trains one variable-rate model with a quality level per lambda.")
@click.option("--init", "init_path", type=click.Path(dir_okay=False), default=None,
              help="Warm-start from these weights (.safetensors of the same architecture; bands matched by name).")
@click.option("--frames", type=int, default=2, show_default=True,
              help="tec-tt: dates per training sequence (same crop on every date).")
@click.option("--arch-config", "--tt-config", "arch_text", default=None,
              help="JSON object of further architecture sizes, e.g. tec-tt '{\"d_model\": 128}' or "
                   "tec-elic '{\"aggregation_width\": 128}' (--tt-config is an older name).")
@click.option("--objective", type=click.Choice(["rd", "autoencoder"]), default="rd", show_default=True,
              help="rd: rate + lambda * MSE. autoencoder: only the analysis and synthesis transforms, on "
                   "the MSE of synthesis(analysis(x) + uniform noise), to lift their reconstruction floor "
                   "cheaply before rd training (--init from its output).")
@click.option("--steps", type=int, default=2000, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--crop", type=int, default=128, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--clip-norm", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--baseline-offset/--no-baseline-offset", "has_offset", default=False, show_default=True,
              help="Whether the training data carries the +1000 DN offset of S2 processing baseline 04.00+.")
@click.option("--centre", "centre_min_bands", type=int, default=None, metavar="MIN_BANDS",
              help="Image codecs: centre every scene's bands on the model's centre (stored in its config, "
                   "and applied by the encoder to every frame), vary their gains (--gain-sigma) and accept "
                   "scenes (also date-major series) with at least MIN_BANDS of the bands; a missing band "
                   "is left out of the distortion.")
@click.option("--gain-sigma", type=float, default=0.1, show_default=True,
              help="With --centre: log-normal sigma of a random per-band gain around the scene mean.")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in --out.")
@click.option("--max-minutes", type=float, default=None,
              help="Stop with a checkpoint after this long (the schedule still follows --steps; --resume continues).")
def train_command(inputs, out_dir, arch, bands_text, n, m, lambda_text, init_path, frames, arch_text, objective, steps, batch_size, crop, lr, clip_norm, seed, device, has_offset, centre_min_bands, gain_sigma, resume, max_minutes):
    """Train a codec on GeoTIFF files or folders (train splits only!).

    Bands are selected by their names; 20 m and 60 m files of one scene (name suffixes
    _20m/_60m) are resampled to the 10 m grid. Writes OUT/model.safetensors + model.json.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from terracodec.models.base import ImageCodec
    from terracodec.normalization import Normalization
    from terracodec.training.data import CropSampler, load_scenes
    from terracodec.training.loop import TrainConfig, check_objective, train
    from terracodec.training.sequences import SequenceSampler, load_sequences

    bands = parse_bands(bands_text)
    lambdas = parse_lambdas(lambda_text)
    check_objective(objective, lambdas)
    if len(lambdas) > 1 and arch == "tec-tt":
        raise InputError("variable-rate training (a --lambda list) is for the image codecs (tec-fp, tec-elic)")
    out = Path(out_dir)
    temporal = arch == "tec-tt"
    if temporal and centre_min_bands is not None:
        raise InputError("--centre is for the image codecs (tec-fp, tec-elic)")
    if temporal:
        scenes = load_sequences(inputs, bands, min_frames=max(2, frames))
    elif centre_min_bands is not None:
        from terracodec.training.band_subsets import load_partial_scenes

        scenes = load_partial_scenes(inputs, bands, min_bands=centre_min_bands)
    else:
        scenes = load_scenes(inputs, bands)
    norm = training_normalization(bands, has_offset)
    from terracodec.zoo import from_pretrained

    inherited = None  # the warm-start source's centre on the bands it shares (`inherit_centring`)
    if resume:
        model = from_pretrained(str(out / "model"))
        norm = Normalization.from_config(model.config["normalization"])
    else:
        model = new_model(arch, n, m, arch_text, bands, norm, lambdas, seed)
        if init_path:
            from terracodec.training.warm_start import inherit_centring, warm_start

            source = from_pretrained(init_path)
            warm_start(model, source)
            new_bands = set(bands) - set(source.config.get("band_names") or [])
            if centre_min_bands is not None and "centre" in source.config and new_bands:
                norm, inherited = inherit_centring(model, source, norm)  # e.g. 13-band L1C from 12-band L2A
    if temporal and crop % model.multiple:
        raise InputError(f"--crop must be a multiple of {model.multiple} for tec-tt, got {crop}")
    if temporal:
        sampler = SequenceSampler(scenes, norm, crop=crop, frames=frames, seed=seed)
    elif centre_min_bands is not None:
        from terracodec.training.band_subsets import CentredCropSampler, training_centre

        from terracodec.training.warm_start import merged_centre

        if "centre" not in model.config:
            model.config["centre"] = merged_centre(training_centre(scenes, norm), inherited)
        model.config.setdefault("min_bands", centre_min_bands)
        sampler = CentredCropSampler(scenes, norm, model.config["centre"], crop=crop, seed=seed,
                                     gain_sigma=gain_sigma)
    else:
        sampler = CropSampler(scenes, norm, crop=crop, seed=seed)
    if resume:
        lambdas = model.config.get("lambdas") or [model.config.get("lambda", lambdas[0])]
    cfg = TrainConfig(lmbda=lambdas if len(lambdas) > 1 else lambdas[0], steps=steps, batch_size=batch_size, lr=lr, clip_norm=clip_norm,
                      seed=seed, warmup_steps=min(200, steps // 10), objective=objective,
                      max_seconds=None if max_minutes is None else 60 * max_minutes)

    def save(model, stem: Path) -> None:
        model.update(force=True)
        model.save_pretrained(str(stem))

    with Progress(TextColumn("[bold]train"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TextColumn("{task.fields[info]}"), TimeRemainingColumn()) as bar:
        task = bar.add_task("train", total=steps, info="")

        def report(step: int, row: dict) -> None:
            info = f"bpppb {row['bpppb']:.3f}  mse {row['mse']:.4f}  lr {row['lr']:.1e}"
            bar.update(task, completed=step, info=info)
            if not bar.console.is_terminal:  # a log file (nohup): the bar shows only at the end
                click.echo(f"step {step}/{steps}  loss {row['loss']:.4f}  {info}  {row['seconds']:.0f} s")

        train(model, sampler.batches(batch_size), cfg, out, save=save, device=device,
              resume=resume, progress=report)
    unit = "sequences" if temporal else "scenes"
    click.echo(f"wrote {out / 'model.safetensors'} ({len(scenes)} {unit}, {steps} steps)")
