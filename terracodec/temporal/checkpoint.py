"""TerraCodec v1 TEC-TT checkpoints (`TerraCodec_v1_TT_S2L2A_lambda-*.pt`, `..._S2L1C_...`).

The published files are `torch.save`d state dicts of the reference `TemporalTransformer`
wrapper (keys prefixed `model.`). They are read with `torch.load(weights_only=True)`
(`terracodec.weights.read_v1_state_dict`: no arbitrary unpickling), every size is
inferred from the tensor shapes (bands, transform widths, residual blocks, latent channels,
d_model, MLP width, layer counts, window sizes, context length), and the weights are loaded with
`strict=True`. The location-scale conditional's entries (`entropy_model.bottleneck.*`: its
tables and bounds) are not weights: they are checked to hold the published parameters where
they are present and replaced by our deterministic tables. The number of attention heads cannot
be read from shapes; it is 16 in every published model and can be overridden.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from torch import Tensor

from terracodec.errors import ModelError
from terracodec.normalization import Normalization
from terracodec.registry import CheckpointKind, register_checkpoint_kind
from terracodec.temporal.model import TemporalCodec
from terracodec.temporal.transformer import skip_init
from terracodec.weights import load_state, read_v1_state_dict, shape_of

_BOTTLENECK = "entropy_model.bottleneck."
_ANALYSIS = "transform.analysis_transform.transforms."


def is_tt_state_dict(state: Mapping[str, Tensor]) -> bool:
    return any(k.startswith("entropy_model.encoder_sep.") for k in state)


def _count(state: Mapping[str, Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"encoder_layer_(\d+)\.")
    found = {int(m.group(1)) for k in state if (m := pattern.match(k))}
    if not found or found != set(range(len(found))):
        raise ModelError(f"checkpoint has no consecutive layers under {prefix}")
    return len(found)


def infer_tt_config(
    state: Mapping[str, Tensor], source: str = "checkpoint", num_heads: Optional[int] = None
) -> dict[str, Any]:
    """TEC-TT config of a v1 state dict (keys without the `model.` prefix)."""
    conv_indexes = sorted(
        int(m.group(1))
        for k, v in state.items()
        if (m := re.fullmatch(re.escape(_ANALYSIS) + r"(\d+)\.weight", k)) and v.dim() == 4
    )
    if len(conv_indexes) != 4:
        raise ModelError(f"{source}: expected 4 analysis convolutions, found {len(conv_indexes)}")
    blocks = conv_indexes[1] - conv_indexes[0] - 1
    if blocks < 0 or conv_indexes != [0, blocks + 1, 2 * blocks + 3, 3 * blocks + 4]:
        raise ModelError(f"{source}: unexpected analysis layout {conv_indexes}")
    widths = [int(state[f"{_ANALYSIS}{i}.weight"].shape[0]) for i in conv_indexes]
    bands = int(state[f"{_ANALYSIS}0.weight"].shape[1])
    d_model, channels = shape_of(state, "entropy_model.encoder_embedding.weight", source)
    seq_enc = shape_of(state, "entropy_model.enc_position_sep._pos", source)[1]
    seq_joint = shape_of(state, "entropy_model.enc_position_joint._pos", source)[1]
    seq_dec = shape_of(state, "entropy_model.dec_position._pos", source)[1]
    hidden = shape_of(state, "entropy_model.decoder.layers.encoder_layer_0.mlp1.fc1.weight", source)[0]
    w_ctx, w_cur = round(seq_enc**0.5), round(seq_dec**0.5)
    if w_ctx**2 != seq_enc or w_cur**2 != seq_dec or seq_joint % seq_enc or hidden % d_model:
        raise ModelError(f"{source}: inconsistent window or MLP sizes")
    heads = int(num_heads) if num_heads is not None else 16
    if d_model % heads:
        raise ModelError(f"{source}: d_model {d_model} is not divisible by {heads} heads")
    # FlexTEC (latent repacking) carries its two mask tokens; nothing else differs
    flextec = {"latent_repacking": True} if "entropy_model.mask_token" in state else {}
    return flextec | {
        "arch": "tec-tt",
        "bands": bands,
        "latent_channels": int(channels),
        "transform_channels": widths,
        "residual_blocks": blocks,
        "d_model": int(d_model),
        "num_heads": heads,
        "mlp_expansion": hidden // d_model,
        "layers": [
            _count(state, "entropy_model.encoder_sep.layers."),
            _count(state, "entropy_model.encoder_joint.layers."),
            _count(state, "entropy_model.decoder.layers."),
        ],
        "window_context": w_ctx,
        "window_current": w_cur,
        "context_frames": seq_joint // seq_enc,
    }


def _check_bottleneck(state: Mapping[str, Tensor], source: str) -> None:
    """The published conditional: min scale 0.01 (its other parameters are not stored)."""
    bound = state.get(_BOTTLENECK + "_entropy_model.scale_bound")
    if bound is not None and (bound.numel() != 1 or abs(float(bound) - 0.01) > 1e-9):
        value = float(bound.flatten()[0])
        raise ModelError(f"{source}: location-scale conditional with scale bound {value}, expected 0.01")
    cdf = state.get(_BOTTLENECK + "_entropy_model._quantized_cdf")
    if cdf is not None and cdf.numel() and cdf.shape[0] != 100 * 256:
        raise ModelError(f"{source}: location-scale tables with {cdf.shape[0]} rows, expected 25600")


def tt_model_from_state(
    state: Mapping[str, Tensor], source: str = "checkpoint", num_heads: Optional[int] = None,
    extra: Optional[dict[str, Any]] = None,
) -> TemporalCodec:
    """A ready-to-code TEC-TT (eval mode, tables built) from a v1 state dict."""
    _check_bottleneck(state, source)
    config = dict(infer_tt_config(state, source, num_heads), **(extra or {}))
    weights = {k: v for k, v in state.items() if not k.startswith(_BOTTLENECK)}
    try:
        with skip_init():
            model = TemporalCodec(config)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{source}: invalid TEC-TT config: {exc}") from None
    ours = model.state_dict()
    weights.update({k: v for k, v in ours.items() if k.startswith(_BOTTLENECK) and k not in weights})
    load_state(model, weights, source)
    model.update(force=False)
    return model.eval()


def tt_from_v1_state(
    state: Mapping[str, Tensor],
    source: str = "checkpoint",
    *,
    name: Optional[str] = None,
    quality: Any = None,
    normalization: Optional[Normalization] = None,
    num_heads: Optional[int] = None,
) -> TemporalCodec:
    """TEC-TT from a v1 state dict (prefix stripped), with its registry name, quality and the
    normalisation (default: `Normalization.terracodec_v1`, what the published models expect)."""
    if not is_tt_state_dict(state):
        raise ModelError(f"{source} is not a TEC-TT checkpoint")
    bands = int(shape_of(state, f"{_ANALYSIS}0.weight", source)[1])
    normalization = normalization or Normalization.terracodec_v1(bands)
    if len(normalization.mean) != bands:
        raise ModelError(f"{source}: {bands}-band model, {len(normalization.mean)}-band normalisation")
    extra: dict[str, Any] = {"normalization": normalization.to_config()}
    if name is not None:
        extra["name"] = name
    if quality is not None:
        extra["quality"] = quality
    return tt_model_from_state(state, source, num_heads, extra)


def load_tt_checkpoint(
    path: str | Path | Any,
    *,
    name: Optional[str] = None,
    quality: Any = None,
    normalization: Optional[Normalization] = None,
    num_heads: Optional[int] = None,
) -> TemporalCodec:
    """TEC-TT from a TerraCodec v1 `.pt` file (L2A 12-band or L1C 13-band)."""
    source = str(path) if isinstance(path, (str, Path)) else "checkpoint"
    return tt_from_v1_state(
        read_v1_state_dict(path), source, name=name, quality=quality,
        normalization=normalization, num_heads=num_heads,
    )


def _recognise(state: Mapping[str, Tensor], source: str) -> Optional[dict]:
    return infer_tt_config(state, source) if is_tt_state_dict(state) else None


def _build(state: Mapping[str, Tensor], config: dict[str, Any], source: str) -> TemporalCodec:
    return tt_model_from_state(state, source, config.get("num_heads"), config)


register_checkpoint_kind(CheckpointKind(
    "terracodec-v1-tt", "TerraCodec v1 TEC-TT (temporal transformer)", _recognise, _build,
    lambda config: "tec-flextec" if config.get("latent_repacking") else
    "tec-tt-l1c" if config.get("bands") == 13 else "tec-tt"))

__all__ = [
    "infer_tt_config", "load_tt_checkpoint", "tt_from_v1_state", "tt_model_from_state", "is_tt_state_dict",
]
