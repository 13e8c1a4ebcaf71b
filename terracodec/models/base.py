"""`ImageCodec`: the contract between learned image models and the rest of terracodec.

A codec maps a normalised tile `[C, H, W]` (H, W multiples of `multiple`) to bytes and back
(docs/DESIGN.md section 3). Subclasses provide the transforms and the latent codec through four
hooks (`analysis`, `synthesis`, `compress_latents`, `decompress_latents`); this class owns the
tile payload layout, batching, device handling and hashing, so every model behaves the same.

Tile payload: `u8 version (=1) | u8 stream count n | n x LEB128 stream lengths | streams`.
The container checksums payloads; the layout is still validated here so that a damaged or
foreign payload raises `CorruptStreamError` instead of decoding into garbage.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from terracodec.errors import CorruptStreamError, InputError, ModelError
from terracodec.parallel import budget, intra_op_threads, run_float

PAYLOAD_VERSION = 1

#: Registered architectures: config["arch"] -> ImageCodec subclass (filled by subclasses).
ARCHITECTURES: dict[str, type["ImageCodec"]] = {}


def register_architecture(name: str):
    """Class decorator: make `ImageCodec.from_config` able to build this architecture."""

    def wrap(cls: type["ImageCodec"]) -> type["ImageCodec"]:
        cls.arch = name
        ARCHITECTURES[name] = cls
        return cls

    return wrap


class ImageCodec(nn.Module):
    """Base class of the learned image codecs (TEC-FP, TEC-ELIC)."""

    arch: ClassVar[str] = ""
    kind: ClassVar[str] = "image"
    #: Tile height and width must be multiples of this (total downsampling of the model).
    multiple: ClassVar[int] = 1
    #: Streams per tile (checked on decode).
    num_streams: int = 1

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config: dict[str, Any] = dict(config, arch=self.arch)
        self.bands: int = int(config["bands"])

    # ----------------------------------------------------------------- construction
    @staticmethod
    def from_config(config: dict[str, Any]) -> "ImageCodec":
        """Build an (untrained) codec from its JSON config (`config["arch"]` picks the class)."""
        import terracodec.models  # noqa: F401  (registers the image architectures)
        import terracodec.temporal.model  # noqa: F401  (registers "tec-tt")

        arch = config.get("arch")
        if arch not in ARCHITECTURES:
            raise ModelError(f"unknown model architecture {arch!r} (known: {sorted(ARCHITECTURES)})")
        try:
            return ARCHITECTURES[arch](config)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"invalid {arch} config: {exc}") from None

    def save_pretrained(self, path: str) -> None:
        """Write `path.safetensors` + `path.json` (see `terracodec.models.checkpoint`)."""
        from terracodec.models.checkpoint import save_pretrained

        save_pretrained(self, path)

    @staticmethod
    def from_pretrained(path: str) -> "ImageCodec":
        from terracodec.models.checkpoint import from_pretrained

        return from_pretrained(path)

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

    # ----------------------------------------------------------------- coding
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check_size(self, height: int, width: int) -> None:
        m = self.multiple
        if height <= 0 or width <= 0 or height % m or width % m:
            raise InputError(f"tile size {height}x{width} is not a positive multiple of {m}")

    @torch.no_grad()
    def encode_tiles(self, x: Tensor) -> list[bytes]:
        """One payload per tile of a batch `[B, C, H, W]` (normalised values)."""
        if x.dim() != 4 or x.shape[1] != self.bands:
            raise InputError(f"expected tiles [B, {self.bands}, H, W], got {tuple(x.shape)}")
        self._check_size(x.shape[2], x.shape[3])
        if not bool(torch.isfinite(x).all()):
            raise InputError("tile holds non-finite values")
        x = x.to(self.device, torch.float32)
        y = run_float(self.analysis, x)  # float: the same latents whatever the thread count
        with intra_op_threads(budget()):  # exact arithmetic: any thread count
            strings, _ = self.compress_latents(y)
        return [pack_streams([s[b] for s in strings]) for b in range(x.shape[0])]

    def encode_tile(self, x: Tensor) -> bytes:
        """Payload of one normalised tile `[C, H, W]`."""
        if x.dim() != 3:
            raise InputError(f"expected a tile [C, H, W], got {tuple(x.shape)}")
        return self.encode_tiles(x[None])[0]

    def _unpack_all(self, data: Sequence[bytes], height: int, width: int) -> list[list[bytes]]:
        self._check_size(height, width)
        per_tile = [unpack_streams(d, self.num_streams) for d in data]
        return [[tile[i] for tile in per_tile] for i in range(self.num_streams)]

    @torch.no_grad()
    def decode_latents_batch(
        self, data: Sequence[bytes], height: int, width: int
    ) -> dict[str, Tensor]:
        return self.decompress_latents(self._unpack_all(data, height, width), height, width)

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

    def weights_hash(self) -> str:
        """sha256 over every parameter and buffer (names, dtypes, shapes, bytes), tables included."""
        h = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()


def pack_streams(streams: Sequence[bytes]) -> bytes:
    """Tile payload from its entropy-coded streams (layout in the module docstring)."""
    if len(streams) > 255:
        raise ValueError("at most 255 streams per tile")
    head = bytearray((PAYLOAD_VERSION, len(streams)))
    for stream in streams:
        n = len(stream)
        while True:  # unsigned LEB128
            byte, n = n & 0x7F, n >> 7
            head.append(byte | (0x80 if n else 0))
            if not n:
                break
    return bytes(head) + b"".join(streams)


def unpack_streams(data: bytes, expected: int) -> list[bytes]:
    """Inverse of `pack_streams`; CorruptStreamError unless the layout is exactly right."""
    if len(data) < 2 or data[0] != PAYLOAD_VERSION:
        raise CorruptStreamError("corrupt tile payload: bad version byte or truncated")
    count = data[1]
    if count != expected:
        raise CorruptStreamError(f"corrupt tile payload: {count} streams, the model codes {expected}")
    pos, lengths = 2, []
    for _ in range(count):
        value = shift = 0
        while True:
            if pos >= len(data) or shift > 35:
                raise CorruptStreamError("corrupt tile payload: truncated stream table")
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        lengths.append(value)
    if pos + sum(lengths) != len(data):
        raise CorruptStreamError("corrupt tile payload: stream lengths do not match its size")
    out = []
    for n in lengths:
        out.append(bytes(data[pos : pos + n]))
        pos += n
    return out
