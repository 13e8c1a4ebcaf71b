"""Weights on disk: our format (safetensors + JSON config) and reading TerraCodec v1 `.pt` files.

Our format: `name.safetensors` holds every parameter and buffer except those rebuilt exactly
from the others (`derived_keys`: the Gaussian conditionals' integer tables, which exact
arithmetic rebuilds from their scale table, and the checkerboard masks); the entropy
bottlenecks' tables, computed from learned densities, are stored. `name.json` holds the config
that rebuilds the model (`terracodec.zoo.from_config`). Neither can run code when loaded.

TerraCodec v1 (IBM `terracodec` 0.3.1) publishes `.pt` state dicts with a `model.` prefix. They
are read with `torch.load(weights_only=True)` (no arbitrary unpickling) and the prefix is
stripped; which architecture a state dict is, and its sizes, is the business of the checkpoint
kinds the model packages register (`terracodec.registry`). Anything that does not fit raises a
one-line `ModelError`. This module knows no model class.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from terracodec.errors import ModelError

FORMAT = "terracodec-weights"
FORMAT_VERSION = 1

# CompressAI < 1.1 named the entropy bottleneck's parameters `_matrix0`, `_bias0`, `_factor0`.
_OLD_EB_KEY = re.compile(r"^(.*entropy_bottleneck\.)_(matrix|bias|factor)(\d+)$")
_OLD_EB_NAMES = {"matrix": "matrices", "bias": "biases", "factor": "factors"}


def stem(path: str | Path) -> Path:
    """`path` without a `.safetensors` / `.json` suffix."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


# --------------------------------------------------------------------------- our format
def save_pretrained(model: torch.nn.Module, path: str | Path, *, float16: bool = False) -> tuple[Path, Path]:
    """Write `path.safetensors` and `path.json` of a codec (`model.config`, `model.arch`).

    `float16` stores the transforms' float32 weights as float16 (half the file; loading widens
    them back, so the model that codes is the float16-rounded one, hashed as such); the entropy
    models' parameters and tables stay as they are, being small and what rates depend on most.
    """
    from safetensors.torch import save_file

    base = stem(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    skip = derived_keys(model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if k not in skip}
    if float16:
        entropy = entropy_model_prefixes(model)
        tensors = {k: v.half() if v.dtype == torch.float32 and not k.startswith(entropy) else v
                   for k, v in tensors.items()}
    weights, config = base.with_suffix(".safetensors"), base.with_suffix(".json")
    save_file(tensors, str(weights), metadata={"format": FORMAT, "arch": model.arch})
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config}
    config.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return weights, config


def entropy_model_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of a codec's entropy models (bottlenecks, Gaussian conditionals)."""
    from terracodec.entropy.bottleneck import EntropyBottleneck
    from terracodec.entropy.gaussian import GaussianConditional

    return tuple(f"{name}." for name, module in model.named_modules()
                 if name and isinstance(module, (EntropyBottleneck, GaussianConditional)))


def derived_keys(model: torch.nn.Module) -> set[str]:
    """State-dict keys that loading rebuilds exactly, so files need not carry them: the integer
    tables of every `GaussianConditional` (a pure function of its scale table, built in exact
    arithmetic; 0.8 MB per channel group of TEC-ELIC) and the masks of masked convolutions."""
    from terracodec.entropy.gaussian import GaussianConditional
    from terracodec.layers.conv import CheckerboardMaskedConv2d

    keys = set()
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, GaussianConditional):
            keys.update(f"{prefix}{b}" for b in ("_quantized_cdf", "_offset", "_cdf_length"))
        elif isinstance(module, CheckerboardMaskedConv2d):
            keys.add(f"{prefix}mask")
    return keys


def read_config(path: str | Path) -> dict[str, Any]:
    """The model config stored beside a `.safetensors` file."""
    config_path = stem(path).with_suffix(".json")
    try:
        record = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"no model config {config_path}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"unreadable model config {config_path}: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ModelError(f"{config_path} is not a terracodec model config")
    if record.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{config_path}: unsupported format version {record.get('format_version')}")
    return record["config"]


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """The tensors of `path.safetensors` (our format)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights = stem(path).with_suffix(".safetensors")
    try:
        return load_file(str(weights))
    except FileNotFoundError:
        raise ModelError(f"no weights file {weights}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"unreadable weights file {weights}: {exc}") from None


def load_state(model: torch.nn.Module, state: Mapping[str, Tensor], source: str) -> None:
    """`load_state_dict(strict=True)` with a one-line ModelError on any mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ModelError(f"{source} does not fit {model.arch}: {', '.join(parts)} keys")
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line.strip() for line in first[1:] if line.strip()), first[0] if first else "")
        raise ModelError(f"{source} does not fit {model.arch}: {detail}") from None


# --------------------------------------------------------------------------- TerraCodec v1
def read_pt(path: str | Path | Any) -> Any:
    """A `.pt` file (or file object) read with `torch.load(weights_only=True)`: tensors and plain
    containers only, any other pickled object refused; a one-line ModelError otherwise."""
    source = str(path) if isinstance(path, (str, Path)) else "checkpoint"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"no such checkpoint: {source}") from None
    except Exception as exc:  # unpickling refused, not a zip, truncated, ...
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source} is not a readable PyTorch checkpoint: {message}") from None


def read_v1_state_dict(path: str | Path | Any) -> dict[str, Tensor]:
    """State dict of a TerraCodec v1 `.pt` file (or file object): prefix stripped, keys updated."""
    source = str(path) if isinstance(path, (str, Path)) else "checkpoint"
    raw = read_pt(path)
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]  # a Lightning checkpoint
    if not isinstance(raw, Mapping) or not raw or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in raw.items()
    ):
        raise ModelError(f"{source} does not hold a state dict of tensors")
    state = {}
    for key, value in raw.items():
        key = key[len("model.") :] if key.startswith("model.") else key
        match = _OLD_EB_KEY.match(key)
        if match:
            key = f"{match.group(1)}{_OLD_EB_NAMES[match.group(2)]}.{match.group(3)}"
        state[key] = value
    return state


def shape_of(state: Mapping[str, Tensor], key: str, source: str) -> tuple[int, ...]:
    """The shape of `state[key]`, or a one-line ModelError naming the missing tensor."""
    if key not in state:
        raise ModelError(f"{source}: expected tensor {key} is missing")
    return tuple(state[key].shape)


__all__ = ["FORMAT", "FORMAT_VERSION", "derived_keys", "load_state", "read_config", "read_pt", "read_v1_state_dict",
           "read_weights", "save_pretrained", "shape_of", "stem"]
