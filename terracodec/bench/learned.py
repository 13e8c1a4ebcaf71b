"""Every registered terracodec model as a benchmark codec, through the public API.

Coding goes through `terracodec.api.encode` / `decode` on arrays, exactly what a user gets, so
the rate includes the `.tec` container (header, tile index, CRCs, the lossless layer for
out-of-range pixels); `payload_bytes` is the sum of the tile records alone. A series
[T, C, H, W] is one `.tec` stream (one header):

* image models code each frame on its own, as `tec encode t1.tif t2.tif` does;
* temporal models (TEC-TT) code each tile's frames in time order, each conditioned on the
  latents of the previous frames of that tile (two for the token TT, one for tec-tt-s2l2a), so the first date costs the most
  and later dates less (`frame_bytes` gives the split).

Weights: a registered model loads its own (`terracodec/weights/`); models that ship none
(`requires_weights`, e.g. the TerraCodec v1 TEC-TT entries) take a file, as `--weights` does
for `tec encode`: one file for every quality swept (a v1 checkpoint holds one rate point, so
the quality only labels it; a variable-rate file codes each quality with its gain), or one file
per quality. Variable-rate models keep one weights file for all their qualities; the API
caches the loaded model per (name, quality), and the runner sweeps one quality at a time, so
each quality is loaded once, in the untimed warm-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from terracodec.bands import default_band_names, normalize_band_name
from terracodec.bench.base import Codec, check_uint16
from terracodec.errors import InputError

#: quality -> weights file; the key None holds a file for every quality.
WeightsMap = dict[Any, Path]


class TerracodecModel(Codec):
    """A registry model (`terracodec.api.models()`); one instance per model name."""

    series = True
    quality_meaning = "registry quality level (1 = lowest rate)"

    def __init__(self, entry: dict[str, Any], device: str | None = None,
                 weights: WeightsMap | None = None) -> None:
        super().__init__()
        self.entry = dict(entry)
        self.name = entry["name"]  # instance attribute: one codec per registered model
        self.device = device
        self.weights: WeightsMap = {q: Path(p) for q, p in (weights or {}).items()}
        self._bands_cache: tuple[int, list[str] | None] | None = None

    @classmethod
    def registered(cls, device: str | None = None,
                   weights: dict[str, WeightsMap] | None = None) -> list["TerracodecModel"]:
        """One codec per registered model (image and temporal), in registry order;
        `weights` maps model names to their weights files."""
        from terracodec import api

        weights = weights or {}
        return [cls(m, device, weights.get(m["name"])) for m in api.models()]

    @property
    def kind(self) -> str:
        return str(self.entry.get("kind", "image"))

    @property
    def requires_weights(self) -> bool:
        """The model ships no weights here (the registry listing says so)."""
        return bool(self.entry.get("requires_weights", False))

    @property
    def trained(self) -> bool:
        return bool(self.entry.get("trained", True))

    def missing_weights(self) -> str | None:
        """Why this model cannot code here (it ships no weights and none were given), or None."""
        if self.requires_weights and not self.weights:
            return "ships no weights here: pass --weights PATH (a TerraCodec v1 checkpoint or .safetensors)"
        return None

    def default_qualities(self) -> list[Any]:
        explicit = sorted(q for q in self.weights if q is not None)
        if explicit:
            return explicit
        qualities = list(self.entry.get("qualities", [None]))
        if self.requires_weights and None in self.weights:
            return [qualities[len(qualities) // 2]]  # one file, one rate point: the default quality
        return qualities

    def settings(self) -> dict[str, Any]:
        import terracodec

        if self.kind == "temporal":
            fmt = (".tec container (counted); each tile's frames in time order, each conditioned "
                   "on the previous frames' latents (the first date is coded alone)")
        else:
            fmt = ".tec container (counted), frames coded independently"
        out = {"library": f"terracodec {terracodec.__version__} (terracodec.api on arrays)",
               "kind": self.kind, "arch": self.entry.get("arch"), "bands": self.entry.get("bands"),
               "trained": self.trained, "description": self.entry.get("description"),
               "format": fmt, "device": self.device or "cpu", "quality": self.quality_meaning}
        if self.weights:
            out["weights"] = {("all" if q is None else str(q)): str(p) for q, p in self.weights.items()}
        return out

    def _weights_for(self, quality: Any) -> Path | None:
        if not self.weights:
            return None
        path = self.weights.get(quality, self.weights.get(None))
        if path is None:
            raise InputError(f"{self.name}: no weights file for quality {quality!r} "
                             f"(given for {sorted(str(q) for q in self.weights)})")
        return path

    def _bands(self) -> tuple[int, list[str] | None, int | None]:
        """(band count, band names, fewest bands a frame may have) the model codes: those of the
        model itself (the registry's entry, or the given weights file, which may be a model of
        another size than the entry)."""
        if self._bands_cache is None:
            from terracodec.centring import min_present_bands
            from terracodec.zoo import load_model

            quality = self.default_qualities()[0]
            model = load_model(self.name, quality, weights=self._weights_for(quality) if self.weights else None)
            bands, names, least = int(model.bands), model.config.get("band_names"), min_present_bands(model)
            del model
            if names is None:
                names = default_band_names(bands)
            names = [normalize_band_name(b) or b for b in names] if names else None
            self._bands_cache = (bands, names, least)
        return self._bands_cache

    def unsupported(self, x: np.ndarray, band_names: list[str | None] | None) -> str | None:
        missing = self.missing_weights()
        if missing:
            return missing
        bands, wanted, least = self._bands()
        names = [normalize_band_name(b) for b in band_names or []]
        if wanted and names and all(names) and least is not None:
            from terracodec.bands import match_bands

            try:
                match_bands(names, wanted, bands, least)
                return None
            except InputError as exc:
                return str(exc)
        if x.shape[-3] != bands:
            return f"model codes {bands} bands, the input has {x.shape[-3]}"
        if wanted and names and all(names) and sorted(names) != sorted(wanted):
            return f"model codes bands {','.join(wanted)}, the input has {','.join(n or '?' for n in names)}"
        return None

    def encode(self, x: np.ndarray, quality: Any) -> bytes:
        """Bands are matched by name when `self.band_names` (set by the runner) names them all."""
        from terracodec import api

        x = check_uint16(x, 4)
        names = self.band_names if self.band_names and all(self.band_names) else None
        return api.encode(x, model=self.name, quality=quality, band_names=names, device=self.device,
                          weights=self._weights_for(quality))

    def decode(self, data: bytes) -> np.ndarray:
        from terracodec import api

        weights = self._weights_for(api.info(data)["quality"]) if self.weights else None
        return np.asarray(api.decode(data, device=self.device, weights=weights).pixels)

    def payload_bytes(self, data: bytes) -> int:
        return sum(self.frame_bytes(data))

    def frame_bytes(self, data: bytes) -> list[int]:
        """Bytes of the tile records of each frame (the container header not included)."""
        from terracodec import api

        return [f["bytes"] for f in api.info(data)["frame_info"]]
