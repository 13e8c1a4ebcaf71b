r"""TEC-TT's temporal entropy model: a transformer that predicts a Gaussian (mean, scale) for
every latent element from the two previous frames' latents and the current frame's already
coded tokens (VCT, Mentzer et al. 2022, as TerraCodec v1 implements it).

Notes on the published model (TerraCodec v1, `terracodec.temporaltransformer`):

* Latent `y` of the current frame: `[B, C=192, H/16, W/16]`, cut into 4x4 windows of 16 tokens
  (C channels each). Context: each of the `context_len = 2` previous quantised latents, cut
  into 8x8 windows with stride 4 centred on the current windows (`windows.py`).
* Per-frame encoder ("T_sep", 6 layers): `y_prev / 35 -> Linear(C, d) -> LayerNorm ->
  + learned position (64 tokens) -> encoder`; run once per frame and kept for the next two
  frames (`encode_context`).
* Joint encoder (4 layers): the two per-frame encodings concatenated (128 tokens, oldest first)
  `+ learned position (128) -> encoder` = the memory `z_joint`. With fewer previous frames
  than `context_len`, the oldest one is repeated. Before the first frame, a learned per-channel
  constant latent (`TemporalCodec._temporal_pad_token_maker`) stands in: its windows are all
  equal, so they are encoded once and broadcast.
* Decoder (5 layers, causal, cross-attention to `z_joint`): input tokens shifted right by one
  with a learned start symbol (`learned_zero.sym`), `/35 -> Linear(C, d) -> LayerNorm` (the
  same LayerNorm as the encoders) `+ learned position (16)`. Output `z_cur [.., 16, d]`: the
  features that the dequantiser feeds to synthesis, and the input of the heads.
* Heads: `mean_head`, `scale_head` = `Linear(d, d) -> LeakyReLU(0.01) -> Linear(d, d) ->
  LeakyReLU -> Linear(d, C)`. The scale head's output is a raw value, mapped to a scale by the
  "very softplus" of the location-scale conditional (`LocationScaleGaussianConditional`:
  100 mean offsets x 256 log-spaced scales in [0.01, 256], tail mass 2^-8).
* Which frames are the context: frame 0 sees the constant latent (twice), frame 1 sees
  `[y0, y0]`, frame t >= 2 sees `[y_{t-2}, y_{t-1}]` (quantised latents, as decoded).
* Parameter quantisation (`LocationScaleGaussianConditional`): the mean splits into an integer
  centre and one of 100 offsets, the scale into one of 256 log-spaced rows; the symbol is
  `round(y - centre)`. The reference rounds the scale index for its rate estimate but truncates
  both indexes when coding; we take the nearest grid point for both, in the estimate and in
  coding (so our bits are those we estimate, and fewer than the reference's coder spends).
* Dequantiser (`TemporalCodec._dequantizer`): `y_hat + ResBlock(LeakyReLU(Conv1x1(z_cur)))`
  is what the synthesis transform decodes, so the decoder features must be decoded too.
* Published size: d = 768, 16 heads, MLP 4d, 6 + 4 + 5 layers (~225 M parameters in all).
* Coding (reference): 16 autoregressive steps per window, each re-running the whole decoder and
  both heads on all 16 tokens, and re-sending the 25600-row table to the coder. Ours:
  `terracodec.temporal.coding` (KV cache, one new row per step, per-step sub-tables).

Training uses the teacher-forced full pass (`forward`), exactly as the reference.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from terracodec.entropy.location_scale import LocationScaleGaussianConditional
from terracodec.temporal.transformer import MIN_ROWS, DecoderCache, Transformer, pad_rows
from terracodec.temporal.repacking import RepackingTokenizer
from terracodec.temporal.windows import WindowTokenizer

LATENT_SCALE = 35.0  # latents are divided by this before embedding (TerraCodec v1)


def _round_st(x: Tensor) -> Tensor:
    return x + (torch.round(x) - x).detach()


def _embedding(num_channels: int, d_model: int) -> nn.Linear:
    layer = nn.Linear(num_channels, d_model)
    bound = num_channels**-0.5
    nn.init.uniform_(layer.weight, -bound, bound)
    nn.init.uniform_(layer.bias, -bound, bound)
    return layer


class StartSymbol(nn.Module):
    """Learned token that precedes a window's first token (parameter `sym`)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.sym = nn.Parameter(torch.empty(num_channels).uniform_(-3.0, 3.0))

    def forward(self, tokens: Tensor) -> Tensor:
        """`[B, L, C]` shifted right by one token, the start symbol in front."""
        start = self.sym.view(1, 1, -1).expand(tokens.shape[0], 1, -1)
        return torch.cat([start, tokens[:, :-1]], dim=1)


