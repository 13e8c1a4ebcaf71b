"""`ImageCodec`: the learned image codecs (TEC-FP, TEC-ELIC), each frame coded on its own.

Subclasses provide the transforms and the latent codec through four hooks (`analysis`,
`synthesis`, `compress_latents`, `decompress_latents`); this class owns batching, thread
handling and the sequence protocol (`terracodec.models.codec`: an image codec's state is always
None), so every image model behaves the same.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from terracodec.entropy.rans_chain import deferred_coding
from terracodec.errors import InputError
from terracodec.models.codec import Codec
from terracodec.models.payload import finish_chains, pack_chain, unpack_any
from terracodec.models.payload import pack_streams, unpack_streams  # noqa: F401  (re-exported)
from terracodec.parallel import budget, intra_op_threads, run_float


class ImageCodec(Codec):
    """Base class of the learned image codecs (TEC-FP, TEC-ELIC)."""

    kind = "image"

    # ----------------------------------------------------------------- model hooks
    def analysis(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def synthesis(self, y_hat: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def compress_latents(self, y: Tensor) -> tuple[list[list[bytes]], dict[str, Tensor]]:  # pragma: no cover
        """([stream][batch item] bytes, quantised latents) for latents `y` [B, ...]."""
        raise NotImplementedError

    def decompress_latents(
        self, strings: list[list[bytes]], height: int, width: int
    ) -> dict[str, Tensor]:  # pragma: no cover
        """Quantised latents (batched) from `[stream][batch item]` bytes of H x W tiles."""
        raise NotImplementedError

    # ----------------------------------------------------------------- the sequence protocol
    def start_state(self, coded_on: str = "") -> None:
        return None

    def encode_frame(self, state: None, x: Tensor) -> tuple[bytes, None]:
        return self.encode_tile(x), None

    def decode_frame(self, state: None, data: bytes, height: int, width: int) -> tuple[Tensor, None]:
        return self.decode_tile(data, height, width), None

    def decode_frame_latents(self, state: None, data: bytes, height: int,
                             width: int) -> tuple[dict[str, Tensor], None]:
        return self.decode_latents(data, height, width), None

    # ----------------------------------------------------------------- latents contract
    @property
    def latent_channels(self) -> int:
        return int(self.config["M"])

    def synthesis_latent(self, latents: dict[str, Tensor]) -> Tensor:
        """The quantised latent with a variable-rate model's gain removed: what `synthesis`
        decodes, in one space at every quality."""
        y_hat = latents["y_hat"][None].float()
        ungain = getattr(self, "ungain_latent", None)
        return (ungain(y_hat) if ungain else y_hat)[0]

    #: Payload version 1 (separate streams) or 2 (the tile's `ChainReader` in every stream's place).
    _unpack_payload = staticmethod(unpack_any)

    # ----------------------------------------------------------------- tiles
    @torch.no_grad()
    def encode_tiles(self, x: Tensor) -> list[bytes]:
        """One payload per tile of a batch `[B, C, H, W]` (normalised values)."""
        y = run_float(self.analysis, self._checked_tiles(x))  # float: the same latents whatever the thread count
        with intra_op_threads(budget()), deferred_coding():  # exact arithmetic: any thread count
            segments, _ = self.compress_latents(y)
        return [pack_chain([s[b] for s in segments]) for b in range(x.shape[0])]

    def _checked_tiles(self, x: Tensor) -> Tensor:
        """A batch `[B, C, H, W]` of normalised tiles, checked, as float32 on the model's device."""
        if x.dim() != 4 or x.shape[1] != self.bands:
            raise InputError(f"expected tiles [B, {self.bands}, H, W], got {tuple(x.shape)}")
        self._check_size(x.shape[2], x.shape[3])
        if not bool(torch.isfinite(x).all()):
            raise InputError("tile holds non-finite values")
        return x.to(self.device, torch.float32)

    def encode_tile(self, x: Tensor) -> bytes:
        """Payload of one normalised tile `[C, H, W]`."""
        if x.dim() != 3:
            raise InputError(f"expected a tile [C, H, W], got {tuple(x.shape)}")
        return self.encode_tiles(x[None])[0]

    @torch.no_grad()
    def decode_latents_batch(
        self, data: Sequence[bytes], height: int, width: int
    ) -> dict[str, Tensor]:
        streams = self._unpack_all(data, height, width)
        latents = self.decompress_latents(streams, height, width)
        finish_chains(streams)
        return latents

    @torch.no_grad()
    def decode_tiles(self, data: Sequence[bytes], height: int, width: int) -> Tensor:
        """`[B, C, H, W]` reconstructions (normalised) of payloads of H x W tiles. The synthesis
        runs on a fixed number of intra-op threads (`terracodec.parallel.run_float`): oneDNN's
        1x1 and transposed convolutions sum in another order with another thread count, and
        decoded pixels must not depend on it."""
        with intra_op_threads(budget()):  # exact arithmetic: any thread count
            latents = self.decode_latents_batch(data, height, width)
        x_hat = run_float(self.synthesis, latents["y_hat"].to(torch.float32))
        return x_hat.float()

    def decode_tile(self, data: bytes, height: int, width: int) -> Tensor:
        """`[C, H, W]` reconstruction (normalised) of one payload."""
        return self.decode_tiles([data], height, width)[0]

    def decode_latents(self, data: bytes, height: int, width: int) -> dict[str, Tensor]:
        """Quantised latents of one payload (no synthesis): `{"y_hat": [M, h, w], ...}`."""
        latents = self.decode_latents_batch([data], height, width)
        return {k: v[0] for k, v in latents.items()}


__all__ = ["ImageCodec", "pack_streams", "unpack_streams"]
