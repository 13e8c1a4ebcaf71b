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

Coding: a tile's frame is one payload, one rANS stream of its autoregressive steps (`temporal.
coding`, `temporal.step_streams`; tokens filled under clouds: `temporal.clouds`), through the
sequence protocol (`terracodec.models.codec`) with a `TemporalState` that both sides advance
identically; the batched `encode_frames` / `decode_frames` code a frame of several tiles.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from terracodec.errors import CorruptStreamError, InputError
from terracodec.models.codec import Codec
from terracodec.temporal.step_streams import StepReader, step_reader
from terracodec.parallel import chunks, run_tasks
from terracodec.registry import register_architecture
from terracodec.temporal.entropy_model import TemporalEntropyModel
from terracodec.temporal.entropy_paths import CURRENT_PATH, is_portable, platform_hint, portable_twin
from terracodec.temporal.transforms import Dequantizer, PadToken, Transform

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
    #: The stream's `codec.coder_platform`: a portable entropy path (`entropy_paths`; the
    #: default) or, for streams written before it, the platform whose float path coded them.
    coded_on: str = CURRENT_PATH


@register_architecture("tec-tt")
class TemporalCodec(Codec):
    """TEC-TT (see the module docstring)."""

    kind = "temporal"
    multiple = 64

    def __init__(self, config: dict[str, Any]) -> None:
        cfg = dict(PUBLISHED, **config)
        super().__init__(cfg)
        c_lat = self.build_transforms(cfg)
        layers = [int(n) for n in cfg["layers"]]
        if len(layers) != 3 or min(layers) < 1:
            raise ValueError(f"layers {layers} must be 3 positive counts")
        self.latent_channels = c_lat
        self.d_model = int(cfg["d_model"])
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
            latent_repacking=bool(cfg.get("latent_repacking", False)),
        )
        self._temporal_pad_token_maker = PadToken(c_lat)
        self._dequantizer = Dequantizer(c_lat, self.d_model)
        self.num_streams = self.entropy_model.seq_len_dec
        self.multiple = 16 * int(cfg["window_current"])
        #: FlexTEC: tokens sent per window (quality k, 0..16); the rest are predicted
        self.tokens_sent = self.num_streams
        if self.entropy_model.latent_repacking and cfg.get("quality") is not None:
            self.tokens_sent = int(cfg["quality"])
            if not 0 <= self.tokens_sent <= self.num_streams:
                raise ValueError(f"FlexTEC quality (tokens per window) must be 0..{self.num_streams}")

    # ----------------------------------------------------------------- transforms
    def build_transforms(self, cfg: dict[str, Any]) -> int:
        """Create the transforms; returns the latent channels (seam: `temporal.flextec_elic`)."""
        ch = [int(c) for c in cfg["transform_channels"]]
        c_lat = int(cfg["latent_channels"])
        if len(ch) != 4 or ch[-1] != c_lat:
            raise ValueError(f"transform_channels {ch} must be 4 widths ending in latent_channels")
        self.transform = Transform(self.bands, ch, int(cfg["residual_blocks"]))
        return c_lat

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
        """Context encoding of the learned constant latent: one window (all are equal)."""
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

    def _coder(self, path: str = "") -> tuple[TemporalEntropyModel, Tensor]:
        """The entropy model and pad latent that code streams, always on the CPU.

        `path`: a portable entropy path (`terracodec.temporal.entropy_paths`), whose twin
        computes the same bits on every machine: what streams are coded with (`codec.
        coder_platform`). "": the float model, for streams written before the portable paths
        (they decode only on the platform that coded them): float GEMMs on a GPU are not even
        row-invariant, so a model moved to a GPU keeps a CPU copy of it. Copies are refreshed
        when a weight changes."""
        em, pad = self.entropy_model, self._temporal_pad_token_maker.weight
        if pad.device.type == "cpu" and not path:
            return em, pad
        params = [pad, *em.parameters(), *em.buffers()]
        key = tuple((p.data_ptr(), p._version) for p in params)
        caches = self.__dict__.setdefault("_coder_caches", {})
        cached = caches.get(path)
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # normal tensors: versions tracked
                if path:
                    coder, pad_copy = portable_twin(path, em), pad.detach().cpu().clone().double()
                else:
                    coder, pad_copy = copy.deepcopy(em).cpu().eval(), pad.detach().cpu().clone()
            cached = (key, coder, pad_copy)
            caches[path] = cached
        return cached[1], cached[2]

    def _context_tasks(self, state: TemporalState) -> tuple[list[Callable[[], Any]], Callable[[list], Any]]:
        """Tasks for the next frame's decoder context (`terracodec.temporal.coding.context_tasks`)
        and the function that turns their results into the `FrameContext`, encoding the
        state's pending latent in place (as `memory` does)."""
        from terracodec.temporal.coding import FrameContext, context_tasks

        path = _portable_path(state)
        em, _ = self._coder(path)
        if state.pending is None and not state.encoded:
            first = run_tasks([lambda: em.memory_keys_values(self._start_memory(path))])[0]
            return [], lambda _: FrameContext(first)
        windows = em.tokenizer.context(state.pending) if state.pending is not None else None
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

    def _start_memory(self, path: str = "") -> Tensor:
        """The first frame's memory depends on the weights only: computed once (one window,
        broadcast) by the coding entropy model, recomputed when a weight changes."""
        em, pad = self._coder(path)
        params = [pad, *em.parameters(), *em.buffers()]
        key = tuple((p.data_ptr(), p._version, p.device) for p in params)
        memories = self.__dict__.setdefault("_start_memory_caches", {})
        cached = memories.get(path)
        if cached is None or cached[0] != key:
            # one intra-op thread, as every GEMM of the coding path (`terracodec.temporal.coding`)
            cached = (key, run_tasks([lambda: em.joint_context([self._encode_pad(em, pad)])])[0])
            memories[path] = cached
        return cached[1]

    def advance(self, state: TemporalState, y_hat: Tensor) -> TemporalState:
        """State after a frame whose quantised latent is `y_hat` `[B, C, h, w]` (call `memory`
        for this frame first)."""
        if state.pending is not None:
            raise ValueError("the state's pending latent was never used: call memory() first")
        size = (int(y_hat.shape[-2]), int(y_hat.shape[-1]))
        return TemporalState(list(state.encoded), y_hat, state.frames + 1, int(y_hat.shape[0]), size,
                             state.coded_on)

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
        self, x: Tensor, state: Optional[TemporalState] = None, k: Optional[int] = None,
        cloud: Optional[Tensor] = None, fill_mode: str = "interleave",
    ) -> tuple[list[bytes], TemporalState]:
        """Code the next frame of B tile sequences `[B, C, H, W]` (normalised): one payload per
        tile, and the state for the following frame. `k`: a repacked model's tokens sent per
        window for this frame (default `tokens_sent`); the payload records it. `cloud`: `[B,
        H/16, W/16]` bool cloudy latent cells, whose tokens are filled (`temporal.clouds`)."""
        from terracodec.temporal.clouds import filled_tokens, frame_payloads
        from terracodec.temporal.coding import encode_frame

        state = state or TemporalState()
        self._check_frame(x)
        self._check_state(state, x.shape[0], x.shape[2] // 16, x.shape[3] // 16)
        tasks, finish = self._context_tasks(state)

        def analysis() -> Tensor:  # on the model's device; the coder takes a CPU latent
            return self.analysis(x.to(self.device, torch.float32)).cpu()

        results = run_tasks([analysis, *tasks])  # the transform beside the context encoders
        k = self.tokens_sent if k is None else int(k)
        if k != self.num_streams and not (self.entropy_model.latent_repacking and 0 <= k <= self.num_streams):
            raise InputError(f"tokens per window {k}: this model sends 0..{self.num_streams} only with latent repacking")
        em = self._coder(_portable_path(state))[0]
        filled = None
        if cloud is not None:
            if tuple(cloud.shape) != (x.shape[0], x.shape[2] // 16, x.shape[3] // 16):
                raise InputError(f"cloud cells {tuple(cloud.shape)} do not fit the tiles {tuple(x.shape)}")
            filled = filled_tokens(cloud.bool(), fill_mode, em.latent_repacking)
        payloads, y_hat, _ = encode_frame(em, results[0], finish(results[1:]), k, filled)
        return frame_payloads(payloads, filled), self.advance(state, y_hat)

    @torch.no_grad()
    def decode_latent_frames(
        self, data: Sequence[bytes], height: int, width: int, state: Optional[TemporalState] = None
    ) -> tuple[dict[str, Tensor], TemporalState]:
        """Quantised latents `y_hat [B, C, h, w]` and decoder features `[B, d, h, w]` of the next
        frame of B tile sequences (no synthesis), and the next state."""
        from terracodec.temporal.clouds import read_payloads
        from terracodec.temporal.coding import decode_frame

        state = state or TemporalState()
        self._check_state(state, len(data), height // 16, width // 16)
        self._check_size(height, width)
        data, filled = read_payloads(list(data), self.entropy_model.tokenizer.windows(height // 16, width // 16),
                                     self.num_streams)
        k, readers = self._step_readers(data)
        shape = (len(data), self.latent_channels, height // 16, width // 16)
        tasks, finish = self._context_tasks(state)
        em = self._coder(_portable_path(state))[0]
        y_hat, features = decode_frame(em, readers, k, finish(run_tasks(tasks)), shape, filled)
        y_hat = y_hat.float()  # integers: exact in float32 (the portable paths decode in float64)
        return {"y_hat": y_hat, "features": features.float()}, self.advance(state, y_hat)

    @torch.no_grad()
    def decode_frames(
        self, data: Sequence[bytes], height: int, width: int, state: Optional[TemporalState] = None
    ) -> tuple[Tensor, TemporalState]:
        """Reconstructions `[B, C, H, W]` (normalised) of the next frame, and the next state."""
        latents, state = self.decode_latent_frames(data, height, width, state)
        return self._synthesize(latents["y_hat"], latents["features"]), state

    def encode_sequence(self, x: Tensor) -> tuple[list[list[bytes]], list[Tensor]]:
        """Frames `[T, B, C, H, W]` in time order -> each frame's payloads and `y_hat` (CPU)."""
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

    def _step_readers(self, data: Sequence[bytes]) -> tuple[int, list[StepReader]]:
        """(k, each tile's steps): every tile of a frame sends the same k steps, 16 unless the
        model repacks latents (FlexTEC: 0..16, the frame's quality)."""
        parsed = [step_reader(d) for d in data]
        k = parsed[0][0] if parsed else self.num_streams
        if any(p[0] != k for p in parsed) or not 0 <= k <= self.num_streams or (
                k != self.num_streams and not self.entropy_model.latent_repacking):
            raise CorruptStreamError(f"corrupt {'FlexTEC' if self.entropy_model.latent_repacking else 'TEC-TT'} "
                                     "payload: bad token count")
        return k, [p[1] for p in parsed]

    def _check_state(self, state: TemporalState, tiles: int, h: int, w: int) -> None:
        if state.frames and (state.tiles, state.latent_size) != (tiles, (h, w)):
            raise InputError(f"the sequence has {state.tiles} tiles of {16 * state.latent_size[0]}x"
                             f"{16 * state.latent_size[1]}, this frame {tiles} of {16 * h}x{16 * w}")

    # ----------------------------------------------------------------- the sequence protocol
    def start_state(self, coded_on: str = CURRENT_PATH) -> TemporalState:
        """A tile's state before its first frame; `coded_on`: the stream's coder platform."""
        return TemporalState(coded_on=coded_on)

    def encode_frame(self, state: TemporalState, x: Tensor, cloud: Optional[Tensor] = None,
                     fill_mode: str = "interleave") -> tuple[bytes, TemporalState]:
        """Payload of the tile's next frame (`[C, H, W]`, normalised; `cloud`: its `[H/16, W/16]`
        cloudy cells), and the next state."""
        payloads, state = self.encode_frames(x[None], state, cloud=None if cloud is None else cloud[None],
                                             fill_mode=fill_mode)
        return payloads[0], state

    def decode_frame(self, state: TemporalState, data: bytes, height: int,
                     width: int) -> tuple[Tensor, TemporalState]:
        """Reconstruction `[C, H, W]` of the tile's next frame, and the next state."""
        with platform_hint(state.coded_on):
            x_hat, state = self.decode_frames([data], height, width, state)
        return x_hat[0], state

    def decode_frame_latents(self, state: TemporalState, data: bytes, height: int,
                             width: int) -> tuple[dict[str, Tensor], TemporalState]:
        """Quantised latents and decoder features of the next frame (no synthesis): what a frame
        that is not wanted costs, since later frames depend on it."""
        with platform_hint(state.coded_on):
            latents, state = self.decode_latent_frames([data], height, width, state)
        return {k: v[0] for k, v in latents.items()}, state

    def synthesis_latent(self, latents: dict[str, Tensor]) -> Tensor:
        """The dequantised latent (`y_hat + f(features)`): what `synthesis` decodes."""
        y_hat, features = latents["y_hat"][None].to(self.device), latents["features"][None].to(self.device)
        return self.dequantize(y_hat.float(), features.float())[0]


def _portable_path(state: TemporalState) -> str:
    """The stream's portable entropy path, or "" for the float path of older streams."""
    return state.coded_on if is_portable(state.coded_on) else ""


__all__ = ["TemporalCodec", "TemporalState", "PUBLISHED"]
