"""The model zoo's table: name + quality -> config, normalisation and weights file.

Each entry lists its qualities (1 = lowest rate) and, per quality, the stem of a
`.safetensors` + `.json` pair under `terracodec/weights/` (None: seeded weights for the untrained
test model `tec-fp-tiny`, or a file the user passes with `--weights` for `requires_weights`
entries: the TerraCodec v1 checkpoints, which cannot be downloaded here). Light on purpose (no
torch): `tec info` and `tec models` read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

#: name -> entry. `weights`: quality -> file stem under WEIGHTS_DIR, or None. `config["bands"]`
#: None: any band count (taken from the checkpoint).
#: The sizes of the shipped TEC-ELIC models, and of the TTs built on them (`tec-tt-elic`).
_ELIC_SIZES: dict[str, Any] = {"N": 64, "M": 192, "context_widths": [64, 48], "aggregation_width": 128}
_TT_ELIC_SIZES: dict[str, Any] = {**_ELIC_SIZES, "temporal_width": 256, "mix_width": 64}

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
        "description": "TEC-FP (N=64, M=96), 12 bands in L2A order (also L1C without B10, and L2A "
                       "stacks of 6-11 of them), centred, 5 qualities, trained on L1C and L2A",
    },
    # Trained here on the OSCD train cities, then on L1C and L2A with band centring (docs/MODELS.md):
    # the hyperprior + channel-group + checkerboard codec, variable rate like the TEC-FP models,
    # lambda 1 ... 100; float16 weights (the entropy models' tensors float32).
    "tec-elic-s2l2a": {
        "kind": "image",
        "config": {"arch": "tec-elic", "bands": 12, **_ELIC_SIZES},
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {q: "tec-elic-s2l2a" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-ELIC (N=64, M=192), 12 bands in L2A order (also L1C without B10, and L2A "
                       "stacks of 6-11 of them), centred, 5 qualities, trained on L1C and L2A",
    },
    # TerraCodec v1 checkpoints (`.pt`): the published files cannot be downloaded here, so these
    # take `--weights PATH` (and `--weights PATH` alone picks them: `terracodec.zoo.recognise`);
    # sizes and bands come from the file, the normalisation is the reference README's
    # (`Normalization.terracodec_v1`); qualities are the published lambdas.
    "tec-fp-v1": {
        "kind": "image",
        "config": {"arch": "tec-fp", "bands": None},
        "normalization": "terracodec-v1",
        "weights": {q: None for q in (1, 2, 3, 4, 5)},
        "requires_weights": True,
        "trained": True,
        "description": "TerraCodec v1 TEC-FP, any band count; needs --weights (a v1 .pt)",
    },
    "tec-elic-v1": {
        "kind": "image",
        "config": {"arch": "tec-elic", "bands": None},
        "normalization": "terracodec-v1",
        "weights": {q: None for q in (1, 2, 3, 4, 5)},
        "requires_weights": True,
        "trained": True,
        "description": "TerraCodec v1 TEC-ELIC, any band count; needs --weights (a v1 .pt)",
    },
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
    # TerraCodec v1 FlexTEC: one TEC-TT for every rate, quality k = tokens sent per window (1..16)
    "tec-flextec": {
        "kind": "temporal",
        "config": {"arch": "tec-tt", "bands": 12, "latent_repacking": True},
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {q: None for q in range(1, 17)},
        "requires_weights": True,
        "trained": True,
        "description": "TerraCodec v1 FlexTEC (TEC-TT with latent repacking), 12-band S2 L2A, quality k = 1..16 "
                       "tokens per window; needs --weights (FlexTEC v1 checkpoint)",
    },
    # Trained here (docs/MODELS.md, issue 17): tec-elic-s2l2a widened to the 13 L1C bands (B10
    # added, the 12 shared bands keeping their normalisation and centre) and fine-tuned on L1C and
    # L2A; the base of tec-tt-s2l1c.
    "tec-elic-s2l1c": {
        "kind": "image",
        "config": {"arch": "tec-elic", "bands": 13, **_ELIC_SIZES},
        "normalization": "ssl4eo-s12-l1c-no-offset",
        "weights": {q: "tec-elic-s2l1c" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-ELIC (N=64, M=192), 13-band S2 L1C (and stacks of 6-12 of its bands), centred, "
                       "5 qualities, fine-tuned from tec-elic-s2l2a on L1C and L2A",
    },
    # Trained here (docs/MODELS.md, issue 17): the tec-elic-s2l2a model, frozen, plus a temporal
    # prior that conditions each date's side parameters on the previous date's latent.
    "tec-tt-s2l2a": {
        "kind": "temporal",
        "config": {"arch": "tec-tt-elic", "bands": 12, **_TT_ELIC_SIZES},
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {q: "tec-tt-s2l2a" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-TT on TEC-ELIC (tec-elic-s2l2a's transforms, frozen, and a temporal prior), 12 bands "
                       "in L2A order (and stacks of 6-11 of them), centred, 5 qualities, trained on WorldCereal series",
    },
    # Trained here (docs/MODELS.md, issue 17): tec-elic-s2l1c, frozen, plus the same temporal prior.
    "tec-tt-s2l1c": {
        "kind": "temporal",
        "config": {"arch": "tec-tt-elic", "bands": 13, **_TT_ELIC_SIZES},
        "normalization": "ssl4eo-s12-l1c-no-offset",
        "weights": {q: "tec-tt-s2l1c" for q in (1, 2, 3, 4, 5)},
        "trained": True,
        "description": "TEC-TT on TEC-ELIC (tec-elic-s2l1c's transforms, frozen, and a temporal prior), 13-band "
                       "S2 L1C, centred, 5 qualities, trained on WorldCereal series and OSCD pairs",
    },
    # Trained here (docs/MODELS.md, issue 18): FlexTEC's latent repacking on tec-elic-s2l2a's
    # transforms (frozen, quality 5 gains, channels ordered by their cost: the weights' config)
    # with a small transformer entropy model; quality = k.
    "tec-flextec-s2l2a": {
        "kind": "temporal",
        "config": {"arch": "tec-flextec-elic", "bands": 12, "N": 64, "M": 192, "latent_channels": 192,
                   "d_model": 128, "num_heads": 4, "layers": [2, 2, 2]},
        "normalization": "ssl4eo-s12-l2a-no-offset",
        "weights": {k: "tec-flextec-s2l2a" for k in range(1, 17)},
        "trained": True,
        "description": "FlexTEC (latent repacking, quality k = 1..16 tokens per window) on tec-elic-s2l2a's "
                       "transforms, 12 bands in L2A order (and stacks of 6-11 of them), centred; one model "
                       "for every rate, trained on WorldCereal series and OSCD pairs",
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


def describe(name: str) -> str | None:
    """The table's description of a model name, if it is one."""
    entry = MODELS.get(name)
    return entry["description"] if entry else None


__all__ = ["MODELS", "WEIGHTS_DIR", "describe", "list_models"]
