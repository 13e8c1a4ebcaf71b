"""Every registered terracodec model as a benchmark codec, through the public API.

Coding goes through `terracodec.api.encode` / `decode` on arrays, exactly what a user gets, so
the rate includes the `.tec` container (header, tile index, CRCs, the lossless layer for
out-of-range pixels); `payload_bytes` is the sum of the tile records alone. A series
[T, C, H, W] is one `.tec` stream (one header), each frame coded on its own, as `tec encode
t1.tif t2.tif` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from terracodec.bands import default_band_names, normalize_band_name
from terracodec.bench.base import Codec, check_uint16


class TerracodecModel(Codec):
    """A registry model (`terracodec.api.models()`); one instance per model name."""

    series = True
    quality_meaning = "registry quality level (1 = lowest rate)"

    def __init__(self, entry: dict[str, Any], device: str | None = None) -> None:
        super().__init__()
        self.entry = dict(entry)
        self.name = entry["name"]  # instance attribute: one codec per registered model
        self.device = device

    @classmethod
    def registered(cls, device: str | None = None) -> list["TerracodecModel"]:
        """One codec per registered model, in registry order."""
        from terracodec import api

        return [cls(m, device) for m in api.models() if m.get("kind", "image") == "image"]

    @property
    def trained(self) -> bool:
        return bool(self.entry.get("trained", True))

    def default_qualities(self) -> list[Any]:
        return list(self.entry.get("qualities", [None]))

    def settings(self) -> dict[str, Any]:
        import terracodec

        return {"library": f"terracodec {terracodec.__version__} (terracodec.api on arrays)",
                "arch": self.entry.get("arch"), "bands": self.entry.get("bands"),
                "trained": self.trained, "description": self.entry.get("description"),
                "format": ".tec container (counted), frames coded independently",
                "device": self.device or "cpu", "quality": self.quality_meaning}

    def _model_bands(self) -> list[str] | None:
        names = default_band_names(int(self.entry["bands"]))
        return list(names) if names else None

    def unsupported(self, x: np.ndarray, band_names: list[str | None] | None) -> str | None:
        bands = int(self.entry["bands"])
        if x.shape[-3] != bands:
            return f"model codes {bands} bands, the input has {x.shape[-3]}"
        wanted = self._model_bands()
        names = [normalize_band_name(b) for b in band_names or []]
        if wanted and names and all(names) and sorted(names) != sorted(wanted):
            return f"model codes bands {','.join(wanted)}, the input has {','.join(n or '?' for n in names)}"
        return None

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        """Bands are matched by name when `self.band_names` (set by the runner) names them all."""
        from terracodec import api

        x = check_uint16(x, 4)
        names = self.band_names if self.band_names and all(self.band_names) else None
        return api.encode(x, model=self.name, quality=quality, band_names=names, device=self.device)

    def decode(self, data: bytes) -> np.ndarray:
        from terracodec import api

        return np.asarray(api.decode(data, device=self.device).pixels)

    def payload_bytes(self, data: bytes) -> int:
        from terracodec import api

        return sum(f["bytes"] for f in api.info(data)["frame_info"])
