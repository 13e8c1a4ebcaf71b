"""Windowed transformer of TEC-TT: pre-norm blocks with self- and cross-attention, and a
key/value cache for autoregressive decoding.

The block is VCT's (Mentzer et al., 2022) as TerraCodec v1 implements it: each block runs
`self-attention -> MLP -> "cross"-attention -> MLP`, every sub-layer pre-normed
(`LayerNorm(eps=1e-6)`) and residual. In the encoders (no memory) the second attention is a
second self-attention over the normalised features; in the decoder it attends to the joint
encoder's output, unnormalised, and the first attention is causal. Module names
(`norm1a`, `self_attention.q`, `mlp1.fc1`, `layers.encoder_layer_0`, ...) and the decoder's
persistent `look_ahead_mask` buffer reproduce TerraCodec v1's state-dict keys.

Autoregressive decoding (`decode`): a window's 16 tokens are produced one at a time, so the
decoder only ever needs the new token's row. Each layer keeps the keys and values of the tokens
seen so far (`DecoderCache`) and the keys and values of the memory, which are computed once per
frame. Token `t` then costs one row through every layer instead of a full 16-token pass; the
result equals the masked full pass (`forward`) up to float rounding. The encoder knows every
token in advance and feeds all 16 at once through the same `decode` (one GEMM per weight
instead of 16); the attention still runs token by token with exactly the calls that the
one-token decoder makes, so both sides compute the same numbers.

Determinism: coding needs the decoder to reproduce the encoder's entropy parameters bit for bit,
so every computation here is row-local (a token's result never depends on which other windows
or tokens share the batch): Linear, LayerNorm, GELU, softmax, and per-token attention
(`WindowAttention.attend_token`). BLAS picks other kernels for matrices with very few rows, so
the decoder's batch is padded to at least `MIN_ROWS` rows (`TemporalEntropyModel.
start_decoding`; see `terracodec.temporal.coding`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Row count below which CPU GEMM back-ends switch kernels (and summation orders).
MIN_ROWS = 16


_INIT = {"skip": False}


@contextmanager
def skip_init() -> Iterator[None]:
    """Build without drawing TerraCodec v1's initial weights (they are about to be replaced by a
    checkpoint's): saves most of the construction time of the published size."""
    old = _INIT["skip"]
    _INIT["skip"] = True
    try:
        yield
    finally:
        _INIT["skip"] = old


def initializing() -> bool:
    return not _INIT["skip"]


@torch.no_grad()
def _trunc_normal_(layer: nn.Linear) -> nn.Linear:
    """TerraCodec v1's init for attention/MLP layers: N(0, 0.02) truncated at 2 sigma (redrawn
    where outside, much faster than `nn.init.trunc_normal_` on the published size), bias 0.01."""
    if not initializing():
        return layer
    w = layer.weight.normal_(std=0.02)
    layer.bias.fill_(0.01)
    while not w.is_meta:
        bad = w.abs() > 0.04
        if not bool(bad.any()):
            break
        w.copy_(torch.where(bad, torch.empty_like(w).normal_(std=0.02), w))
    return layer


def pad_rows(x: Tensor, rows: int = MIN_ROWS) -> Tensor:
    """`x` [M, ...] with zero rows appended up to `rows` (unchanged when M >= rows)."""
    if x.shape[0] >= rows:
        return x
    return torch.cat([x, x.new_zeros((rows - x.shape[0],) + tuple(x.shape[1:]))])


