"""Building models: from a config, from our weights files, from TerraCodec v1 checkpoints, and
by name from the zoo's table.

This is the one place that imports every model package: they register their architectures and
checkpoint kinds in `terracodec.registry` when imported, and nothing below the zoo imports it.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

import terracodec.models.elic  # noqa: F401  (registers "tec-elic")
import terracodec.models.factorized  # noqa: F401  (registers "tec-fp")
import terracodec.models.v1  # noqa: F401  (registers the v1 FP and ELIC checkpoint kinds)
import terracodec.temporal.checkpoint  # noqa: F401  (registers "tec-tt" and its checkpoint kind)
import terracodec.temporal.conditional_elic  # noqa: F401  (registers "tec-tt-elic")
import terracodec.temporal.flextec_elic  # noqa: F401  (registers "tec-flextec-elic")
from terracodec.errors import ModelError
from terracodec.models.base import ImageCodec
from terracodec.normalization import Normalization
from terracodec.registry import ARCHITECTURES, CHECKPOINT_KINDS, CheckpointKind
from terracodec.weights import derived_keys, load_state, read_config, read_v1_state_dict, read_weights
from terracodec.zoo.table import MODELS, WEIGHTS_DIR


def from_config(config: dict[str, Any]) -> ImageCodec:
    """Build an (untrained) codec from its JSON config (`config["arch"]` picks the class)."""
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown model architecture {arch!r} (known: {sorted(ARCHITECTURES)})")
    try:
        return ARCHITECTURES[arch](config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"invalid {arch} config: {exc}") from None


def from_pretrained(path: str | Path, config: Optional[dict[str, Any]] = None) -> ImageCodec:
    """Model from `path.safetensors` (+ `path.json`, unless `config` is given)."""
    config = read_config(path) if config is None else config
    state = read_weights(path)
    model = from_config(config)
    fresh = model.state_dict()
    for key in derived_keys(model):  # not in the file: rebuilt by `update` below
        state.setdefault(key, fresh[key])
    load_state(model, state, str(path))
    model.update(force=False)
    return model.eval()


def recognise(state: Mapping[str, Any], source: str = "checkpoint") -> tuple[CheckpointKind, dict[str, Any]]:
    """(kind, config) of a published checkpoint's state dict; ModelError for an unknown one."""
    for kind in CHECKPOINT_KINDS.values():
        config = kind.recognise(state, source)
        if config is not None:
            return kind, config
    known = ", ".join(k.description for k in CHECKPOINT_KINDS.values())
    raise ModelError(f"{source} is no checkpoint kind this terracodec reads ({known})")


def checkpoint_model_name(path: str | Path) -> str:
    """The zoo name that a v1 `.pt` file codes as (`tec encode --weights FILE.pt` without
    `--model`), or for our `.safetensors`, the name in its config."""
    path = Path(path)
    if path.suffix != ".pt":
        config = read_config(path)
        return str(config.get("name") or config.get("arch"))
    kind, config = recognise(read_v1_state_dict(path), str(path))
    return kind.model_name(config)


def load_checkpoint(path: str | Path | Any, *, name: Optional[str] = None, quality: Any = None,
                    normalization: Optional[Normalization] = None) -> ImageCodec:
    """A ready-to-code model (eval mode) from a TerraCodec v1 `.pt` file: kind and sizes from
    the file, normalisation `Normalization.terracodec_v1` unless given."""
    source = str(path) if isinstance(path, (str, Path)) else "checkpoint"
    state = read_v1_state_dict(path)
    kind, config = recognise(state, source)
    norm = normalization or Normalization.terracodec_v1(int(config["bands"]))
    if len(norm.mean) != int(config["bands"]):
        raise ModelError(f"{source}: a {config['bands']}-band model, {len(norm.mean)}-band normalisation")
    config = dict(config, name=name or kind.model_name(config), quality=quality,
                  normalization=norm.to_config())
    return kind.build(state, config, source)


def _normalization(entry: dict[str, Any], bands: int) -> Normalization:
    presets = {
        "ssl4eo-s12-l1c": Normalization.ssl4eo_l1c,
        "ssl4eo-s12-l2a": Normalization.ssl4eo_l2a,
        "ssl4eo-s12-l1c-no-offset": lambda: Normalization.ssl4eo_l1c().without_baseline_offset(),
        "ssl4eo-s12-l2a-no-offset": lambda: Normalization.ssl4eo_l2a().without_baseline_offset(),
        "terracodec-v1": lambda: Normalization.terracodec_v1(bands),
    }
    return presets[entry["normalization"]]()


