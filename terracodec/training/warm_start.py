"""Warm start: initialise a model from trained weights of the same architecture.

Why: training from scratch on two CPU cores takes most of an hour per model, while a model that
differs only in its band set or in having per-quality gains learns far faster from a trained
one. Tensors of equal shape are copied; band-dependent tensors (the first analysis and the last
synthesis layer) are copied band by band, matched by S2 band name (a band the source lacks, such
as B10 for a 13-band model started from a 12-band one, starts at zero there: the target first
codes the shared bands exactly as the source does and predicts the new band's mean); the gains of a variable-rate
target start from the source's single lambda (`sqrt(lambda_q / lambda_source)`), or, from a
variable-rate source with other lambdas, from the gains of the source level nearest in log-lambda
scaled by `sqrt(lambda_q / lambda_nearest)` (moving the quality levels to another lambda range).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from terracodec.errors import InputError
from terracodec.models.base import ImageCodec

if TYPE_CHECKING:
    from terracodec.normalization import Normalization


@torch.no_grad()
def warm_start(target: ImageCodec, source: ImageCodec) -> list[str]:
    """Copy `source`'s weights into `target` in place; returns the names left at their init."""
    if source.arch != target.arch:
        raise InputError(f"cannot warm-start a {target.arch} from a {source.arch}")
    src_bands = list(source.config.get("band_names") or [])
    tgt_bands = list(target.config.get("band_names") or [])
    band_index = None
    if src_bands != tgt_bands:
        shared = [b for b in tgt_bands if b in src_bands]
        if not src_bands or not tgt_bands or len(shared) * 2 <= len(tgt_bands):
            raise InputError(f"the warm-start weights share too few bands ({','.join(shared) or 'none named'})")
        band_index = torch.tensor([src_bands.index(b) if b in src_bands else -1 for b in tgt_bands])

    src = source.state_dict()
    untouched = []
    for name, tensor in target.state_dict().items():
        value = src.get(name)
        if value is not None and band_index is not None and value.shape != tensor.shape:
            value = _select_bands(value, tensor.shape, len(src_bands), band_index)
        if value is None or value.shape != tensor.shape:
            untouched.append(name)
            continue
        tensor.copy_(value)

    lambdas = target.config.get("lambdas")
    if lambdas and "lambda" in source.config and hasattr(target, "gain"):
        g = torch.tensor([(float(v) / float(source.config["lambda"])) ** 0.5 for v in lambdas])
        target.gain.copy_(g[:, None].expand_as(target.gain))
        target.inverse_gain.copy_(1.0 / target.gain)
    elif lambdas and source.config.get("lambdas") and hasattr(target, "gain"):
        _remap_gains(target, source, [float(v) for v in lambdas], [float(v) for v in source.config["lambdas"]])
    return untouched


def _remap_gains(target: ImageCodec, source: ImageCodec, new: list[float], old: list[float]) -> None:
    """Level q of the target: the source level j nearest in log-lambda, gains scaled by
    sqrt(new[q] / old[j]) (the rate-distortion optimal scale moves as sqrt(lambda))."""
    if source.gain.shape[1:] != target.gain.shape[1:]:
        return
    for q, lam in enumerate(new):
        j = min(range(len(old)), key=lambda i: abs(math.log(old[i] / lam)))
        f = math.sqrt(lam / old[j])
        target.gain[q] = source.gain[j] * f
        target.inverse_gain[q] = source.inverse_gain[j] / f


def _select_bands(value: torch.Tensor, shape: torch.Size, src_count: int, index: torch.Tensor):
    """`value` restricted to the target's bands along its one band axis (a band at index -1 is
    zero there), or None."""
    axes = [d for d in range(value.dim()) if value.shape[d] == src_count and shape[d] == len(index)]
    if len(axes) != 1:
        return None
    out = value.index_select(axes[0], index.clamp(min=0))
    fresh = (index < 0).nonzero().flatten()
    if len(fresh):
        out.index_fill_(axes[0], fresh, 0.0)
    return out


def inherit_centring(target: ImageCodec, source: ImageCodec,
                     default: "Normalization") -> tuple["Normalization", list[float | None]]:
    """A centred source's normalisation on the bands both models have (`default`'s on the others),
    written into `target`'s config, and the source's centre on those bands (None on the others,
    for `merged_centre`): the copied transforms then see their inputs exactly as before."""
    from terracodec.normalization import NO_OFFSET_SUFFIX, Normalization

    src = Normalization.from_config(source.config["normalization"])
    names, tgt = list(source.config["band_names"]), list(target.config["band_names"])
    pick = [names.index(b) if b in names else None for b in tgt]
    mean = tuple(default.mean[i] if j is None else src.mean[j] for i, j in enumerate(pick))
    std = tuple(default.std[i] if j is None else src.std[j] for i, j in enumerate(pick))
    stem = src.name.removesuffix(NO_OFFSET_SUFFIX)
    extra = "+".join(b for b, j in zip(tgt, pick) if j is None)
    norm = Normalization(mean, std, f"{stem}+{extra.lower()}{NO_OFFSET_SUFFIX if src.name.endswith(NO_OFFSET_SUFFIX) else ''}")
    target.config["normalization"] = norm.to_config()
    return norm, [None if j is None else float(source.config["centre"][j]) for j in pick]


def merged_centre(measured: list[float], inherited: list[float | None] | None) -> list[float]:
    """A model's centre: `inherit_centring`'s on the shared bands, the training data's
    (`measured`) on the others (all of them without an inherited centre)."""
    inherited = inherited or [None] * len(measured)
    return [round(m if c is None else c, 4) for m, c in zip(measured, inherited)]
