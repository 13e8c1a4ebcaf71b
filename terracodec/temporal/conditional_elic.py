"""TEC-TT on TEC-ELIC: a time series coded with the image codec's transforms and a temporal prior.

Why this shape: the transforms set a codec's quality ceiling, and `tec-elic-s2l2a`'s are the best
we have on Level-2A. Keeping them (frozen) keeps its distortion at every quality; what a series
adds is a better *entropy model*. Each later frame is coded with the image codec's own context
model, two small networks added: one corrects the side parameters from the previous frame's
decoded latent (`latent_codecs.temporal_prior`), and one per channel group mixes the predicted
Gaussian with that latent, pulling means towards the past where the intra prediction and the
past agree (`latent_codecs.temporal_mixing`). A sequence's first frame is coded exactly as the
image codec codes it; every later frame pays only for what the previous one does not predict.

    frame t --g_a--> y --gain[q]--> TemporalPrior(y, y_hat[t-1]) --> chained payload (format 7)
    payload --TemporalPrior(y_hat[t-1])--> y_hat[t] --inverse gain--> g_s --> frame t
                                              \\--> state for frame t+1

The state a tile carries is the previous frame's quantised latent (float64, integers plus exact
fixed-point means), identical at both ends; every parameter network runs in exact fixed point,
so streams decode on every machine, thread count and batch split (`entropy_path`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor

from terracodec.entropy.rans_chain import deferred_coding
from terracodec.errors import InputError
from terracodec.header import FIXED_POINT_PATH  # what its streams record as `coder_platform`
from terracodec.latent_codecs.padding import crop_latent, pad_latent, padded_size, valid_cells
from terracodec.latent_codecs.temporal_mixing import TemporalMixing
from terracodec.latent_codecs.temporal_prior import TemporalPriorLatentCodec, temporal_prior_net
from terracodec.models.elic import ElicCodec
from terracodec.models.payload import finish_chains, pack_chain, pack_filled, split_filled
from terracodec.parallel import budget, intra_op_threads, run_float
from terracodec.registry import register_architecture
from terracodec.temporal.clouds import filled_grid, pack_mask, recorded_cells


@dataclass
class PriorState:
    """A tile's previous decoded latent `[1, M, h, w]` (coded space, on the hyperprior's grid: its
    padding cells hold their predicted means, `latent_codecs.padding`), None before its first frame."""

    y_hat: Optional[Tensor] = None
    frames: int = 0


@register_architecture("tec-tt-elic")
class ConditionalElicCodec(ElicCodec):
    """TEC-ELIC plus a temporal prior (module docstring). Config: TEC-ELIC's, plus
    `temporal_width` (hidden width of the side-parameter correction, default 256) and
    `mix_width` (hidden width of each channel group's `TemporalMixing`, default 64)."""

    kind = "temporal"
    entropy_path = FIXED_POINT_PATH

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        width = int(config.get("temporal_width", 256))
        mix_width = int(config.get("mix_width", 64))
        self.config.update(temporal_width=width, mix_width=mix_width)
        hyperprior = self.latent_codec
        groups = hyperprior.y
        for k, (lo, hi) in enumerate(zip(groups.bounds[:-1], groups.bounds[1:])):
            checkerboard = groups.latent_codec[f"y{k}"]
            checkerboard.entropy_parameters = TemporalMixing(checkerboard.entropy_parameters, lo, hi, self.M, mix_width)
        self.latent_codec = TemporalPriorLatentCodec(
            hyperprior.y, hyperprior.hyper, temporal_prior_net(self.M, 2 * self.M, width))
        self.num_streams = self.latent_codec.num_streams

    # ----------------------------------------------------------------- the sequence protocol
    def start_state(self, coded_on: str = "") -> PriorState:
        return PriorState()

    def temporal_parameters(self) -> list[torch.nn.Parameter]:
        """What training learns: the side-parameter correction and the groups' mixers."""
        mixers = [m.mix for m in self.modules() if isinstance(m, TemporalMixing)]
        return [p for net in (self.latent_codec.temporal, *mixers) for p in net.parameters()]

    @staticmethod
    def image_codec_key(key: str) -> str:
        """This model's state-dict key of a TEC-ELIC key (its parameter networks are wrapped)."""
        return key.replace(".entropy_parameters.", ".entropy_parameters.aggregation.")

    @torch.no_grad()
    def encode_frame(self, state: PriorState, x: Tensor, cloud: Optional[Tensor] = None,
                     fill_mode: str = "interleave") -> tuple[bytes, PriorState]:
        """The tile's next frame (`[C, H, W]`, normalised). `cloud`: its `[H/16, W/16]` cloudy
        cells, filled instead of sent (`temporal.clouds.filled_grid`); they decode to their
        predicted mean. Before the analysis the encoder paints the filled cells' pixels with the
        previous decoded frame (the band means on a first frame): the analysis reaches dozens of
        pixels, and a cloud left in would leak into the coded neighbours and the side information
        from which the filled cells are predicted."""
        if x.dim() != 3:
            raise InputError(f"expected a tile [{self.bands}, H, W], got {tuple(x.shape)}")
        tokens, filled = None, None
        if cloud is not None:
            if tuple(cloud.shape) != (x.shape[1] // 16, x.shape[2] // 16):
                raise InputError(f"cloud cells {tuple(cloud.shape)} do not fit the tile {tuple(x.shape)}")
            tokens, filled = filled_grid(cloud, fill_mode)  # windows of 4 cells: the hyperprior's grid
            if bool(filled.any()):
                x = self._painted(state, x, filled[: cloud.shape[0], : cloud.shape[1]])
            else:
                tokens, filled = None, None
        y, coded = pad_latent(run_float(self.analysis, self._checked_tiles(x[None])))
        if filled is not None:
            coded = ~filled if coded is None else coded & ~filled
        with intra_op_threads(budget()), deferred_coding():  # exact arithmetic: any thread count
            out = self.latent_codec.compress(y, state.y_hat, coded)
        payload = pack_chain([segments[0] for segments in out["strings"]])
        if tokens is not None:
            payload = pack_filled(pack_mask(tokens), payload)
        return payload, PriorState(out["y_hat"], state.frames + 1)

    def _painted(self, state: PriorState, x: Tensor, cells: Tensor) -> Tensor:
        """`x` with the pixels of `cells` (`[H/16, W/16]` bool) taken from the previous decoded
        frame, or 0 (the band means) before the first."""
        pixels = cells.repeat_interleave(16, 0).repeat_interleave(16, 1)
        if state.y_hat is None:
            return x.masked_fill(pixels, 0.0)
        past = run_float(self.synthesis, crop_latent(state.y_hat, *cells.shape).to(torch.float32))[0]
        return torch.where(pixels, past.to(x.dtype), x)

    @torch.no_grad()
    def _decode(self, state: PriorState, data: bytes, height: int,
                width: int) -> tuple[dict[str, Tensor], PriorState]:
        """The frame's latents (cropped to its coded cells) and the next state (padded latent)."""
        mask, data = split_filled(data)
        h, w = height // 16, width // 16
        ph, pw = padded_size(h, w)
        coded = valid_cells(h, w)
        if mask is not None:
            filled = torch.from_numpy(recorded_cells(mask, h, w))
            coded = ~filled if coded is None else coded & ~filled
        streams = self._unpack_all([data], height, width)
        with intra_op_threads(budget()):
            latents = self.latent_codec.decompress(streams, (ph, pw), (ph // 4, pw // 4), state.y_hat, coded)
        finish_chains(streams)
        state = PriorState(latents["y_hat"], state.frames + 1)
        return {**latents, "y_hat": crop_latent(latents["y_hat"], h, w)}, state

    def decode_frame(self, state: PriorState, data: bytes, height: int,
                     width: int) -> tuple[Tensor, PriorState]:
        latents, state = self._decode(state, data, height, width)
        x_hat = run_float(self.synthesis, latents["y_hat"].to(torch.float32))
        return x_hat[0].float(), state

    def decode_frame_latents(self, state: PriorState, data: bytes, height: int,
                             width: int) -> tuple[dict[str, Tensor], PriorState]:
        latents, state = self._decode(state, data, height, width)
        return {k: v[0] for k, v in latents.items()}, state

    # ----------------------------------------------------------------- training
    def forward(self, x: Tensor, quality_index: int | None = None,
                y_prev: Optional[Tensor] = None) -> dict[str, Any]:
        """Training pass of one frame given the previous frame's quantised latent (coded space)."""
        out = self.latent_codec(self.gain_latent(self.g_a(x), quality_index), y_prev)
        return {"x_hat": self.g_s(self.ungain_latent(out["y_hat"], quality_index)),
                "y_hat": out["y_hat"], "likelihoods": out["likelihoods"]}


__all__ = ["ConditionalElicCodec", "FIXED_POINT_PATH", "PriorState"]
