"""TEC-TT's entropy model in exact arithmetic: the same network, evaluated so that every machine
computes the same bits (`exact_math`), which makes TEC-TT streams portable.

`to_exact(entropy_model)` returns a copy whose layers are swapped for exact twins; everything
around them (windows, KV cache, one-pass encoder, decoder steps, heads) is the float model's
own code, run in float64:

    Linear      x -> row mantissas (20 bits) @ weight mantissas (20 bits, per output channel)
                   -> * 2^e * channel scale + bias    (|partial sums| < 2^53 for <= 8192 inputs)
    LayerNorm   row mantissas (14 bits) -> int64 sum and sum of squares (< 2^61) -> IEEE sqrt
    GELU        interpolated in a table of det_erf's GELU (basic operations only; error < 1e-7)
    attention   q, k mantissas (22 bits): integer scores (< 2^51) -> det_exp -> integer weights
                P (19 bits) ; values aligned to the largest exponent of the keys less 7 (25
                bits) -> P @ V (< 2^51) -> / sum P

Nothing depends on which rows share a call, so batches, window chunks, tile splits and thread
counts cannot change a result; the conversion (weight mantissas and scales) is exact arithmetic
on the float weights, so the same checkpoint gives the same exact model everywhere. Cost: float64
GEMMs (about twice float32's) and the quantisation steps.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from terracodec.kernels.integer import layer_norm_reference
from terracodec.temporal.exact_math import det_exp, pow2, row_quantise, table_gelu
from terracodec.temporal.transformer import WindowAttention

#: Version of the exact path: streams record it (`codec.coder_platform`).
EXACT_PATH = "exact-v1"
LINEAR_BITS, WEIGHT_BITS = 20, 20
NORM_BITS = 14
SCORE_BITS, PROB_BITS, VALUE_BITS, VALUE_SPREAD = 22, 19, 18, 7
EXP_DEGREE = 7  # exp's error (6e-9) well below the weights' step (2^-19)


class ExactLinear(nn.Module):
    """`nn.Linear` on integer mantissas (see the module docstring)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().to(torch.float64)
        amax = w.abs().amax(dim=1, keepdim=True)
        scale = torch.where(amax > 0, amax / float(2**WEIGHT_BITS), torch.ones_like(amax))
        self.register_buffer("weight_t", torch.round(w / scale).t().contiguous())
        self.register_buffer("scale", scale.reshape(-1))
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(w.shape[0])
        self.register_buffer("bias", bias.to(torch.float64))
        if w.shape[1] * 2.0 ** (LINEAR_BITS + WEIGHT_BITS) >= 2.0**53:
            raise ValueError(f"an exact Linear takes at most {2 ** (53 - LINEAR_BITS - WEIGHT_BITS)} inputs")

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        m, e = row_quantise(x.reshape(-1, shape[-1]), LINEAR_BITS)
        acc = torch.matmul(m, self.weight_t)  # integer-valued: exact in any order
        y = (acc * pow2(e)) * self.scale
        return (y + self.bias).reshape(*shape[:-1], -1)


class ExactLayerNorm(nn.Module):
    """`nn.LayerNorm` with integer statistics."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        (d,) = norm.normalized_shape
        if d > 1024:
            raise ValueError("an exact LayerNorm takes at most 1024 features")
        self.d, self.eps = d, float(norm.eps)
        self.register_buffer("weight", norm.weight.detach().to(torch.float64))
        self.register_buffer("bias", norm.bias.detach().to(torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm_reference(x, self.weight, self.bias, self.eps, NORM_BITS)


class ExactGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return table_gelu(x)


def aligned_values(values: Tensor, quantise: Callable[[Tensor, int], tuple[Tensor, Tensor]] = row_quantise,
                   ) -> tuple[Tensor, Tensor]:
    """Value mantissas on one exponent per (window, head): (integers [.., L, dh], 2^E_lo);
    `quantise`: `row_quantise` or a kernel computing the same bits."""
    mv, ev = quantise(values, VALUE_BITS)  # ev [.., L, 1]
    lo = ev.amax(dim=-2, keepdim=True) - VALUE_SPREAD  # [.., 1, 1]
    return torch.round(mv * pow2(ev - lo)), pow2(lo)


class ExactWindowAttention(WindowAttention):
    """`WindowAttention` whose attention is exact (its projections are `ExactLinear`s)."""

    def attend_token(self, q: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        return self._exact(q, keys, values, None)

    def attend(self, q: Tensor, keys: Tensor, values: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        b, n, d = q.shape
        out = self._exact(self.heads(q) * self.scale, keys, values, mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))

    @staticmethod
    def _exact(q: Tensor, keys: Tensor, values: Tensor, mask: Optional[Tensor]) -> Tensor:
        mq, eq = row_quantise(q, SCORE_BITS)
        mk, ek = row_quantise(keys, SCORE_BITS)
        # integer dot products, then two exact scalings by powers of two
        scores = (torch.matmul(mq, mk.transpose(-2, -1)) * pow2(eq)) * pow2(ek.transpose(-2, -1))
        if mask is not None:
            scores = scores.masked_fill(mask, -math.inf)
        top = scores.amax(dim=-1, keepdim=True)
        weights = torch.round(det_exp(scores - top, EXP_DEGREE) * float(2**PROB_BITS))
        if mask is not None:
            weights = weights.masked_fill(mask, 0.0)
        mv, unit = aligned_values(values)
        total = weights.sum(dim=-1, keepdim=True)  # integers: exact
        return (torch.matmul(weights, mv) / total) * unit


def to_exact(model: nn.Module) -> nn.Module:
    """An exact twin of a TEC-TT entropy model (a deep copy; the model is left as it is)."""
    return build_twin(model, _exact_layer, ExactWindowAttention)


def _exact_layer(child: nn.Module) -> Optional[nn.Module]:
    if isinstance(child, nn.Linear):
        return ExactLinear(child)
    if isinstance(child, nn.LayerNorm):
        return ExactLayerNorm(child)
    if isinstance(child, nn.GELU):
        return ExactGELU()
    return None


def build_twin(model: nn.Module, replace: Callable[[nn.Module], Optional[nn.Module]],
               attention: type) -> nn.Module:
    """A deep copy of `model` in float64 (its integer buffers stay integers) whose modules are
    swapped by `replace(module)` (None: kept, and its children visited) and whose
    `WindowAttention`s become `attention` (a subclass: same state, another core)."""
    with torch.inference_mode(False), torch.no_grad():
        twin = copy.deepcopy(model).cpu().eval()
        _swap(twin, replace, attention)
        twin.double()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def _swap(module: nn.Module, replace: Callable[[nn.Module], Optional[nn.Module]], attention: type) -> None:
    for name, child in list(module.named_children()):
        new = replace(child)
        if new is not None:
            setattr(module, name, new)
            continue
        if type(child) is WindowAttention:
            child.__class__ = attention
        _swap(child, replace, attention)


__all__ = ["EXACT_PATH", "aligned_values", "build_twin", "ExactGELU", "ExactLayerNorm", "ExactLinear", "ExactWindowAttention", "to_exact"]
