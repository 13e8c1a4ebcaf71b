"""A tiny deterministic codec implementing the codec protocol (`terracodec.models.codec`:
stateless, like an image codec), for plumbing tests.

It quantises normalised values to a fixed step and deflates them: lossy, fast, exact to
reason about (|error| <= step/2 * std in DN), and independent of the learned models, so the
container, tiling and CLI tests do not depend on model work in progress.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib

import numpy as np
import torch

from terracodec.errors import CorruptStreamError


class ToyCodec(torch.nn.Module):
    def __init__(self, band_names=("B02", "B03", "B04", "B08"), step=0.02, multiple=16, std=1000.0):
        super().__init__()
        self.bands = len(band_names)
        self.multiple = multiple
        self.step = step
        self.config = {
            "name": "toy",
            "quality": step,
            "kind": "image",
            "band_names": list(band_names),
            "normalization": {"name": "toy", "mean": [1500.0] * self.bands, "std": [std] * self.bands},
        }

    def encode_tile(self, x: torch.Tensor) -> bytes:
        c, h, w = x.shape
        assert c == self.bands and h % self.multiple == 0 and w % self.multiple == 0
        q = torch.round(x.double() / self.step).to(torch.int32).numpy()
        return struct.pack("<III", c, h, w) + zlib.compress(q.astype("<i4").tobytes())

    def decode_tile(self, data: bytes, height: int, width: int) -> torch.Tensor:
        c, h, w = struct.unpack_from("<III", data)
        if (c, h, w) != (self.bands, height, width):
            raise CorruptStreamError("toy: shape mismatch")
        q = np.frombuffer(zlib.decompress(data[12:]), "<i4").reshape(c, h, w)
        return torch.from_numpy(q.astype(np.float32) * np.float32(self.step))

    # the sequence protocol of an image codec: no state
    def start_state(self, coded_on: str = "") -> None:
        return None

    def encode_frame(self, state, x: torch.Tensor):
        return self.encode_tile(x), None

    def decode_frame(self, state, data: bytes, height: int, width: int):
        return self.decode_tile(data, height, width), None

    def decode_frame_latents(self, state, data: bytes, height: int, width: int):
        return {"y_hat": self.decode_tile(data, height, width)[:, ::16, ::16]}, None

    def weights_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()