class LearnedPosition(nn.Module):
    """Additive learned position embedding `_pos [1, L, d]`."""

    def __init__(self, seq_len: int, d_model: int) -> None:
        super().__init__()
        self._pos = nn.Parameter(torch.empty(1, seq_len, d_model).normal_(std=0.02))

    def forward(self, x: Tensor, start: int = 0) -> Tensor:
        return x + self._pos[:, start : start + x.shape[1]]


def _head(d_model: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_model, d_model), nn.LeakyReLU(), nn.Linear(d_model, d_model), nn.LeakyReLU(),
        nn.Linear(d_model, out),
    )


class TemporalEntropyModel(nn.Module):
    """The entropy model; module names follow TerraCodec v1 (`TerraCodecTTEntropyModel`)."""

    def __init__(
        self,
        num_channels: int = 192,
        context_len: int = 2,
        window_context: int = 8,
        window_current: int = 4,
        layers: Sequence[int] = (6, 4, 5),
        d_model: int = 768,
        num_heads: int = 16,
        mlp_expansion: int = 4,
        dropout: float = 0.0,
        latent_repacking: bool = False,
    ) -> None:
        super().__init__()
        # FlexTEC (`repacking`): token j carries channel slice j; streams may stop after k tokens
        self.latent_repacking = latent_repacking
        tokenizer = RepackingTokenizer if latent_repacking else WindowTokenizer
        self.tokenizer = tokenizer(window_context, window_current)
        if context_len < 1:
            raise ValueError("context_len must be at least 1")
        n_sep, n_joint, n_dec = (int(n) for n in layers)
        self.num_channels, self.context_len, self.d_model = num_channels, context_len, d_model
        self.window_context, self.window_current = window_context, window_current
        self.seq_len_enc, self.seq_len_dec = window_context**2, window_current**2

        self.bottleneck = LocationScaleGaussianConditional(100, 256, min_scale=0.01, tail_mass=2**-8)
        self.encoder_sep = Transformer(n_sep, d_model, num_heads, mlp_expansion, dropout=dropout)
        self.encoder_joint = Transformer(n_joint, d_model, num_heads, mlp_expansion, dropout=dropout)
        self.learned_zero = StartSymbol(num_channels)
        self.enc_position_sep = LearnedPosition(self.seq_len_enc, d_model)
        self.enc_position_joint = LearnedPosition(self.seq_len_enc * context_len, d_model)
        self.dec_position = LearnedPosition(self.seq_len_dec, d_model)
        self.post_embedding_layernorm = nn.LayerNorm(d_model, eps=1e-6)
        self.encoder_embedding = _embedding(num_channels, d_model)
        self.decoder_embedding = _embedding(num_channels, d_model)
        self.decoder = Transformer(
            n_dec, d_model, num_heads, mlp_expansion, self.seq_len_dec, True, dropout
        )
        self.mean_head = _head(d_model, num_channels)
        self.scale_head = _head(d_model, num_channels)
        if latent_repacking:  # FlexTEC's training stand-ins for tokens >= k (never used in coding)
            self.mask_token = nn.Parameter(torch.empty(num_channels).uniform_(-1.0, 1.0))
            self.z_cur_mask_token = nn.Parameter(torch.empty(d_model).uniform_(-1.0, 1.0))

    # ------------------------------------------------------------------ context
    def encode_context(self, latent_q: Tensor) -> Tensor:
        """Per-frame encoding of a quantised latent `[B, C, H, W]` -> `[B * n, 64, d]`."""
        return self.encode_windows(self.tokenizer.context(latent_q))

    def encode_windows(self, windows: Tensor) -> Tensor:
        """Per-frame encoding of context windows `[B', 64, C]` (`tokenizer.context`) -> `[B', 64, d]`
        (windows are independent: chunks of them may be encoded separately)."""
        h = self.post_embedding_layernorm(self.encoder_embedding(windows / LATENT_SCALE))
        return self.encoder_sep(self.enc_position_sep(h))

    def joint_context(self, encoded: Sequence[Tensor]) -> Tensor:
        """Memory `z_joint` from the per-frame encodings (oldest first, 1..context_len)."""
        if not 1 <= len(encoded) <= self.context_len:
            raise ValueError(f"need 1 to {self.context_len} previous frames, got {len(encoded)}")
        seqs = [encoded[0]] * (self.context_len - len(encoded)) + list(encoded)
        return self.encoder_joint(self.enc_position_joint(torch.cat(seqs, dim=1)))

    # ------------------------------------------------------------------ prediction
    def embed_tokens(self, tokens: Tensor, start: int = 0) -> Tensor:
        """Decoder input embedding of (shifted) tokens `[B, L, C]` at positions `start..`."""
        h = self.post_embedding_layernorm(self.decoder_embedding(tokens / LATENT_SCALE))
        return self.dec_position(h, start)

    def heads(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(means, raw scales) of decoder features `[..., d]`."""
        return self.mean_head(features), self.scale_head(features)

    def predict(self, tokens_q: Tensor, memory: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher-forced full pass: (means, raw scales, features) of quantised windows
        `[B', 16, C]` given the memory `[B', Lm, d]` (causal: token t sees tokens < t)."""
        features = self.decoder(self.embed_tokens(self.learned_zero(tokens_q)), memory)
        means, scales = self.heads(features)
        return means, scales, features

    def forward(self, y: Tensor, memory: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(y_hat `[B, C, H, W]`, likelihoods `[B', 16, C]`, features `[B, d, H, W]`).

        Training: straight-through rounding, noisy likelihoods (the reference's relaxation);
        eval: `y_hat` is what coding reproduces and the likelihoods are those of the coded
        table cells (`LocationScaleGaussianConditional`)."""
        h, w = y.shape[-2:]
        windows = self.tokenizer.current(y)
        memory = self.match_memory(memory, windows.shape[0])
        means, scales, features = self.predict(_round_st(windows), memory)
        y_hat, likelihoods = self.bottleneck(windows, scales, means)
        return (
            self.tokenizer.merge(y_hat, h, w),
            likelihoods,
            self.tokenizer.merge(features, h, w),
        )

    @staticmethod
    def match_memory(memory: Tensor, windows: int) -> Tensor:
        """A memory computed once for all windows (constant context) broadcast to `windows`."""
        if memory.shape[0] == windows:
            return memory
        if memory.shape[0] != 1:
            raise ValueError(f"memory for {memory.shape[0]} windows, latent has {windows}")
        return memory.expand(windows, -1, -1)

    # ------------------------------------------------------------------ autoregression
    def memory_keys_values(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """The decoder's cross-attention keys/values of a memory `[B', Lm, d]`, per layer."""
        return self.decoder.memory_keys_values(memory)

    def start_cache(
        self, keys_values: list[tuple[Tensor, Tensor]], windows: int, pad: bool = True
    ) -> DecoderCache:
        """KV cache for decoding `windows` windows from their memory keys/values (one shared
        window is broadcast). For one token at a time (`step`) the batch is padded to `MIN_ROWS`
        rows so that every GEMM runs the same kernel whatever the number of windows
        (determinism); `predict_cached` feeds 16 rows per window and needs no padding."""
        rows = max(windows, MIN_ROWS) if pad else windows
        padded = []
        for k, v in keys_values:
            if k.shape[0] == 1 and windows != 1:
                k, v = k.expand(windows, -1, -1, -1), v.expand(windows, -1, -1, -1)
            elif k.shape[0] != windows:
                raise ValueError(f"memory for {k.shape[0]} windows, latent has {windows}")
            padded.append((pad_rows(k, rows).contiguous(), pad_rows(v, rows).contiguous()))
        return self.decoder.start(padded)

    def start_decoding(self, memory: Tensor, windows: int) -> DecoderCache:
        """`start_cache` from the memory `[1 or windows, Lm, d]` itself."""
        return self.start_cache(self.memory_keys_values(memory), windows)

    def step(self, previous: Optional[Tensor], cache: DecoderCache) -> tuple[Tensor, Tensor, Tensor]:
        """(means, raw scales, features) of token `t = cache.length` of every window, given token
        `t - 1` (`previous [B', C]`, quantised; None for t = 0). Rows beyond B' are padding."""
        rows = cache.layers[0].keys.shape[0]
        t = cache.length
        if previous is None:
            token = self.learned_zero.sym.view(1, 1, -1).expand(rows, 1, -1)
        else:
            token = previous.new_zeros((rows, 1, previous.shape[-1]))
            token[: previous.shape[0], 0] = previous
        features = self.decoder.decode(self.embed_tokens(token, t), cache)[:, 0]
        means, scales = self.heads(features)
        return means, scales, features

    def predict_cached(self, tokens_q: Tensor, cache: DecoderCache) -> tuple[Tensor, Tensor, Tensor]:
        """(means, raw scales, features) `[B', 16, .]` of quantised windows `tokens_q [B', 16, C]`
        known in advance (the encoder's case), from a fresh cache of B' rows: equal, bit for
        bit, to 16 `step` calls fed with these tokens (same row-local operations, per-token
        attention), at the cost of one pass."""
        if cache.length:
            raise ValueError("predict_cached needs a fresh cache")
        features = self.decoder.decode(self.embed_tokens(self.learned_zero(tokens_q)), cache)
        means, scales = self.heads(features)
        return means, scales, features


__all__ = ["TemporalEntropyModel", "LATENT_SCALE"]
