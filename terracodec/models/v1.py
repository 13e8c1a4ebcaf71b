"""TerraCodec v1 TEC-FP and TEC-ELIC checkpoints: recognised by their key names, sized by their
tensor shapes (bands, N, M, channel groups, context widths), loaded with `strict=True`.

The published files are CompressAI-based state dicts (read by `terracodec.weights.
read_v1_state_dict`); their entropy tables are replaced by our deterministic ones. Both kinds
register themselves in `terracodec.registry`, so `--weights FILE.pt` alone is enough.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from torch import Tensor

from terracodec.errors import ModelError
from terracodec.registry import ARCHITECTURES, CheckpointKind, register_checkpoint_kind
from terracodec.weights import load_state, shape_of


def infer_v1_config(state: Mapping[str, Tensor], source: str = "checkpoint") -> dict[str, Any]:
    """Architecture and sizes of a v1 state dict, from key names and tensor shapes."""
    if any(k.startswith("latent_codec.") for k in state):
        return _infer_elic(state, source)
    if any(k.startswith("entropy_bottleneck.") for k in state) and "g_a.0.weight" in state:
        return _infer_fp(state, source)
    raise ModelError(f"{source} is neither a TEC-FP nor a TEC-ELIC checkpoint")


def _infer_fp(state: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    n, bands = shape_of(state, "g_a.0.weight", source)[:2]
    m = shape_of(state, "g_a.6.weight", source)[0]
    out = shape_of(state, "g_s.6.weight", source)[1]  # ConvTranspose2d weight: [in, out, k, k]
    if out != bands:
        raise ModelError(f"{source}: encoder takes {bands} bands but decoder gives {out}")
    return {"arch": "tec-fp", "bands": int(bands), "N": int(n), "M": int(m)}


def _infer_elic(state: Mapping[str, Tensor], source: str) -> dict[str, Any]:
    n, bands = shape_of(state, "g_a.0.weight", source)[:2]
    m = shape_of(state, "g_a.13.weight", source)[0]
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
            int(shape_of(state, f"{ctx}.0.weight", source)[0]),
            int(shape_of(state, f"{ctx}.2.weight", source)[0]),
        ],
        "aggregation_width": int(shape_of(state, f"{agg}.2.weight", source)[0]),
    }


def build_v1(state: Mapping[str, Tensor], config: dict[str, Any], source: str) -> Any:
    """The model of `config` with the checkpoint's weights, tables rebuilt, in eval mode."""
    try:
        model = ARCHITECTURES[config["arch"]](config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{source}: invalid {config.get('arch')} config: {exc}") from None
    load_state(model, state, source)
    model.update(force=True)
    return model.eval()


def _recognise_fp(state: Mapping[str, Tensor], source: str) -> Optional[dict]:
    if any(k.startswith("latent_codec.") for k in state) or "g_a.0.weight" not in state:
        return None
    if not any(k.startswith("entropy_bottleneck.") for k in state):
        return None
    return _infer_fp(state, source)


def _recognise_elic(state: Mapping[str, Tensor], source: str) -> Optional[dict]:
    return _infer_elic(state, source) if any(k.startswith("latent_codec.") for k in state) else None


register_checkpoint_kind(CheckpointKind(
    "terracodec-v1-fp", "TerraCodec v1 TEC-FP (factorized prior)", _recognise_fp, build_v1,
    lambda config: "tec-fp-v1"))
register_checkpoint_kind(CheckpointKind(
    "terracodec-v1-elic", "TerraCodec v1 TEC-ELIC (hyperprior, channel groups, checkerboard)",
    _recognise_elic, build_v1, lambda config: "tec-elic-v1"))

__all__ = ["build_v1", "infer_v1_config"]
