"""Weights on disk: our format (safetensors + JSON config) and TerraCodec v1 `.pt` checkpoints.

Our format: `name.safetensors` holds every parameter and buffer except those rebuilt exactly
from the others (`derived_keys`: the Gaussian conditionals' integer tables, which exact
arithmetic rebuilds from their scale table, and the checkerboard masks); the entropy
bottlenecks' tables, computed from learned densities, are stored. `name.json` holds the config
that rebuilds the model (`ImageCodec.from_config`). Neither can run code when loaded.

TerraCodec v1 (IBM `terracodec` 0.3.1) publishes `.pt` state dicts of CompressAI-based models
with a `model.` prefix. They are read with `torch.load(weights_only=True)` (no arbitrary
unpickling), the prefix is stripped, the architecture is recognised from the key names and its
sizes (bands, N, M, channel groups, context widths) from the tensor shapes, and the weights are
loaded with `strict=True`. The entropy tables are then rebuilt with our deterministic recipe
(the file's CompressAI-built tables are replaced). Anything that does not fit raises a one-line
`ModelError`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from terracodec.errors import ModelError
from terracodec.models.base import ImageCodec
from terracodec.normalization import Normalization

FORMAT = "terracodec-weights"
FORMAT_VERSION = 1

# CompressAI < 1.1 named the entropy bottleneck's parameters `_matrix0`, `_bias0`, `_factor0`.
_OLD_EB_KEY = re.compile(r"^(.*entropy_bottleneck\.)_(matrix|bias|factor)(\d+)$")
_OLD_EB_NAMES = {"matrix": "matrices", "bias": "biases", "factor": "factors"}


def _stem(path: str | Path) -> Path:
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


# --------------------------------------------------------------------------- our format
def save_pretrained(model: ImageCodec, path: str | Path) -> tuple[Path, Path]:
    """Write `path.safetensors` and `path.json`; returns both paths."""
    from safetensors.torch import save_file

    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    skip = derived_keys(model)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items() if k not in skip}
    weights, config = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    save_file(tensors, str(weights), metadata={"format": FORMAT, "arch": model.arch})
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": model.config}
    config.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return weights, config


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
    config_path = _stem(path).with_suffix(".json")
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


def from_pretrained(path: str | Path, config: dict[str, Any] | None = None) -> ImageCodec:
    """Model from `path.safetensors` (+ `path.json`, unless `config` is given)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    stem = _stem(path)
    config = read_config(stem) if config is None else config
    weights = stem.with_suffix(".safetensors")
    try:
        state = load_file(str(weights))
    except FileNotFoundError:
        raise ModelError(f"no weights file {weights}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"unreadable weights file {weights}: {exc}") from None
    model = ImageCodec.from_config(config)
    fresh = model.state_dict()
    for key in derived_keys(model):  # not in the file: rebuilt by `update` below
        state.setdefault(key, fresh[key])
    load_state(model, state, str(weights))
    model.update(force=False)
    return model.eval()


def load_state(model: ImageCodec, state: Mapping[str, Tensor], source: str) -> None:
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
def read_v1_state_dict(path: str | Path | Any) -> dict[str, Tensor]:
    """State dict of a TerraCodec v1 `.pt` file (or file object): prefix stripped, keys updated."""
    source = str(path) if isinstance(path, (str, Path)) else "checkpoint"
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"no such checkpoint: {source}") from None
    except Exception as exc:  # unpickling refused, not a zip, truncated, ...
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source} is not a readable PyTorch checkpoint: {message}") from None
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


def _shape(state: Mapping[str, Tensor], key: str, source: str) -> tuple[int, ...]:
    if key not in state:
        raise ModelError(f"{source}: expected tensor {key} is missing")
    return tuple(state[key].shape)


def infer_v1_config(state: Mapping[str, Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """Architecture and sizes of a v1 state dict, from key names and tensor shapes."""
    if any(k.startswith("latent_codec.") for k in state):
        return _infer_elic(state, source)
    if any(k.startswith("entropy_bottleneck.") for k in state) and "g_a.0.weight" in state:
        return _infer_fp(state, source)
    raise ModelError(f"{source} is neither a TEC-FP nor a TEC-ELIC checkpoint")


def _infer_fp(state: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    n, bands = _shape(state, "g_a.0.weight", source)[:2]
    m = _shape(state, "g_a.6.weight", source)[0]
    out = _shape(state, "g_s.6.weight", source)[1]  # ConvTranspose2d weight: [in, out, k, k]
    if out != bands:
        raise ModelError(f"{source}: encoder takes {bands} bands but decoder gives {out}")
    return {"arch": "tec-fp", "bands": int(bands), "N": int(n), "M": int(m)}


def _infer_elic(state: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    n, bands = _shape(state, "g_a.0.weight", source)[:2]
    m = _shape(state, "g_a.13.weight", source)[0]
    groups = []
    while True:
        key = f"latent_codec.y.latent_codec.y{len(groups)}.context_prediction.weight"
        if key not in state:
            break
        groups.append(int(state[key].shape[1]))
    if len(groups) < 2 or sum(groups) != m:
        raise ModelError(f"{source}: channel groups {groups} do not add up to M={m}")
    ctx = "latent_codec.y.channel_context.y1"
    agg = "latent_codec.y.latent_codec.y0.entropy_parameters"
    return {
        "arch": "tec-elic",
        "bands": int(bands),
        "N": int(n),
        "M": int(m),
        "groups": groups,
        "context_widths": [
            int(_shape(state, f"{ctx}.0.weight", source)[0]),
            int(_shape(state, f"{ctx}.2.weight", source)[0]),
        ],
        "aggregation_width": int(_shape(state, f"{agg}.2.weight", source)[0]),
    }


def load_v1_checkpoint(
    path: str | Path | Any,
    *,
    name: str | None = None,
    quality: Any = None,
    normalization: Normalization | None = None,
) -> ImageCodec:
    """TEC-FP / TEC-ELIC / TEC-TT model from a TerraCodec v1 `.pt` file, ready to code (eval mode)."""
    source = str(path) if isinstance(path, (str, Path)) else "checkpoint"
    state = read_v1_state_dict(path)
    from terracodec.temporal.checkpoint import is_tt_state_dict, tt_from_v1_state

    if is_tt_state_dict(state):  # TEC-TT (terracodec.temporal)
        if name is None:
            name = Path(path).stem if isinstance(path, (str, Path)) else "tec-tt"
        return tt_from_v1_state(state, source, name=name, quality=quality, normalization=normalization)
    config = infer_v1_config(state, source)
    norm = normalization or Normalization.terracodec_v1(config["bands"])
    if name is None:
        name = Path(path).stem if isinstance(path, (str, Path)) else config["arch"]
    config.update(name=name, quality=quality, normalization=norm.to_config())
    model = ImageCodec.from_config(config)
    load_state(model, state, source)
    model.update(force=True)
    return model.eval()
