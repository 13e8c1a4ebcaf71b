"""Which model codes a stream: a registry name (+ quality, + weights file) or an instance, and
checking that a decoder's model is exactly the one that coded the stream."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from terracodec.api.args import DEFAULT_MODEL, check_quality
from terracodec.bands import default_band_names, normalize_band_name
from terracodec.errors import InputError, ModelError
from terracodec.header import KINDS, StreamHeader


def models() -> list[dict]:
    """The available models: name, qualities (what `quality=` takes), bands, kind, ..."""
    from terracodec.zoo.table import list_models

    return [dict(m) for m in list_models()]


def _load_named(name: str, quality: Any, weights: str | None, device: Any = "cpu") -> Any:
    """A registry model on `device`, cached (one instance per name, quality, weights file
    version and device: a cached model is never moved, so concurrent calls share it safely)."""
    stamp = None
    if weights:
        st = os.stat(weights)
        stamp = (st.st_size, st.st_mtime_ns)
    return _load_cached(name, quality, weights, stamp, str(device))


@lru_cache(maxsize=4)
def _load_cached(name: str, quality: Any, weights: str | None, stamp: Any, device: str) -> Any:
    from terracodec.zoo import load_model

    # normal tensors even when the caller runs in inference mode: the model outlives the call
    # (cached), and inference tensors track no versions, which weight caches key on
    with torch.inference_mode(False):
        codec = load_model(name, quality, weights=weights) if weights else load_model(name, quality)
        _to_device(codec, device)
    codec.eval()
    return codec


def resolve_model(model: Any, quality: Any, weights: Any, device: Any = None) -> tuple[Any, str, Any]:
    """(codec, name, quality) from a model name or an `ImageCodec` instance; with `model` None,
    the model a `weights` file is (a TerraCodec v1 checkpoint is recognised by its contents:
    `terracodec.zoo.recognise`), else `DEFAULT_MODEL`.

    Named models run on `device` (default CPU); an instance stays where it is unless `device`
    is given. Decoding is bit-exact on every device (DESIGN.md), so this is only about speed.
    """
    quality = check_quality(quality)
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise InputError(f"weights must be a path, got {weights!r}")
    if weights is not None and not Path(weights).is_file():
        raise ModelError(f"no such weights file: {weights}")
    if model is None:
        from terracodec.zoo import checkpoint_model_name

        model = checkpoint_model_name(weights) if weights is not None else DEFAULT_MODEL
    if isinstance(model, str):
        _check_device(device)
        codec = _load_named(model, quality, str(weights) if weights else None, device or "cpu")
        check_kind(codec)
        if quality is None:
            quality = codec.config.get("quality")
        return codec, model, quality
    if not all(hasattr(model, a) for a in ("start_state", "encode_frame", "decode_frame", "bands", "multiple")):
        raise ModelError(f"not a model name or a codec: {model!r}")
    check_kind(model)
    if device is not None:
        _to_device(model, device)
    name = getattr(model, "config", {}).get("name", type(model).__name__)
    if quality is None:
        quality = getattr(model, "config", {}).get("quality")
    return model, name, quality


def _check_device(device: Any) -> None:
    """A device torch knows by that name (None: the default, the CPU)."""
    if device is None:
        return
    if not isinstance(device, (str, torch.device)):
        raise InputError(f"device must be a name such as 'cpu' or 'cuda', got {device!r}")
    try:
        torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"cannot run on device {device!r}: {str(exc).splitlines()[0]}") from None


def _to_device(codec: Any, device: Any) -> None:
    if not isinstance(device, (str, torch.device)):
        raise InputError(f"device must be a name such as 'cpu' or 'cuda', got {device!r}")
    try:
        codec.to(torch.device(device))
    except (RuntimeError, AssertionError, ValueError) as exc:
        raise InputError(f"cannot run on device {device!r}: {str(exc).splitlines()[0]}") from None


def kind_of(codec: Any) -> str:
    return str(getattr(codec, "kind", None) or codec.config.get("kind", "image"))


def check_kind(codec: Any) -> None:
    if kind_of(codec) not in KINDS:
        raise ModelError(f"model kind {kind_of(codec)!r} is not supported by .tec files ({', '.join(KINDS)})")


def model_band_names(codec: Any) -> list[str] | None:
    names = getattr(codec, "band_names", None) or codec.config.get("band_names")
    if names is None:
        names = default_band_names(codec.bands)
    return [normalize_band_name(b) or b for b in names] if names else None


def normalization_config(codec: Any) -> dict:
    cfg = codec.config.get("normalization")
    if cfg is None:
        raise ModelError(f"model {codec.config.get('name')} has no normalisation in its config")
    return cfg


def decode_model(header: StreamHeader, model: Any, weights: Any, device: Any) -> Any:
    """The model that coded `header`'s stream (or `model`), refused unless its weights hash,
    bands, tile multiple and kind are the stream's."""
    c = header.codec
    codec, _, _ = resolve_model(model if model is not None else c.name, c.quality, weights, device)
    to_hash = getattr(codec, "weights_hash", None)
    actual = to_hash() if to_hash else ""
    if actual != c.weights_hash:
        raise ModelError(
            f"stream was coded by {c.name} (quality {c.quality}) with weights {c.weights_hash[:12]}, "
            f"but the loaded model's weights are {actual[:12]}"
        )
    if int(codec.bands) != c.bands or c.multiple % int(codec.multiple):  # 64 px ELIC streams: 16
        raise ModelError(f"model {c.name} does not match the stream's bands or tile multiple")
    if kind_of(codec) != c.kind:
        raise ModelError(f"stream holds {c.kind} coding, model {c.name} is a {kind_of(codec)} model")
    return codec


__all__ = ["check_kind", "decode_model", "kind_of", "model_band_names", "models",
           "normalization_config", "resolve_model"]
