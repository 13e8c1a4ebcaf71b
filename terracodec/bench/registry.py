"""Codec names -> codec objects: the classical and video codecs, plus every registered model.

Registered terracodec models (image and temporal) are picked up from `terracodec.api.models()`
each time, so a model added to the registry is benchmarked without touching this file. Models
that ship no weights here (the TerraCodec v1 TEC-TT entries) run when a weights file is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from terracodec.bench.base import Codec
from terracodec.bench.classical import CLASSICAL_IMAGE_CODECS
from terracodec.bench.learned import TerracodecModel, WeightsMap
from terracodec.bench.video import VIDEO_CODECS
from terracodec.errors import InputError

CLASSICAL = {c.name: c for c in CLASSICAL_IMAGE_CODECS + VIDEO_CODECS}


def codec_names() -> list[str]:
    """Every codec name `tec bench --codecs` knows, available here or not."""
    return list(CLASSICAL) + [m.name for m in TerracodecModel.registered()]


def unavailable_codecs(weights: dict[str, WeightsMap] | None = None) -> dict[str, str]:
    """name -> why it cannot run here: classical codecs missing here, models without weights."""
    missing = {name: why for name, cls in CLASSICAL.items() if (why := cls.unavailable())}
    for model in TerracodecModel.registered(weights=weights):
        why = model.missing_weights()
        if why:
            missing[model.name] = why
    return missing


def assign_weights(specs: list[tuple[str | None, Any, str]], names: list[str] | None) -> dict[str, WeightsMap]:
    """`--weights` items (model or None, quality or None, path) -> {model: {quality: path}}.

    An item without a model name belongs to the one registered model named in `names` (the
    `--codecs` list), or to the one among them that ships no weights; a file must exist.
    """
    registered = TerracodecModel.registered()
    models = [m.name for m in registered]
    needy = {m.name for m in registered if m.requires_weights}
    out: dict[str, WeightsMap] = {}
    for model, quality, path in specs:
        if model is None:
            listed = [n for n in names or [] if n in models]
            if len(listed) > 1:
                listed = [n for n in listed if n in needy]
            if len(listed) != 1:
                raise InputError("--weights PATH needs exactly one terracodec model (or one that ships "
                                 "no weights) in --codecs; or name it: --weights MODEL=PATH")
            model = listed[0]
        if model not in models:
            raise InputError(f"--weights names {model}, which is not a registered model ({', '.join(models)})")
        if not Path(path).is_file():
            raise InputError(f"no such weights file: {path}")
        target = out.setdefault(model, {})
        if quality in target:
            raise InputError(f"--weights gives two files for {model} quality {quality if quality is not None else 'all'}")
        target[quality] = Path(path)
    return out


def make_codecs(names: list[str] | None = None, *, threads: int | None = None,
                device: str | None = None, weights: dict[str, WeightsMap] | None = None,
                ) -> tuple[list[Codec], dict[str, str]]:
    """(codecs ready to run, {name: reason} of those left out).

    `names` None means every codec: the unavailable ones are left out with their reason. A name
    asked for explicitly that cannot run is an InputError, as is an unknown name. `weights`
    gives models their weights files ({model: {quality or None: path}}).
    """
    models = {m.name: m for m in TerracodecModel.registered(device, weights)}
    known = list(CLASSICAL) + list(models)
    explicit = names is not None
    wanted = list(dict.fromkeys(names)) if explicit else known
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"unknown codec {', '.join(unknown)} (known: {', '.join(known)})")
    codecs: list[Codec] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        if name in models:
            why = models[name].missing_weights()
        else:
            why = CLASSICAL[name].unavailable()
        if why:
            if explicit:
                raise InputError(f"codec {name} cannot run here: {why}")
            skipped[name] = why
            continue
        codecs.append(models[name] if name in models else CLASSICAL[name](threads=threads))
    return codecs, skipped
