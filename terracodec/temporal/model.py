"""TEC-TT: the temporal transformer codec (TerraCodec v1's `TemporalTransformer`).

Each frame goes through an ELIC-style analysis transform to a `latent_channels`-channel latent at
1/16 resolution; its entropy model (`TemporalEntropyModel`) is conditioned on the previous two
frames' quantised latents; the decoder's features `z_cur` are turned into a correction of the
quantised latent by the dequantiser (`y_hat + f(z_cur)`, f = 1x1 conv -> LeakyReLU ->
residual block), which the synthesis transform decodes. Before the first frame a learned
per-channel constant latent stands in for the previous frames.

Module names reproduce TerraCodec v1's state-dict keys (`transform.analysis_transform.transforms.0
.weight`, `entropy_model.decoder.layers.encoder_layer_0...`, `_temporal_pad_token_maker.weight`,
`_dequantizer.process_conv.0.weight`); only the location-scale tables differ (ours are rebuilt
with our recipe, `terracodec.temporal.checkpoint`).

Config (JSON): `bands`, `latent_channels` (192), `transform_channels` ([128, 160, 192, 192]; the
last equals `latent_channels`), `residual_blocks` (3), `d_model` (768), `num_heads` (16),
`mlp_expansion` (4), `layers` ([6, 4, 5]: per-frame encoder, joint encoder, decoder),
`window_context` (8), `window_current` (4), `context_frames` (2), `dropout` (0).

Coding: a tile's frame is one payload of `window_current**2` streams (one per autoregressive
step, see `terracodec.temporal.coding`). As an `ImageCodec` the model codes single frames
(`encode_tile` = a first frame); sequences go through `encode_frames` / `decode_frames` with a
`TemporalState` that both sides advance identically.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from terracodec.errors import InputError
from terracodec.layers.blocks import AttentionBlock, ResidualUnit
from terracodec.layers.conv import conv, deconv
from terracodec.models.base import ImageCodec, pack_streams, register_architecture
from terracodec.temporal.entropy_model import TemporalEntropyModel
from terracodec.parallel import chunks, run_tasks
from terracodec.temporal.windows import context_windows

PUBLISHED = {
    "latent_channels": 192,
    "transform_channels": [128, 160, 192, 192],
    "residual_blocks": 3,
    "d_model": 768,
    "num_heads": 16,
    "mlp_expansion": 4,
    "layers": [6, 4, 5],
    "window_context": 8,
    "window_current": 4,
    "context_frames": 2,
}


class _Analysis(nn.Module):
    def __init__(self, bands: int, ch: Sequence[int], blocks: int) -> None:
        super().__init__()
        units = lambda n: [ResidualUnit(n) for _ in range(blocks)]  # noqa: E731
        self.transforms = nn.Sequential(
            conv(bands, ch[0]), *units(ch[0]),
            conv(ch[0], ch[1]), *units(ch[1]), AttentionBlock(ch[1]),
            conv(ch[1], ch[2]), *units(ch[2]),
            conv(ch[2], ch[3]), AttentionBlock(ch[3]),
        )


class _Synthesis(nn.Module):
    def __init__(self, bands: int, ch: Sequence[int], blocks: int) -> None:
        super().__init__()
        units = lambda n: [ResidualUnit(n) for _ in range(blocks)]  # noqa: E731
        self.transforms = nn.Sequential(
            AttentionBlock(ch[3]), deconv(ch[3], ch[2]), *units(ch[2]),
            deconv(ch[2], ch[1]), AttentionBlock(ch[1]), *units(ch[1]),
            deconv(ch[1], ch[0]), *units(ch[0]),
            deconv(ch[0], bands),
        )


class _Transform(nn.Module):
    """Holder that gives the transforms TerraCodec v1's key prefixes."""

    def __init__(self, bands: int, ch: Sequence[int], blocks: int) -> None:
        super().__init__()
        self.analysis_transform = _Analysis(bands, ch, blocks)
        self.synthesis_transform = _Synthesis(bands, ch, blocks)


class _PadToken(nn.Module):
    """Learned per-channel constant latent that stands in before the first frame."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(1, channels, 1, 1))


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.conv2(self.act(self.conv1(x))))


class Dequantizer(nn.Module):
    """`y_hat + f(features)`: the entropy model's features refine the quantised latent."""

    def __init__(self, channels: int, d_model: int) -> None:
        super().__init__()
        self.process_conv = nn.Sequential(
            nn.Conv2d(d_model, channels, 1), nn.LeakyReLU(0.01), _ResidualBlock(channels)
        )

    def forward(self, y_hat: Tensor, features: Tensor) -> Tensor:
        return y_hat + self.process_conv(features)