def _resolve_quality(name: str, entry: dict[str, Any], quality: Any) -> int:
    qualities = sorted(entry["weights"])
    if quality is None:
        return qualities[len(qualities) // 2]
    q = quality if isinstance(quality, int) and not isinstance(quality, bool) else None
    if isinstance(quality, str) and quality.strip().isdigit():
        q = int(quality)
    if q not in entry["weights"]:
        raise ModelError(f"model {name} has no quality {quality!r} (available: {qualities})")
    return q


def load_model(name: str, quality: Any = None, *, weights: str | Path | None = None) -> ImageCodec:
    """A ready-to-code model (eval mode, tables built) of the zoo's table.

    `weights` overrides the registered file: a `.safetensors` (with its `.json`) or a
    TerraCodec v1 `.pt` checkpoint; the table still supplies name, quality and normalisation.
    """
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r} (available: {', '.join(sorted(MODELS))})")
    entry = MODELS[name]
    q = _resolve_quality(name, entry, quality)
    if weights is not None:
        path = Path(weights)
        if path.suffix == ".pt":
            bands = entry["config"]["bands"]
            normalization = _normalization(entry, bands) if bands else None
            return load_checkpoint(path, name=name, quality=q, normalization=normalization)
        config = dict(entry["config"], name=name, quality=q)
        if path.with_suffix(".json").exists():  # its own config, coding at the asked quality
            config = dict(read_config(path), name=name, quality=q)
        else:
            config["normalization"] = _normalization(entry, config["bands"]).to_config()
        return from_pretrained(path, config=config)
    if entry.get("requires_weights"):
        raise ModelError(f"model {name} ships no weights here: pass --weights PATH (a TerraCodec v1 checkpoint)")
    stem = entry["weights"][q]
    if stem is None:
        config = dict(entry["config"], name=name, quality=q,
                      normalization=_normalization(entry, entry["config"]["bands"]).to_config())
        model = from_config(config)
        model.load_state_dict(_seeded_state(name, q))
        return model.eval()
    # Shipped weights carry the config they were trained with (normalisation included).
    shipped = read_config(WEIGHTS_DIR / stem)
    return from_pretrained(WEIGHTS_DIR / stem, config=dict(shipped, name=name, quality=q))


@lru_cache(maxsize=None)
def _seeded_state_cached(name: str, quality: int) -> dict[str, torch.Tensor]:
    entry = MODELS[name]
    model = from_config(dict(entry["config"], name=name, quality=quality))
    seeded_init(model, entry["seed"] + quality)
    model.update(force=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _seeded_state(name: str, quality: int) -> dict[str, torch.Tensor]:
    return copy.deepcopy(_seeded_state_cached(name, quality))


@torch.no_grad()
def seeded_init(model: torch.nn.Module, seed: int) -> None:
    """Deterministic random weights: U(+-1/sqrt(fan_in)) for convolutions, U(+-0.5) for entropy
    bottleneck biases, in sorted parameter order; everything else keeps its constant init."""
    gen = torch.Generator().manual_seed(int(seed))
    params = dict(model.named_parameters())
    for name in sorted(params):
        p = params[name]
        owner = name.rsplit(".", 1)[0]
        if name.endswith(".weight") and p.dim() == 4:
            fan_in = p.shape[1] * p.shape[2] * p.shape[3]
        elif name.endswith(".bias") and owner + ".weight" in params and params[owner + ".weight"].dim() == 4:
            w = params[owner + ".weight"]
            fan_in = w.shape[1] * w.shape[2] * w.shape[3]
        elif ".biases." in name and "entropy_bottleneck" in name:
            p.copy_(torch.rand(p.shape, generator=gen, dtype=torch.float64).sub(0.5).to(p.dtype))
            continue
        else:
            continue
        bound = fan_in**-0.5
        p.copy_(((torch.rand(p.shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound).to(p.dtype))


__all__ = ["checkpoint_model_name", "from_config", "from_pretrained", "load_checkpoint", "load_model",
           "recognise", "seeded_init"]
