"""`Codec`: what every learned codec is to the rest of terracodec, image or temporal.

A codec codes the frames of one tile (a normalised `[C, H, W]` tensor each, H and W multiples
of `multiple`) into payloads (`terracodec.models.payload`) and back, through one protocol:

    state = codec.start_state()
    payload, state = codec.encode_frame(state, x)            # frame after frame
    x_hat, state = codec.decode_frame(state, payload, H, W)
    latents, state = codec.decode_frame_latents(state, payload, H, W)   # no synthesis

An image codec (`ImageCodec`) keeps no state (`None`): every frame is coded on its own. A
temporal codec (`terracodec.temporal.TemporalCodec`) carries the previous frames' latents in
its state, so a tile's frames are coded in time order by one state. `kind` says which; the
work-unit plan (`terracodec.api.plan`) is the one place that acts on it.

Latents come in two spaces (`latent_spec`): `coded`, the integers the entropy coder codes (a
variable-rate model's are scaled by the quality's gain), and `synthesis`, what the synthesis
transform decodes (gain removed; TEC-TT's dequantiser applied), the same space at every quality.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from terracodec.errors import InputError
from terracodec.models.payload import unpack_streams
from terracodec.weights import save_pretrained

#: Every terracodec codec's latents lie on a 1/16 grid.
LATENT_STRIDE = 16
SPACES = ("coded", "synthesis")


@dataclass(frozen=True)
class LatentSpec:
    """What decoded latents are: grid stride (scene pixels per latent pixel), channels, space."""

    stride: int
    channels: int
    space: str


class Codec(nn.Module):
    """Base class of every codec (see the module docstring)."""

    arch: ClassVar[str] = ""
    kind: ClassVar[str] = "image"
    #: Tile height and width must be multiples of this (total downsampling of the model).
    multiple: ClassVar[int] = 1
    #: Streams per tile payload (checked on decode).
    num_streams: int = 1

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config, arch=self.arch)
        self.bands: int = int(config["bands"])

    # ----------------------------------------------------------------- the sequence protocol
    def start_state(self, coded_on: str = "") -> Any:  # pragma: no cover - abstract
        """The state before a tile's first frame (`coded_on`: the stream's coder platform)."""
        raise NotImplementedError

    def encode_frame(self, state: Any, x: Tensor) -> tuple[bytes, Any]:  # pragma: no cover
        raise NotImplementedError

    def decode_frame(self, state: Any, data: bytes, height: int, width: int) -> tuple[Tensor, Any]:  # pragma: no cover
        raise NotImplementedError

    def decode_frame_latents(self, state: Any, data: bytes, height: int,
                             width: int) -> tuple[dict[str, Tensor], Any]:  # pragma: no cover
        raise NotImplementedError

    # ----------------------------------------------------------------- latents contract
    #: Channels of the latent (a property of image codecs, an attribute of TEC-TT).
    latent_channels: int

    def latent_spec(self, space: str = "coded") -> LatentSpec:
        if space not in SPACES:
            raise InputError(f"latent space must be one of {', '.join(SPACES)}, got {space!r}")
        return LatentSpec(LATENT_STRIDE, int(self.latent_channels), space)

    def synthesis_latent(self, latents: dict[str, Tensor]) -> Tensor:  # pragma: no cover - abstract
        """What the synthesis transform decodes, `[M, h, w]`, from one frame's decoded latents."""
        raise NotImplementedError

    # ----------------------------------------------------------------- weights
    def save_pretrained(self, path: str, *, float16: bool = False) -> None:
        """Write `path.safetensors` + `path.json` (`terracodec.weights`; `float16`: the
        transforms' weights in half precision); `terracodec.zoo.from_pretrained` reads them back."""
        save_pretrained(self, path, float16=float16)

    def update(self, force: bool = False) -> bool:
        """Build the entropy models' integer tables (after training or loading weights).

        Gaussian conditionals keep their scale table (a loaded model's), or get CompressAI's
        default (64 log-spaced scales from 0.11 to 256), as TerraCodec v1 did. True when any
        table was (re)built.
        """
        from terracodec.entropy.bottleneck import EntropyBottleneck
        from terracodec.entropy.gaussian import GaussianConditional, default_scale_table

        updated = False
        built: dict[tuple, GaussianConditional] = {}
        for module in self.modules():
            if isinstance(module, EntropyBottleneck):
                updated |= bool(module.update(force=force))
            elif isinstance(module, GaussianConditional):
                if module.has_tables() and not force:
                    continue
                # Identically configured conditionals get identical tables: build once, copy.
                key = (module.tail_mass, tuple(module.scale_table.tolist())) + tuple(
                    tuple(b.flatten().tolist()) for n, b in module.named_buffers()
                    if n not in module._resizable_buffers
                )
                if key in built:
                    module.load_state_dict(built[key].state_dict())
                else:
                    own = module.scale_table.tolist()  # a loaded model's, else the default
                    module.update_scale_table(own or default_scale_table(), force=True)
                    built[key] = module
                updated = True
        return updated

    def aux_loss(self) -> Tensor:
        """Sum of the entropy bottlenecks' quantile losses (fitted by a separate optimiser)."""
        from terracodec.entropy.bottleneck import EntropyBottleneck

        losses = [m.loss() for m in self.modules() if isinstance(m, EntropyBottleneck)]
        return torch.stack(losses).sum() if losses else torch.zeros(())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_size(self, height: int, width: int) -> None:
        m = self.multiple
        if height <= 0 or width <= 0 or height % m or width % m:
            raise InputError(f"tile size {height}x{width} is not a positive multiple of {m}")

    #: A tile payload -> its streams (`models.payload`); image codecs also read chained payloads.
    _unpack_payload = staticmethod(unpack_streams)

    def _unpack_all(self, data: Sequence[bytes], height: int, width: int) -> list[list[bytes]]:
        self._check_size(height, width)
        per_tile = [self._unpack_payload(d, self.num_streams) for d in data]
        return [[tile[i] for tile in per_tile] for i in range(self.num_streams)]

    def weights_hash(self) -> str:
        """sha256 over every parameter and buffer (names, dtypes, shapes, bytes), tables included."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()


__all__ = ["Codec", "LATENT_STRIDE", "LatentSpec", "SPACES"]
