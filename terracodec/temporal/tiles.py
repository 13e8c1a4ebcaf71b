"""A tile's frames through TEC-TT, in time order, for the `.tec` container.

The container codes a scene tile by tile (`terracodec.tilecode`); with a temporal model, frame
`i` of a tile is coded with the state left by frames `< i` of the *same* tile, so each tile's
frames go through one `TileSequence` in time order (docs/FORMAT.md, `codec.kind = temporal`).
`TileSequence` looks like an image model to `tilecode` (`bands`, `multiple`, `encode_tile`,
`decode_tile`) and carries the `TemporalState` between calls.

A frame stored exactly (every pixel nodata: `FLAG_EXACT_ONLY`, no model payload) never reaches
the model on either side, so it leaves the state unchanged: the next frame is predicted from
the last frames that were coded, on the encoder and the decoder alike.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import Tensor

from terracodec.errors import CorruptStreamError
from terracodec.temporal.coding import coder_platform
from terracodec.temporal.model import TemporalCodec, TemporalState


class TileSequence:
    """The frames of one tile, coded (or decoded) one after the other. `coded_on`: the stream's
    `codec.coder_platform`, named in the error when a frame fails to decode on another one."""

    def __init__(self, codec: TemporalCodec, coded_on: str = "") -> None:
        self.codec = codec
        self.coded_on = coded_on
        self.bands = codec.bands
        self.multiple = codec.multiple
        self.state = TemporalState()

    def encode_tile(self, x: Tensor) -> bytes:
        """Payload of the next frame of this tile (`[C, H, W]`, normalised)."""
        payloads, self.state = self.codec.encode_frames(x[None], self.state)
        return payloads[0]

    def decode_tile(self, data: bytes, height: int, width: int) -> Tensor:
        """Reconstruction `[C, H, W]` of the next frame."""
        with self._platform_hint():
            x_hat, self.state = self.codec.decode_frames([data], height, width, self.state)
        return x_hat[0]

    def decode_latents(self, data: bytes, height: int, width: int) -> dict[str, Tensor]:
        """Quantised latents and decoder features of the next frame (no synthesis): what a
        frame that is not wanted costs, since later frames depend on it."""
        with self._platform_hint():
            latents, self.state = self.codec.decode_latent_frames([data], height, width, self.state)
        return {k: v[0] for k, v in latents.items()}

    @contextmanager
    def _platform_hint(self) -> Iterator[None]:
        """A frame that fails to decode on another platform than the one that coded it most
        likely failed because of that (float32 entropy parameters): say so."""
        try:
            yield
        except CorruptStreamError as exc:
            here = coder_platform()
            if not self.coded_on or self.coded_on == here:
                raise
            raise CorruptStreamError(
                f"{exc}. This TEC-TT stream was coded on '{self.coded_on}', this machine is "
                f"'{here}': TEC-TT streams decode bit-exactly only on the platform that coded "
                "them (docs/DESIGN.md section 5)"
            ) from None