@dataclass
class TemporalState:
    """What both coder sides carry from frame to frame: the per-frame context encodings of the
    last `context_frames` decoded latents (oldest first), empty before the first frame. The
    newest latent is encoded only when a next frame asks for it (`pending`): the last frame of
    a sequence never pays for its context encoding."""

    encoded: list[Tensor] = field(default_factory=list)
    pending: Optional[Tensor] = None
    frames: int = 0
    tiles: int = 0
    latent_size: tuple[int, int] = (0, 0)


@register_architecture("tec-tt")
class TemporalCodec(ImageCodec):
    """TEC-TT (see the module docstring)."""

    kind = "temporal"
    multiple = 64

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = dict(PUBLISHED, **config)
        super().__init__(cfg)
        ch = [int(c) for c in cfg["transform_channels"]]
        c_lat = int(cfg["latent_channels"])
        if len(ch) != 4 or ch[-1] != c_lat:
            raise ValueError(f"transform_channels {ch} must be 4 widths ending in latent_channels")
        layers = [int(n) for n in cfg["layers"]]
        if len(layers) != 3 or min(layers) < 1:
            raise ValueError(f"layers {layers} must be 3 positive counts")
        self.latent_channels = c_lat
        self.d_model = int(cfg["d_model"])
        self.transform = _Transform(self.bands, ch, int(cfg["residual_blocks"]))
        self.entropy_model = TemporalEntropyModel(
            num_channels=c_lat,
            context_len=int(cfg["context_frames"]),
            window_context=int(cfg["window_context"]),
            window_current=int(cfg["window_current"]),
            layers=layers,
            d_model=self.d_model,
            num_heads=int(cfg["num_heads"]),
            mlp_expansion=int(cfg["mlp_expansion"]),
            dropout=float(cfg.get("dropout", 0.0)),
        )
        self._temporal_pad_token_maker = _PadToken(c_lat)
        self._dequantizer = Dequantizer(c_lat, self.d_model)
        self.num_streams = self.entropy_model.seq_len_dec
        self.multiple = 16 * int(cfg["window_current"])

    # ----------------------------------------------------------------- transforms
    def analysis(self, x: Tensor) -> Tensor:
        return self.transform.analysis_transform.transforms(x)

    def synthesis(self, y_in: Tensor) -> Tensor:
        """Reconstruction from the synthesis input (`dequantize(y_hat, features)`)."""
        return self.transform.synthesis_transform.transforms(y_in)

    def dequantize(self, y_hat: Tensor, features: Tensor) -> Tensor:
        return self._dequantizer(y_hat, features)

    def update(self, force: bool = False) -> bool:
        return bool(self.entropy_model.bottleneck.update(force=force))

    # ----------------------------------------------------------------- context
    def start_context(self) -> Tensor:
        """Context encoding of the learned constant latent: one window (all windows of a
        constant latent are equal), broadcast by the entropy model."""
        return self._encode_pad(self.entropy_model, self._temporal_pad_token_maker.weight)

    @staticmethod
    def _encode_pad(em: TemporalEntropyModel, pad_weight: Tensor) -> Tensor:
        w = em.window_current
        return em.encode_context(pad_weight.expand(1, -1, w, w))

    def memory(self, state: TemporalState) -> Tensor:
        """The joint encoder's output for the next frame (encodes the pending latent, in place)."""
        if state.pending is not None:
            encoded = state.encoded + [self.entropy_model.encode_context(state.pending)]
            state.encoded, state.pending = encoded[-self.entropy_model.context_len :], None
        if state.encoded:
            return self.entropy_model.joint_context(state.encoded)
        if torch.is_grad_enabled() or self.device.type != "cpu":
            return self.entropy_model.joint_context([self.start_context()])
        return self._start_memory()  # cached (no gradient needed, and the coder is this model)

    def _coder(self) -> tuple[TemporalEntropyModel, Tensor]:
        """The entropy model and pad latent that code streams, always on the CPU.

        Why: float GEMMs on a GPU are not row-invariant (the BLAS picks kernels, and with them
        summation orders, by matrix shape), so table rows computed there by the encoder (16
        tokens per call) differ from the decoder's (one token per call) and streams fail to
        decode even on the GPU that wrote them (measured: `benchmarks/gpu.py`). A model moved to
        a GPU keeps a CPU copy of its entropy model for coding, refreshed when a weight changes;
        its transforms still run on the GPU. Streams are then those of the CPU path."""
        em, pad = self.entropy_model, self._temporal_pad_token_maker.weight
        if pad.device.type == "cpu":
            return em, pad
        params = [pad, *em.parameters(), *em.buffers()]
        key = tuple((p.data_ptr(), p._version) for p in params)
        cached = getattr(self, "_cpu_coder_cache", None)
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # normal tensors: versions tracked
                cached = (key, copy.deepcopy(em).cpu().eval(), pad.detach().cpu().clone())
            self._cpu_coder_cache = cached
        return cached[1], cached[2]

    def _context_tasks(self, state: TemporalState) -> tuple[list[Callable[[], Any]], Callable[[list], Any]]:
        """Tasks for the next frame's decoder context (`terracodec.temporal.coding.context_tasks`)
        and the function that turns their results into the `FrameContext`, encoding the
        state's pending latent in place (as `memory` does)."""
        from terracodec.temporal.coding import FrameContext, context_tasks

        em, _ = self._coder()
        if state.pending is None and not state.encoded:
            first = run_tasks([lambda: em.memory_keys_values(self._start_memory())])[0]
            return [], lambda _: FrameContext(first)
        windows = None
        if state.pending is not None:
            windows = context_windows(state.pending, em.window_context, em.window_current)
        tasks, finish = context_tasks(em, state.encoded, windows)

        def done(results: list) -> Any:
            new, context = finish(results)
            if new is not None:
                state.encoded, state.pending = (state.encoded + [new])[-em.context_len :], None
            return context

        return tasks, done

    def _synthesize(self, y_hat: Tensor, features: Tensor) -> Tensor:
        """Reconstructions of decoded latents, tile by tile on `parallel.run_tasks`' threads
        (one intra-op thread each: the transforms' many small parallel regions stall on a busy
        core)."""
        y_hat, features = y_hat.to(self.device), features.to(self.device)
        tasks = [partial(lambda s: self.synthesis(self.dequantize(y_hat[s], features[s])), s)
                 for s in chunks(y_hat.shape[0], 1)]
        return torch.cat(run_tasks(tasks)).float()

    def _start_memory(self) -> Tensor:
        """The first frame's memory depends on the weights only: computed once (one window,
        broadcast) by the coding entropy model, recomputed when a weight changes."""
        em, pad = self._coder()
        params = [pad, *em.parameters()]
        key = tuple((p.data_ptr(), p._version, p.device) for p in params)
        cached = getattr(self, "_start_memory_cache", None)
        if cached is None or cached[0] != key:
            # one intra-op thread, as every GEMM of the coding path (`terracodec.temporal.coding`)
            cached = (key, run_tasks([lambda: em.joint_context([self._encode_pad(em, pad)])])[0])
            self._start_memory_cache = cached
        return cached[1]

    def advance(self, state: TemporalState, y_hat: Tensor) -> TemporalState:
        """State after a frame whose quantised latent is `y_hat` `[B, C, h, w]` (call `memory`
        for this frame first)."""
        if state.pending is not None:
            raise ValueError("the state's pending latent was never used: call memory() first")
        size = (int(y_hat.shape[-2]), int(y_hat.shape[-1]))
        return TemporalState(list(state.encoded), y_hat, state.frames + 1, int(y_hat.shape[0]), size)

    # ----------------------------------------------------------------- training
    def forward(self, x: Tensor) -> dict[str, Any]:
        """Teacher-forced pass over sequences `[B, T, C, H, W]` -> `x_hat` (same shape) and
        the likelihoods `[T, B * windows, 16, C]` (as the reference's `forward`)."""
        if x.dim() == 4:
            x = x[:, None]
        b, t = x.shape[:2]
        y = self.analysis(x.flatten(0, 1)).unflatten(0, (b, t))
        state, outs, likelihoods = TemporalState(), [], []
        for i in range(t):
            y_hat, lik, features = self.entropy_model(y[:, i], self.memory(state))
            outs.append(self.dequantize(y_hat, features))
            likelihoods.append(lik)
            state = self.advance(state, y_hat.detach() if i == 0 else y_hat)
        x_hat = self.synthesis(torch.stack(outs, 1).flatten(0, 1)).unflatten(0, (b, t))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.stack(likelihoods)}}

    # ----------------------------------------------------------------- coding: sequences
    def _check_frame(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.bands:
            raise InputError(f"expected tiles [B, {self.bands}, H, W], got {tuple(x.shape)}")
        self._check_size(x.shape[2], x.shape[3])
        if not bool(torch.isfinite(x).all()):
            raise InputError("tile holds non-finite values")

    @torch.no_grad()
    def encode_frames(
        self, x: Tensor, state: Optional[TemporalState] = None
    ) -> tuple[list[bytes], TemporalState]:
        """Code the next frame of B tile sequences `[B, C, H, W]` (normalised): one payload per
        tile, and the state for the following frame."""
        from terracodec.temporal.coding import encode_frame

        state = state or TemporalState()
        self._check_frame(x)
        self._check_state(state, x.shape[0], x.shape[2] // 16, x.shape[3] // 16)
        tasks, finish = self._context_tasks(state)

        def analysis() -> Tensor:  # on the model's device; the coder takes a CPU latent
            return self.analysis(x.to(self.device, torch.float32)).cpu()

        results = run_tasks([analysis, *tasks])  # the transform beside the context encoders
        streams, y_hat, _ = encode_frame(self._coder()[0], results[0], finish(results[1:]))
        payloads = [pack_streams([s[b] for s in streams]) for b in range(x.shape[0])]
        return payloads, self.advance(state, y_hat)

    @torch.no_grad()
    def decode_latent_frames(
        self, data: Sequence[bytes], height: int, width: int, state: Optional[TemporalState] = None
    ) -> tuple[dict[str, Tensor], TemporalState]:
        """Quantised latents `y_hat [B, C, h, w]` and decoder features `[B, d, h, w]` of the next
        frame of B tile sequences (no synthesis), and the next state."""
        from terracodec.temporal.coding import decode_frame

        state = state or TemporalState()
        self._check_state(state, len(data), height // 16, width // 16)
        streams = self._unpack_all(data, height, width)
        shape = (len(data), self.latent_channels, height // 16, width // 16)
        tasks, finish = self._context_tasks(state)
        y_hat, features = decode_frame(self._coder()[0], streams, finish(run_tasks(tasks)), shape)
        return {"y_hat": y_hat, "features": features}, self.advance(state, y_hat)

    @torch.no_grad()
    def decode_frames(
        self, data: Sequence[bytes], height: int, width: int, state: Optional[TemporalState] = None
    ) -> tuple[Tensor, TemporalState]:
        """Reconstructions `[B, C, H, W]` (normalised) of the next frame, and the next state."""
        latents, state = self.decode_latent_frames(data, height, width, state)
        return self._synthesize(latents["y_hat"], latents["features"]), state

    def encode_sequence(self, x: Tensor) -> tuple[list[list[bytes]], list[Tensor]]:
        """Code frames `[T, B, C, H, W]` of B tile sequences in time order: the payloads of each
        frame, and each frame's coded latents `y_hat [B, C, h, w]` (on the CPU)."""
        state, payloads, coded = TemporalState(), [], []
        for t in range(x.shape[0]):
            p, state = self.encode_frames(x[t], state)
            payloads.append(p)
            coded.append(state.pending.cpu())
        return payloads, coded

    def decode_sequence_latents(self, payloads: Sequence[Sequence[bytes]], height: int, width: int) -> list[Tensor]:
        """Inverse of `encode_sequence`'s payloads: each frame's `y_hat` (on the CPU)."""
        state, out = TemporalState(), []
        for p in payloads:
            latents, state = self.decode_latent_frames(p, height, width, state)
            out.append(latents["y_hat"].cpu())
        return out

    def _check_state(self, state: TemporalState, tiles: int, h: int, w: int) -> None:
        if state.frames and (state.tiles, state.latent_size) != (tiles, (h, w)):
            raise InputError(
                f"the sequence has {state.tiles} tiles of {16 * state.latent_size[0]}x"
                f"{16 * state.latent_size[1]}, this frame {tiles} of {16 * h}x{16 * w}"
            )

    # ----------------------------------------------------------------- ImageCodec: one frame
    def compress_latents(self, y: Tensor) -> tuple[list[list[bytes]], dict[str, Tensor]]:
        from terracodec.temporal.coding import encode_frame

        tasks, finish = self._context_tasks(TemporalState())
        streams, y_hat, features = encode_frame(self._coder()[0], y.cpu(), finish(tasks))
        return streams, {"y_hat": y_hat, "features": features}

    def decompress_latents(
        self, strings: list[list[bytes]], height: int, width: int
    ) -> dict[str, Tensor]:
        from terracodec.temporal.coding import decode_frame

        shape = (len(strings[0]), self.latent_channels, height // 16, width // 16)
        tasks, finish = self._context_tasks(TemporalState())
        y_hat, features = decode_frame(self._coder()[0], strings, finish(tasks), shape)
        return {"y_hat": y_hat, "features": features}

    @torch.no_grad()
    def decode_tiles(self, data: Sequence[bytes], height: int, width: int) -> Tensor:
        latents = self.decode_latents_batch(data, height, width)
        return self._synthesize(latents["y_hat"], latents["features"])


__all__ = ["TemporalCodec", "TemporalState", "Dequantizer", "PUBLISHED"]
