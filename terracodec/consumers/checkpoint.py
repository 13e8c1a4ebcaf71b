"""Reading a foundation model's checkpoint as a user downloaded it, without running its code.

`.safetensors` files hold tensors only. `.pt` / `.pth` files are pickles: they are read with
`torch.load(weights_only=True)`, which rebuilds tensors and plain containers and refuses any
other object. Training checkpoints wrap the weights (`{"model": ...}`, `{"state_dict": ...}`,
DINO's `{"teacher": ...}`) and prefix their keys (`module.`, `backbone.`); `read_checkpoint`
unwraps both, so a strict `load_state` then names the first key that does not fit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from terracodec.errors import ModelError
from terracodec.weights import read_pt

#: Wrapper keys tried in order when a checkpoint is a dict of dicts.
WRAPPERS = ("state_dict", "model", "teacher", "student", "encoder")
#: Key prefixes stripped when every key carries one.
PREFIXES = ("module.", "backbone.", "model.", "encoder.")


def _is_state(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())


def _read(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"{path} is not a readable safetensors file: {exc}") from None
    return read_pt(path)


def read_checkpoint(path: str | Path, *, wrappers: tuple[str, ...] = WRAPPERS) -> dict[str, Tensor]:
    """The state dict in `path`, unwrapped and with a common prefix stripped."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"no such checkpoint: {path}")
    raw = _read(path)
    while not _is_state(raw):
        inner = next((raw[k] for k in wrappers if isinstance(raw, Mapping) and isinstance(raw.get(k), Mapping)), None)
        if inner is None:
            raise ModelError(f"{path} does not hold a state dict of tensors")
        raw = inner
    state = {k: v for k, v in raw.items()}
    for prefix in PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


__all__ = ["PREFIXES", "WRAPPERS", "read_checkpoint"]