class WindowAttention(nn.Module):
    """Multi-head attention inside windows: `query [B, Lq, d]` attends to `memory [B, Lk, d]`."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.d_model, self.num_heads = d_model, num_heads
        self.head_dim = d_model // num_heads
        self.scale = self.head_dim**-0.5
        self.dropout = dropout
        self.q = _trunc_normal_(nn.Linear(d_model, d_model))
        self.k = _trunc_normal_(nn.Linear(d_model, d_model))
        self.v = _trunc_normal_(nn.Linear(d_model, d_model))
        self.proj = _trunc_normal_(nn.Linear(d_model, d_model))

    def heads(self, x: Tensor) -> Tensor:
        """`[B, L, d] -> [B, h, L, d/h]`."""
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def keys_values(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Projected keys and values of `memory`, split into heads (contiguous: batched matmuls
        over windows and heads then need no copy)."""
        return self.heads(self.k(memory)).contiguous(), self.heads(self.v(memory)).contiguous()

    def attend_token(self, q: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        """One token per window: scaled head-split query `[B, h, 1, d/h]` (contiguous) against
        keys/values `[B, h, L, d/h]` -> `[B, h, 1, d/h]`. Decoding always attends through this
        call, one token at a time, so that a token's result is the same whether it is decoded
        alone or with the window's other tokens (the batched GEMM of a 16-query block sums in
        another order than 16 one-query calls)."""
        weights = torch.softmax(torch.matmul(q, keys.transpose(-2, -1)), dim=-1)
        return torch.matmul(weights, values)

    def attend(self, q: Tensor, keys: Tensor, values: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Projected queries `[B, Lq, d]` against head-split keys/values `[B, h, Lk, d/h]`."""
        b, n, d = q.shape
        scores = torch.matmul(self.heads(q) * self.scale, keys.transpose(-2, -1))
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if self.training and self.dropout:
            weights = F.dropout(weights, self.dropout)
        out = torch.matmul(weights, values).transpose(1, 2).reshape(b, n, d)
        out = self.proj(out)
        if self.training and self.dropout:
            out = F.dropout(out, self.dropout)
        return out

    def forward(
        self, query: Tensor, memory: Optional[Tensor] = None, mask: Optional[Tensor] = None
    ) -> Tensor:
        """Attention of `query` to `memory` (to itself when None)."""
        keys, values = self.keys_values(query if memory is None else memory)
        return self.attend(self.q(query), keys, values, mask)


class MLP(nn.Module):
    """`fc2(gelu(fc1(x)))` with hidden width `hidden`."""

    def __init__(self, d_model: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = _trunc_normal_(nn.Linear(d_model, hidden))
        self.fc2 = _trunc_normal_(nn.Linear(hidden, d_model))
        self.act = nn.GELU()  # a module (no state): the exact twin swaps it (`exact_layers`)
        self.dropout = dropout

    def forward(self, x: Tensor) -> Tensor:
        x = self.act(self.fc1(x))
        if self.training and self.dropout:
            x = F.dropout(x, self.dropout)
        x = self.fc2(x)
        if self.training and self.dropout:
            x = F.dropout(x, self.dropout)
        return x


@dataclass
class LayerCache:
    """One decoder layer's cache: self-attention keys/values so far, memory keys/values."""

    keys: Tensor  # [B, h, L, d/h], filled up to the current token
    values: Tensor
    memory_keys: Tensor  # [B, h, Lm, d/h], contiguous
    memory_values: Tensor


@dataclass
class DecoderCache:
    """Per-layer caches of an autoregressive decode and the number of tokens fed so far."""

    layers: list[LayerCache] = field(default_factory=list)
    length: int = 0


class TransformerBlock(nn.Module):
    """Pre-norm block: attention, MLP, second attention (cross in the decoder), MLP."""

    look_ahead_mask: Optional[Tensor]

    def __init__(
        self, d_model: int, num_heads: int, mlp_dim: int, seq_len: int = 0,
        is_decoder: bool = False, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        if is_decoder:
            # Persistent: TerraCodec v1 checkpoints carry it.
            mask = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), diagonal=1)
            self.register_buffer("look_ahead_mask", mask)
        else:
            self.look_ahead_mask = None
        self.norm1a = nn.LayerNorm(d_model, eps=1e-6)
        self.norm1b = nn.LayerNorm(d_model, eps=1e-6)
        self.norm2a = nn.LayerNorm(d_model, eps=1e-6)
        self.norm2b = nn.LayerNorm(d_model, eps=1e-6)
        self.self_attention = WindowAttention(d_model, num_heads, dropout)
        self.cross_attention = WindowAttention(d_model, num_heads, dropout)
        self.mlp1 = MLP(d_model, mlp_dim, dropout)
        self.mlp2 = MLP(d_model, mlp_dim, dropout)

    def forward(self, x: Tensor, memory: Optional[Tensor] = None) -> Tensor:
        """Full-sequence pass `[B, L, d]` (causal in the decoder, which needs `memory`)."""
        if self.is_decoder and memory is None:
            raise ValueError("the decoder needs the encoder output")
        x = x + self.self_attention(self.norm1a(x), None, self.look_ahead_mask)
        x = x + self.mlp1(self.norm1b(x))
        x = x + self.cross_attention(self.norm2a(x), memory)
        return x + self.mlp2(self.norm2b(x))

    def memory_keys_values(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """The cross-attention's keys and values of `memory` `[B, Lm, d]` (once per frame)."""
        return self.cross_attention.keys_values(memory)

    def start(self, keys: Tensor, values: Tensor, length: int) -> LayerCache:
        """Empty self-attention cache for `length` tokens of the windows of the memory keys/values
        `[B, h, Lm, d/h]` (`memory_keys_values`)."""
        attn = self.self_attention
        shape = (keys.shape[0], attn.num_heads, length, attn.head_dim)
        return LayerCache(keys.new_zeros(shape), keys.new_zeros(shape), keys, values)

    def decode(self, x: Tensor, cache: LayerCache, t: int) -> Tensor:
        """Tokens `t .. t + n - 1` of every window, `x [B, n, d]`, given tokens `< t` in the
        cache (n = 1 when decoding, 16 when the encoder feeds a whole window). Equal, bit for
        bit, to n calls with one token each (row-local operations, per-token attention)."""
        b, n, d = x.shape
        attn, cross = self.self_attention, self.cross_attention
        h = self.norm1a(x)
        cache.keys[:, :, t : t + n] = attn.heads(attn.k(h))
        cache.values[:, :, t : t + n] = attn.heads(attn.v(h))
        q = attn.heads(attn.q(h)) * attn.scale
        out = [attn.attend_token(q[:, :, i : i + 1].contiguous(), cache.keys[:, :, : t + i + 1],
                                 cache.values[:, :, : t + i + 1]) for i in range(n)]
        x = x + attn.proj(torch.cat(out, 2).transpose(1, 2).reshape(b, n, d))
        x = x + self.mlp1(self.norm1b(x))
        q = cross.heads(cross.q(self.norm2a(x))) * cross.scale
        out = [cross.attend_token(q[:, :, i : i + 1].contiguous(), cache.memory_keys, cache.memory_values)
               for i in range(n)]
        x = x + cross.proj(torch.cat(out, 2).transpose(1, 2).reshape(b, n, d))
        return x + self.mlp2(self.norm2b(x))


class Transformer(nn.Module):
    """A stack of `TransformerBlock`s named `layers.encoder_layer_{i}` (TerraCodec v1's keys)."""

    def __init__(
        self, num_layers: int, d_model: int, num_heads: int, mlp_expansion: int = 4,
        seq_len: int = 0, is_decoder: bool = False, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.seq_len = seq_len
        self.layers = nn.ModuleDict(
            {
                f"encoder_layer_{i}": TransformerBlock(
                    d_model, num_heads, d_model * mlp_expansion, seq_len, is_decoder, dropout
                )
                for i in range(num_layers)
            }
        )

    def forward(self, x: Tensor, memory: Optional[Tensor] = None) -> Tensor:
        for layer in self.layers.values():
            x = layer(x, memory)
        return x

    def memory_keys_values(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Every layer's cross-attention keys and values of `memory` `[B, Lm, d]`."""
        if not self.is_decoder:
            raise ValueError("only the decoder attends to a memory")
        return [layer.memory_keys_values(memory) for layer in self.layers.values()]

    def start(self, keys_values: list[tuple[Tensor, Tensor]]) -> DecoderCache:
        """Cache for decoding the windows of `keys_values` (`memory_keys_values`, one entry per
        layer, `[B, h, Lm, d/h]`), `seq_len` tokens each."""
        if not self.is_decoder:
            raise ValueError("only the decoder decodes step by step")
        layers = list(self.layers.values())
        if len(keys_values) != len(layers):
            raise ValueError(f"keys/values for {len(keys_values)} layers, the decoder has {len(layers)}")
        return DecoderCache([layer.start(k, v, self.seq_len) for layer, (k, v) in zip(layers, keys_values)])

    def decode(self, x: Tensor, cache: DecoderCache) -> Tensor:
        """Next tokens `x [B, n, d]` -> their outputs `[B, n, d]`; advances the cache by n."""
        t, n = cache.length, x.shape[1]
        if t + n > self.seq_len:
            raise ValueError(f"the decoder takes {self.seq_len} tokens per window")
        for layer, layer_cache in zip(self.layers.values(), cache.layers):
            x = layer.decode(x, layer_cache, t)
        cache.length = t + n
        return x
