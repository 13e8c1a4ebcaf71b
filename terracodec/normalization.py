"""DN <-> normalised float: per-band standardisation with SSL4EO-S12 statistics.

TerraCodec v1 models were trained on SSL4EO-S12 v1.1 standardised per band,
`x = (DN - mean) / std`. The statistics are recorded here as published with the dataset (SSL4EO-S12 v1.1, `embed2scale/SSL4EO-S12-v1.1`
on Hugging Face; Blumenstiel et al. 2025) and reused verbatim in the embed2scale / TerraMind
training code (`S2L1C_MEAN`, `S2L1C_STD`, `S2L2A_MEAN`, `S2L2A_STD`). Those means include the
+1000 DN baseline offset; the reference package's README gives the same statistics with means
1000 DN lower, which is what its checkpoints expect (`Normalization.terracodec_v1`). Band orders:

* L1C, 13 bands: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B10 B11 B12
* L2A, 12 bands: B01 B02 B03 B04 B05 B06 B07 B08 B8A B09 B11 B12

Denormalisation runs in float64 on the CPU, so the DN that a decoder writes do not depend on
the device or thread count that produced the float tensor's neighbours; integer outputs are
rounded half to even and clipped to the dtype's range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from terracodec.errors import InputError

from terracodec.presets import (  # noqa: F401  (re-exported: the numbers live without torch)
    BASELINE_OFFSET, NO_OFFSET_SUFFIX, S2_L1C_MEAN, S2_L1C_STD, S2_L2A_MEAN, S2_L2A_STD, WITH_OFFSET_NAMES,
)


def baseline_shift(name: str, has_offset: bool | None) -> float:
    """DN to add to the means of normalisation `name` for a frame with / without the offset.

    A model trained without the offset (`...-no-offset`) codes a frame that has it with means
    +1000; a model whose statistics include it (plain SSL4EO-S12) codes a frame without it with
    means -1000. Anything else (identity, custom, S1, unknown `has_offset`) is left alone: 0.
    """
    if has_offset is True and name.endswith(NO_OFFSET_SUFFIX):
        return BASELINE_OFFSET
    if has_offset is False and name in WITH_OFFSET_NAMES:
        return -BASELINE_OFFSET
    return 0.0


@dataclass(frozen=True)
class Normalization:
    """Per-band `x = (dn - mean) / std` and its inverse.

    `normalize` and `denormalize` take a `[C, ...]` tensor or array (bands first) and return the
    same kind. `name` is informative ("ssl4eo-s12-l2a", ...), the numbers are what count.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = field(default="custom")

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise InputError("normalisation needs one mean and one std per band")
        if any(not np.isfinite(s) or s <= 0 for s in self.std):
            raise InputError("normalisation std must be positive and finite")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @property
    def bands(self) -> int:
        return len(self.mean)

    # -- presets -------------------------------------------------------------------------------
    @classmethod
    def ssl4eo_l1c(cls) -> "Normalization":
        return cls(S2_L1C_MEAN, S2_L1C_STD, "ssl4eo-s12-l1c")

    def without_baseline_offset(self) -> "Normalization":
        """The same statistics for data processed before baseline 04.00 (no +1000 DN offset).

        Without this, pre-2022 products such as OSCD land about one standard deviation low in
        every band, and cirrus B10 (std 46 DN) 22 standard deviations low.
        """
        return Normalization(
            tuple(m - BASELINE_OFFSET for m in self.mean), self.std, f"{self.name}{NO_OFFSET_SUFFIX}"
        )

    def shifted(self, offset: float) -> "Normalization":
        """The same statistics for data whose DN are `offset` higher (means + offset).

        How a frame with (or without) the baseline offset is coded by a model trained on data
        without (or with) it: the frame lands where the model expects, and decoding with the same
        shifted statistics gives back the frame's own DN.
        """
        if offset == 0:
            return self
        return Normalization(
            tuple(m + offset for m in self.mean), self.std, f"{self.name}{offset:+g}dn"
        )

    def shifted_bands(self, shifts: "list[float] | tuple[float, ...]") -> "Normalization":
        """Means + one shift per band (a frame's band centring, `terracodec.centring`); the same
        statistics for an empty list."""
        if not shifts or not any(shifts):
            return self
        if len(shifts) != self.bands:
            raise InputError(f"{len(shifts)} band shifts for {self.bands} bands")
        return Normalization(tuple(m + s for m, s in zip(self.mean, shifts)), self.std,
                             f"{self.name}+centred")

    def scaled(self, factor: float) -> "Normalization":
        """The same statistics for values that are DN / `factor` (reflectance 0..1 with factor
        10000): `(v - mean / f) / (std / f) = (f v - mean) / std`."""
        if factor == 1:
            return self
        return Normalization(
            tuple(m / factor for m in self.mean), tuple(s / factor for s in self.std),
            f"{self.name}/{factor:g}",
        )

    @classmethod
    def ssl4eo_l2a(cls) -> "Normalization":
        return cls(S2_L2A_MEAN, S2_L2A_STD, "ssl4eo-s12-l2a")

    @classmethod
    def terracodec_v1(cls, bands: int) -> "Normalization":
        """What TerraCodec v1 checkpoints expect: the reference package (terracodec 0.3.1,
        README "Normalization") standardises with SSL4EO-S12 v1.1 means 1000 DN lower than
        those published with the dataset (B01 L2A: 793.243, not 1793.243), i.e. data without
        the baseline offset; 12 bands: L2A, 13: L1C, otherwise identity."""
        base = cls.default_for(bands)
        return base.without_baseline_offset() if base.name.startswith("ssl4eo-s12") else base

    @classmethod
    def default_for(cls, bands: int) -> "Normalization":
        """SSL4EO-S12 L1C for 13 bands, L2A for 12; identity otherwise (e.g. S1 in dB)."""
        if bands == len(S2_L1C_MEAN):
            return cls.ssl4eo_l1c()
        if bands == len(S2_L2A_MEAN):
            return cls.ssl4eo_l2a()
        return cls((0.0,) * bands, (1.0,) * bands, "identity")

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> "Normalization":
        try:
            return cls(tuple(d["mean"]), tuple(d["std"]), str(d.get("name", "custom")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"invalid normalisation record: {exc}") from None

    # -- maths ---------------------------------------------------------------------------------
    def _check(self, x: Any) -> None:
        if x.ndim < 1 or x.shape[0] != self.bands:
            raise InputError(
                f"expected {self.bands} bands first, got an array of shape {tuple(x.shape)}"
            )

    def _stats(self, ndim: int) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.bands,) + (1,) * (ndim - 1)
        mean = np.asarray(self.mean, np.float64).reshape(shape)
        std = np.asarray(self.std, np.float64).reshape(shape)
        return mean, std

    def normalize(self, dn: Tensor | np.ndarray) -> Tensor | np.ndarray:
        """float32 `(dn - mean) / std`, computed in float64."""
        self._check(dn)
        mean, std = self._stats(dn.ndim)
        if isinstance(dn, Tensor):
            x = (dn.detach().to(torch.float64) - torch.from_numpy(mean).to(dn.device)) / (
                torch.from_numpy(std).to(dn.device)
            )
            return x.to(torch.float32)
        return ((np.asarray(dn, np.float64) - mean) / std).astype(np.float32)

    def denormalize(
        self, x: Tensor | np.ndarray, dtype: Any = None
    ) -> Tensor | np.ndarray:
        """DN from normalised values; rounded and clipped when `dtype` is an integer type.

        Runs in float64 on the CPU. Without `dtype` the result is float64 DN.
        """
        self._check(x)
        mean, std = self._stats(x.ndim)
        as_tensor = isinstance(x, Tensor)
        arr = x.detach().to("cpu", torch.float64).numpy() if as_tensor else np.asarray(x, np.float64)
        dn = arr * std + mean
        if dtype is not None:
            dn = _cast(dn, _numpy_dtype(dtype))
        return torch.from_numpy(np.ascontiguousarray(dn)) if as_tensor else dn


def _numpy_dtype(dtype: Any) -> np.dtype:
    if isinstance(dtype, torch.dtype):
        return torch.empty(0, dtype=dtype).numpy().dtype
    return np.dtype(dtype)


def _cast(dn: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        dn = np.clip(np.rint(np.nan_to_num(dn)), info.min, info.max)
    elif dtype.kind != "f":
        raise InputError(f"cannot denormalise to dtype {dtype}")
    return dn.astype(dtype)
