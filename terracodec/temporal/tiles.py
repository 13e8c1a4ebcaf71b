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

from torch import Tensor

from terracodec.temporal.model import TemporalCodec, TemporalState


class TileSequence:
    """The frames of one tile, coded (or decoded) one after the other."""

    def __init__(self, codec: TemporalCodec) -> None:
        self.codec = codec
        self.bands = codec.bands
        self.multiple = codec.multiple
        self.state = TemporalState()

    def encode_tile(self, x: Tensor) -> bytes:
        """Payload of the next frame of this tile (`[C, H, W]`, normalised)."""
        payloads, self.state = self.codec.encode_frames(x[None], self.state)
        return payloads[0]

    def decode_tile(self, data: bytes, height: int, width: int) -> Tensor:
        """Reconstruction `[C, H, W]` of the next frame."""
        x_hat, self.state = self.codec.decode_frames([data], height, width, self.state)
        return x_hat[0]

    def decode_latents(self, data: bytes, height: int, width: int) -> dict[str, Tensor]:
        """Quantised latents and decoder features of the next frame (no synthesis): what a
        frame that is not wanted costs, since later frames depend on it."""
        latents, self.state = self.codec.decode_latent_frames([data], height, width, self.state)
        return {k: v[0] for k, v in latents.items()}
