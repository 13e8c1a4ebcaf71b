"""The leaf registry: which architectures exist, and which published checkpoints they read.

Model packages register themselves here when imported (`@register_architecture("tec-fp")` on
the class, `register_checkpoint_kind(...)` beside their checkpoint reader); the zoo
(`terracodec.zoo`) imports the packages and looks things up. This module imports nothing of
terracodec, so that no import runs in a circle (CompressAI's `registry/` + `zoo/` split).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

#: config["arch"] -> model class.
ARCHITECTURES: dict[str, type] = {}


def register_architecture(name: str) -> Callable[[type], type]:
    """Class decorator: make `terracodec.zoo.from_config` able to build this architecture."""

    def wrap(cls: type) -> type:
        cls.arch = name
        ARCHITECTURES[name] = cls
        return cls

    return wrap


@dataclass(frozen=True)
class CheckpointKind:
    """A kind of published checkpoint (TerraCodec v1 FP, ELIC, TT, ...).

    `recognise(state, source)` returns the model config (sizes inferred from the tensors) of a
    state dict of this kind, or None when it is not one; `build(state, config, source)` returns
    the model with the weights loaded. `model_name(config)` names the zoo entry a checkpoint of
    this kind codes as (the name streams record)."""

    name: str
    description: str
    recognise: Callable[[Mapping[str, Any], str], Optional[dict]]
    build: Callable[[Mapping[str, Any], dict, str], Any]
    model_name: Callable[[dict], str]


#: kind name -> CheckpointKind, in registration order (first match wins).
CHECKPOINT_KINDS: dict[str, CheckpointKind] = {}


def register_checkpoint_kind(kind: CheckpointKind) -> CheckpointKind:
    CHECKPOINT_KINDS[kind.name] = kind
    return kind


__all__ = ["ARCHITECTURES", "CHECKPOINT_KINDS", "CheckpointKind", "register_architecture",
           "register_checkpoint_kind"]
