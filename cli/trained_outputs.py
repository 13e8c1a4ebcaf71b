"""Where the training commands (`tec train-tt`, `tec train-flextec`) write: a weights stem's
`.safetensors`, `.json` and `.log.json`, refused before any work when they exist, and written
all together or not at all (`io.atomic.AtomicOutputs`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import click

SUFFIXES = (".safetensors", ".json", ".log.json")


def checked_outputs(output: str, inputs: Sequence[str], overwrite: bool) -> tuple[Path, Any]:
    """(the weights stem, its `AtomicOutputs`), after refusing existing outputs or inputs."""
    from terracodec.io.atomic import AtomicOutputs
    from terracodec.weights import stem

    out = stem(output)
    check = AtomicOutputs(overwrite=overwrite, protected=list(inputs))
    for suffix in SUFFIXES:
        check.check_target(out.with_suffix(suffix))
    check.make_dir(out.parent)
    return out, check


def save_trained(model: Any, log: list[dict], out: Path, check: Any) -> None:
    """The model (transforms in float16) and its training log, all three files at once."""
    with check, tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        model.save_pretrained(str(Path(scratch) / "model"), float16=True)
        (Path(scratch) / "model.log.json").write_text(json.dumps(log, indent=1) + "\n")
        for suffix in SUFFIXES:
            shutil.copyfile(Path(scratch) / f"model{suffix}", check.temp_for(out.with_suffix(suffix)))


def series_options(command: Callable) -> Callable:
    """The inputs, output and data options that every series-training command shares."""
    shared = [
        click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True)),
        click.option("-o", "--output", required=True, type=click.Path(),
                     help="Weights stem: writes OUTPUT.safetensors, OUTPUT.json and OUTPUT.log.json."),
        click.option("--sparse", "sparse_inputs", multiple=True, type=click.Path(exists=True),
                     help="Series of few, distant dates (e.g. OSCD city pairs): cut into 256 px pieces, "
                          "--sparse-views views."),
        click.option("--sparse-views", type=int, default=2, show_default=True),
        click.option("--min-clear", type=float, default=0.95, show_default=True,
                     help="Dates whose *dates.csv clear fraction is lower are left out."),
        click.option("--min-bands", type=int, default=6, show_default=True,
                     help="Dates with fewer of the model's bands are left out."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--max-minutes", type=float, default=None, help="Stop after this long (the model is still saved)."),
        click.option("--overwrite", is_flag=True, help="Replace OUTPUT's files if they exist."),
        click.option("--quiet", "-q", is_flag=True),
    ]
    for option in reversed(shared):
        command = option(command)
    return command
