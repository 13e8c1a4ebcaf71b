"""Named models: name + quality -> config + weights (`terracodec/weights/`).

Each entry lists its qualities (1 = lowest rate) and, per quality, the stem of a
`.safetensors` + `.json` pair under `terracodec/weights/`. Until trained weights are
committed, the registry holds one *untrained* model, `tec-fp-tiny` (TEC-FP, 13 bands, N=16,
M=24): its weights are generated on first use from a fixed seed with a version-stable recipe
(`torch.Generator` uniform draws in sorted parameter order), so that the container, API and CLI
can be exercised end to end. Its reconstructions are meaningless; its `trained` flag says so.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from terracodec.errors import ModelError
from terracodec.models.base import ImageCodec
from terracodec.normalization import Normalization

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: name -> entry. `weights`: quality -> file stem under WEIGHTS_DIR, or None for seeded weights.
MODELS: dict[str, dict[str, Any]] = {
    "tec-fp-tiny": {
        "kind": "image",
        "config": {"arch": "tec-fp", "bands": 13, "N": 16, "M": 24},
        "normalization": "ssl4eo-s12-l1c",
        "weights": {1: None},
        "seed": 20250101,
        "trained": False,
        "description": "TEC-FP, 13-band S2 L1C, untrained seeded weights (for testing)",
    },
    # Trained here on the OSCD train cities (docs/MODELS.md). Variable rate: one set of weights,
    # five quality levels (gain vectors), lambda 1 ... 100. The bundled demo model.
    "tec-fp-s2l1c": {
        "kind": "image",
        "config": {"arch": "tec-fp", "bands": 13, "N": 64, "M": 96},
        "normalization": "ssl4eo-s12-l1c-no-offset",
        "weights": {q: "tec-fp-s2l1c" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-FP (N=64, M=96), 13-band S2 L1C, 5 qualities, trained on OSCD train cities",
    },
    "tec-fp-s2l2a": {
        "kind": "image",
        "config": {"arch": "tec-fp", "bands": 12, "N": 64, "M": 96},
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {q: "tec-fp-s2l2a" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-FP (N=64, M=96), 12 bands in L2A order (also L1C without B10), 5 qualities",
    },
    # Trained here on the OSCD train cities (docs/MODELS.md): the hyperprior + channel-group +
    # checkerboard codec, variable rate like the TEC-FP models, lambda 1 ... 100.
    "tec-elic-s2l2a": {
        "kind": "image",
        "config": {"arch": "tec-elic", "bands": 12, "N": 64, "M": 192,
                   "context_widths": [64, 48], "aggregation_width": 128},
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {q: "tec-elic-s2l2a" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-ELIC (N=64, M=192), 12 bands in L2A order (also L1C without B10), 5 qualities",
    },
    # TerraCodec v1 TEC-TT (temporal): the published checkpoints cannot be downloaded here, so
    # these take `--weights PATH` (a v1 `.pt`); qualities are the published lambdas.
    "tec-tt": {
        "kind": "temporal",
        "config": {"arch": "tec-tt", "bands": 12},
        # the reference package's documented statistics (`Normalization.terracodec_v1`)
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {q: None for q in (1, 2, 3, 4, 5, 6, 7)},
        "requires_weights": True,
        "trained": True,
        "description": "TEC-TT, 12-band S2 L2A; needs --weights (TerraCodec v1 TT checkpoint)",
    },
    "tec-tt-l1c": {
        "kind": "temporal",
        "config": {"arch": "tec-tt", "bands": 13},
        "normalization": "ssl4eo-s12-l1c-no-offset",
        "weights": {q: None for q in (1, 2, 3)},
        "requires_weights": True,
        "trained": True,
        "description": "TEC-TT, 13-band S2 L1C; needs --weights (TerraCodec v1 TT checkpoint)",
    },
    # Trained here on the OSCD train cities as 2-date sequences (docs/MODELS.md, issue 6): a
    # small TEC-TT (2.6 M parameters), one quality (lambda 100).
    "tec-tt-small": {
        "kind": "temporal",
        "config": {"arch": "tec-tt", "bands": 13, "latent_channels": 64,
                   "transform_channels": [64, 64, 64, 64], "residual_blocks": 1, "d_model": 96,
                   "num_heads": 4, "mlp_expansion": 4, "layers": [2, 2, 2]},
        "normalization": "ssl4eo-s12-l1c-no-offset",
        "weights": {1: "tec-tt-small-s2l1c"},
        "trained": True,
        "description": "TEC-TT small (latent 64, d_model 96), 13-band S2 L1C, trained on OSCD train cities (2 dates)",
    },
}


def list_models() -> list[dict[str, Any]]:
    """One dict per model: name, kind, bands, qualities, arch, trained, requires_weights
    (ships no weights: needs `--weights`), description."""
    return [
        {
            "name": name,
            "kind": entry["kind"],
            "bands": entry["config"]["bands"],
            "qualities": sorted(entry["weights"]),
            "arch": entry["config"]["arch"],
            "trained": entry["trained"],
            "requires_weights": bool(entry.get("requires_weights", False)),
            "description": entry["description"],
        }
        for name, entry in MODELS.items()
    ]


def _normalization(entry: dict[str, Any]) -> Normalization:
    presets = {
        "ssl4eo-s12-l1c": Normalization.ssl4eo_l1c,
        "ssl4eo-s12-l2a": Normalization.ssl4eo_l2a,
        "ssl4eo-s12-l1c-no-offset": lambda: Normalization.ssl4eo_l1c().without_baseline_offset(),
        "ssl4eo-s12-l2a-no-offset": lambda: Normalization.ssl4eo_l2a().without_baseline_offset(),
    }
    return presets[entry["normalization"]]()


def _resolve_quality(name: str, entry: dict[str, Any], quality: Any) -> int:
    qualities = sorted(entry["weights"])
    if quality is None:
        return qualities[len(qualities) // 2]
    q = quality if isinstance(quality, int) else None
    if isinstance(quality, str) and quality.strip().isdigit():
        q = int(quality)
    if q not in entry["weights"]:
        raise ModelError(f"model {name} has no quality {quality!r} (available: {qualities})")
    return q


def load_model(name: str, quality: Any = None, *, weights: str | Path | None = None) -> ImageCodec:
    """A ready-to-code model (eval mode, tables built).

    `weights` overrides the registered file: a `.safetensors` (with its `.json`) or a
    TerraCodec v1 `.pt` checkpoint; the registry still supplies name, quality and normalisation.
    """
    from terracodec.models import checkpoint

    if name not in MODELS:
        raise ModelError(f"unknown model {name!r} (available: {', '.join(sorted(MODELS))})")
    entry = MODELS[name]
    q = _resolve_quality(name, entry, quality)
    config = dict(entry["config"], name=name, quality=q)
    config["normalization"] = _normalization(entry).to_config()
    if weights is not None:
        path = Path(weights)
        if path.suffix == ".pt":
            return checkpoint.load_v1_checkpoint(
                path, name=name, quality=q, normalization=_normalization(entry)
            )
        if path.with_suffix(".json").exists():  # its own config, coding at the asked quality
            config = dict(checkpoint.read_config(path), name=name, quality=q)
        return checkpoint.from_pretrained(path, config=config)
    if entry.get("requires_weights"):
        raise ModelError(f"model {name} ships no weights here: pass --weights PATH (a TerraCodec v1 checkpoint)")
    stem = entry["weights"][q]
    if stem is None:
        model = ImageCodec.from_config(config)
        model.load_state_dict(_seeded_state(name, q))
        return model.eval()
    # Shipped weights carry the config they were trained with (normalisation included).
    shipped = checkpoint.read_config(WEIGHTS_DIR / stem)
    return checkpoint.from_pretrained(WEIGHTS_DIR / stem, config=dict(shipped, name=name, quality=q))


@lru_cache(maxsize=None)
def _seeded_state_cached(name: str, quality: int) -> dict[str, torch.Tensor]:
    entry = MODELS[name]
    config = dict(entry["config"], name=name, quality=quality)
    model = ImageCodec.from_config(config)
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
