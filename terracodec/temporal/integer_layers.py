"""TEC-TT's entropy model on integer GEMMs: the portable path of streams recording `int8-v2`:
4-6x faster than `exact-v1` (`exact_layers`) on a CPU with int8 dot products (benchmarks/tt_speed.py).

`to_integer(entropy_model)` returns a copy whose layers are swapped for integer twins; the
glue around them (windows, KV cache, residual sums, heads' LeakyReLU) is the float model's own
code in float64, whose elementwise IEEE operations give the same bits everywhere:

    Linear      x -> int8 per row (scale amax/127) @ int8 weights (per output channel)
                   -> int32 (torch._int_mm: exact, |sum| < K * 127^2 < 2^31)
                   -> * row scale * channel scale + bias           (float64, single operations)
    LayerNorm   `exact_layers.ExactLayerNorm` (int64 statistics), fused
    MLP         fc1 -> float32 -> GELU by one lookup in a table of `det_gelu` on a 2^-10 grid
                (error < 5e-4, far below fc2's int8 step) -> fc2
    attention   q, k: 9-bit mantissas per row -> float32 batched GEMM of integers whose partial
                sums stay below 2^24 (head dim <= 64): exact in any order -> * row scales;
                softmax weights: integers from one table lookup of the score difference on a
                2^-10 grid (`prob_table`); P @ V as in `exact_layers` (float64, < 2^53)

The elementwise steps between the GEMMs run fused: numba kernels on the CPU (`integer_numba`),
Triton kernels on GPUs (`terracodec.kernels.integer`), each the same operations as its torch
reference and tested equal to it. Every row's result depends on that row only, and every reduction is over integers, so batches,
window chunks, tile splits, thread counts, CPU kernels and devices cannot change a bit. The
conversion from float weights (rounding to int8 per channel) is exact arithmetic, so the same
checkpoint gives the same integer model everywhere.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from terracodec.kernels import integer as fused_steps
from terracodec.temporal import integer_numba as fused
from terracodec.kernels.integer import quantise_rows
from terracodec.temporal.exact_layers import NORM_BITS, ExactLayerNorm, ExactWindowAttention, aligned_values, build_twin
from terracodec.temporal.exact_math import GELU_RANGE, GELU_STEP_BITS, det_exp, gelu_grid, pow2, row_quantise
from terracodec.temporal.transformer import MLP

#: Version of the integer path: streams record it (`codec.coder_platform`).
INTEGER_PATH = "int8-v2"
QMAX = 127  # int8 activations and weights: [-127, 127]
QK_BITS = 9  # query/key mantissas: head_dim * (2^9)^2 < 2^24 for head_dim <= 64
PROB_BITS = 19  # softmax weights: integers <= 2^19
GRID_BITS = 10  # score differences on a 2^-10 grid (GELU inputs: exact_math.GELU_STEP_BITS)
EXP_RANGE = 16  # exp(-16) * 2^19 < 0.5: weights of scores further below the top are 0


class IntLinear(nn.Module):
    """`nn.Linear` on int8 activations and weights (see the module docstring)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().to(torch.float64)
        amax = w.abs().amax(dim=1, keepdim=True)
        scale = torch.where(amax > 0, amax / float(QMAX), torch.ones_like(amax))
        self.register_buffer("weight_q", torch.round(w / scale).clamp(-QMAX, QMAX).t().contiguous().to(torch.int8))
        self.register_buffer("scale", scale.reshape(-1))
        bias = linear.bias.detach() if linear.bias is not None else torch.zeros(w.shape[0])
        self.register_buffer("bias", bias.to(torch.float64))
        if w.shape[1] * QMAX**2 >= 2**31:
            raise ValueError(f"an integer Linear takes at most {(2**31 - 1) // QMAX**2} inputs")

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        acc, s = self.accumulate(x.reshape(-1, shape[-1]))
        return self.output(acc, s).reshape(*shape[:-1], -1)

    def accumulate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(int32 `q(x) @ W_q`, the rows' float32 scales) of `x [M, K]`."""
        if use_cpu_kernels(x):
            q, s = fused.quantise_rows(x)
        else:
            q, s = quantise_rows(x.to(torch.float32))
        return int_matmul(q, self.weight_q), s

    def output(self, acc: Tensor, s: Tensor) -> Tensor:
        """float64 `(acc * row scale) * channel scale + bias`."""
        if use_cpu_kernels(acc):
            return fused.requantise(acc, s, self.scale, self.bias)
        return (acc.to(torch.float64) * s.to(torch.float64)) * self.scale + self.bias


class IntLayerNorm(ExactLayerNorm):
    """`exact_layers.ExactLayerNorm` (int64 statistics), its steps fused where a kernel runs."""

    def forward(self, x: Tensor) -> Tensor:
        norm = fused.layer_norm if use_cpu_kernels(x) else fused_steps.layer_norm
        return norm(x.to(torch.float64), self.weight, self.bias, self.eps, NORM_BITS)


class IntMLP(nn.Module):
    """`fc2(gelu(fc1(x)))`, the 4d-wide hidden layer in float32 (half the memory traffic)."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.fc1, self.fc2 = IntLinear(mlp.fc1), IntLinear(mlp.fc2)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        acc, s = self.fc1.accumulate(x.reshape(-1, shape[-1]))
        step = fused.mlp_hidden if use_cpu_kernels(acc) else fused_steps.mlp_hidden
        q, s2 = step(acc, s, self.fc1.scale.to(torch.float32), self.fc1.bias.to(torch.float32),
                     gelu_table32().to(acc.device), GELU_RANGE, GELU_RANGE, 2**GELU_STEP_BITS)
        return self.fc2.output(int_matmul(q, self.fc2.weight_q), s2).reshape(*shape[:-1], -1)


def int_matmul(a: Tensor, b: Tensor) -> Tensor:
    """int8 `[M, K] @ [K, N]` -> int32, exactly (any back-end: the sums are integers)."""
    if a.shape[0] == 0:
        return torch.zeros((0, b.shape[1]), dtype=torch.int32)
    if a.device.type == "cuda" and (a.shape[0] <= 16 or a.shape[1] % 8 or b.shape[1] % 8):
        # cuBLASLt's int8 GEMM needs M > 16 and K, N multiples of 8: float64 is exact here too
        return torch.matmul(a.to(torch.float64), b.to(torch.float64)).to(torch.int32)
    return torch._int_mm(a, b)


_TABLES: dict[str, Tensor] = {}
#: The fused numba kernels on CPU tensors (`integer_kernels`; the same bits as the torch form).
CPU_KERNELS = {"enabled": True}


def use_cpu_kernels(x: Tensor) -> bool:
    return CPU_KERNELS["enabled"] and x.device.type == "cpu"


def prob_table() -> Tensor:
    """round(exp(-i / 2^GRID_BITS) * 2^PROB_BITS) for i = 0 .. EXP_RANGE * 2^GRID_BITS."""
    if "prob" not in _TABLES:
        i = torch.arange(EXP_RANGE * 2**GRID_BITS + 1, dtype=torch.float64)
        _TABLES["prob"] = torch.round(det_exp(-i * 2.0**-GRID_BITS) * float(2**PROB_BITS))
    return _TABLES["prob"]


def gelu_table32() -> Tensor:
    """`exact_math.gelu_grid` (det_gelu on the 2^-GELU_STEP_BITS grid) in float32."""
    if "gelu32" not in _TABLES:
        _TABLES["gelu32"] = gelu_grid().to(torch.float32)
    return _TABLES["gelu32"]


class IntWindowAttention(ExactWindowAttention):
    """`WindowAttention` with integer scores and weights (its projections are `IntLinear`s):
    `exact_layers.ExactWindowAttention` with the integer attention core."""

    @staticmethod
    def _exact(q: Tensor, keys: Tensor, values: Tensor, mask: Optional[Tensor]) -> Tensor:
        if q.shape[-1] > 64:
            raise ValueError("integer attention takes heads of at most 64 channels")
        mq, sq = _mantissas32(q)
        mk, sk = _memo(keys, "_tec_keys", _mantissas32)
        # integers below 2^24 in float32: exact in any summation order; then two exact scalings
        scores = (torch.matmul(mq, mk.transpose(-2, -1)) * sq) * sk.transpose(-2, -1)
        if mask is not None:
            scores = scores.masked_fill(mask, -math.inf)
        weights, total = softmax_integers(scores)
        mv, unit = _memo(values, "_tec_values", lambda v: aligned_values(v, _row_quantise))
        return (torch.matmul(weights, mv) / total) * unit


def softmax_integers(scores: Tensor) -> tuple[Tensor, Tensor]:
    """(integer weights, their row sums) of float32 scores: `prob_table` at the rounded
    distance below each row's top on the 2^-GRID_BITS grid (masked scores are -inf: weight 0)."""
    table = prob_table().to(scores.device)
    if use_cpu_kernels(scores):
        return fused.softmax_weights(scores, table, 2**GRID_BITS)
    return fused_steps.softmax_integers(scores, table, 2**GRID_BITS)


def _row_quantise(x: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    if use_cpu_kernels(x):
        return fused.row_mantissas(x.to(torch.float64), bits)
    return row_quantise(x, bits)


def _mantissas32(x: Tensor) -> tuple[Tensor, Tensor]:
    """(mantissas of QK_BITS bits per row as float32, 2^e as float32 `[.., 1]`)."""
    m, e = _row_quantise(x, QK_BITS)
    return m.to(torch.float32), pow2(e).to(torch.float32)  # |e| < 126 for any sane activation


def _memo(x: Tensor, name: str, fn):  # type: ignore[no-untyped-def]
    """`fn(x)`, kept on the tensor object `x` itself: a frame's memory keys/values are quantised
    once, not at each of the 16 decoder steps (the cache holds the same tensor objects all frame
    long and never writes them; the self-attention cache, which is written, passes a fresh view
    each time). The version counter guards against in-place writes where torch keeps one."""
    version = -1 if x.is_inference() else x._version
    kept = getattr(x, name, None)
    if kept is not None and kept[0] == version:
        return kept[1]
    result = fn(x)
    setattr(x, name, (version, result))
    return result


def to_integer(model: nn.Module) -> nn.Module:
    """The integer twin of a TEC-TT entropy model (a deep copy; the model is left as it is)."""
    return build_twin(model, _integer_layer, IntWindowAttention)


def _integer_layer(child: nn.Module) -> Optional[nn.Module]:
    if isinstance(child, nn.Linear):
        return IntLinear(child)
    if isinstance(child, nn.LayerNorm):
        return IntLayerNorm(child)
    if type(child) is MLP:
        return IntMLP(child)
    return None


__all__ = ["INTEGER_PATH", "IntLinear", "IntWindowAttention", "IntLayerNorm", "IntMLP", "gelu_table32", "int_matmul", "quantise_rows", "to_integer"]
