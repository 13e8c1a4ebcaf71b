"""The model zoo: models by name (`load_model`), from configs and weights files, and from
published checkpoints recognised by their contents (`load_checkpoint`, `recognise`).

`terracodec.registry` is the leaf table the model packages fill; this package sits on top of
them (`loading`) and of its own table of named models (`table`, light: no torch). Names are
imported on first use, so that reading the table (`tec info`, `tec models`) loads no torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "MODELS": "table", "WEIGHTS_DIR": "table", "describe": "table", "list_models": "table",
    "checkpoint_model_name": "loading", "from_config": "loading", "from_pretrained": "loading",
    "load_checkpoint": "loading", "load_model": "loading", "recognise": "loading", "seeded_init": "loading",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(import_module(f"terracodec.zoo.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'terracodec.zoo' has no attribute {name!r}")
