"""The JSON header of a `.tec` stream: what it says, and checking that it says it properly.

The container (`container.py`) only stores the header's bytes under a CRC; this module gives
them meaning (docs/FORMAT.md section 2). A header that passes the CRC but is malformed (a bug or
a forged file) is refused with CorruptStreamError instead of failing later in odd ways.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from terracodec.errors import CorruptStreamError
from terracodec.exact import SUPPORTED_DTYPES
from terracodec.io.raster import FrameMeta, Grid


@dataclass
class CodecInfo:
    """Which model coded the tiles, exactly (the weights hash pins the weights)."""

    name: str
    quality: Any
    weights_hash: str
    kind: str = "image"
    bands: int = 0
    band_names: list[str] | None = None
    multiple: int = 1
    #: Temporal models: where the entropy parameters were computed (`terracodec.temporal.coding.
    #: coder_platform`); a decoder names it when a stream fails to decode elsewhere. "" if unknown.
    coder_platform: str = ""


@dataclass
class FrameInfo:
    """One frame: the source file's metadata and how its bands map to the model's."""

    meta: FrameMeta
    band_order: list[int]  # band_order[k] = index (in the file) of the model's band k
    #: DN added to the header normalisation's means for this frame (Sentinel-2 baseline offset:
    #: +1000 / -1000, see terracodec/io/baseline.py); 0 in streams written before the field.
    dn_offset: float = 0.0


@dataclass
class StreamHeader:
    """Everything a decoder needs apart from the tile records."""

    codec: CodecInfo
    normalization: dict
    grid: Grid
    valid_range: tuple[float, float]
    tile_size: int
    frames: list[FrameInfo] = field(default_factory=list)
    writer: str = ""

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    def to_json(self) -> dict:
        """The header as a JSON-ready dict (floats that JSON cannot hold become strings)."""
        return {
            "codec": asdict(self.codec),
            "normalization": self.normalization,
            "grid": asdict(self.grid),
            "valid_range": [_num_out(v) for v in self.valid_range],
            "tiling": {"tile_size": self.tile_size, "padding": "edge"},
            "patch": "zlib",
            "frames": [
                dict(asdict(f.meta), nodata=_num_out(f.meta.nodata), band_order=f.band_order,
                     dn_offset=f.dn_offset)
                for f in self.frames
            ],
            "writer": self.writer,
        }

    @classmethod
    def from_json(cls, d: dict) -> "StreamHeader":
        """Parse and check a header dict; CorruptStreamError when it is malformed."""
        try:
            codec = CodecInfo(**_known(CodecInfo, d["codec"]))
            grid = Grid(**_known(Grid, d["grid"]))
            grid.transform = tuple(float(v) for v in grid.transform)
            frames = []
            for f in d["frames"]:
                f = dict(f)
                order = [int(i) for i in f.pop("band_order")]
                dn_offset = float(f.pop("dn_offset", 0.0))
                f["nodata"] = _num_in(f.get("nodata"))
                frames.append(FrameInfo(FrameMeta(**_known(FrameMeta, f)), order, dn_offset))
            header = cls(
                codec=codec,
                normalization=d["normalization"],
                grid=grid,
                valid_range=tuple(_num_in(v) for v in d["valid_range"]),
                tile_size=int(d["tiling"]["tile_size"]),
                frames=frames,
                writer=str(d.get("writer", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptStreamError(f"corrupt .tec file: malformed header ({exc})") from None
        header._check()
        return header

    def _check(self) -> None:
        g = self.grid
        bad = None
        if g.dtype not in SUPPORTED_DTYPES:
            bad = f"dtype {g.dtype!r}"
        elif not (g.height > 0 and g.width > 0 and g.count > 0 and len(g.transform) == 6):
            bad = "grid"
        elif g.count != self.codec.bands or not self.frames:
            bad = "band or frame count"
        elif self.tile_size < 1 or self.tile_size % max(1, self.codec.multiple):
            bad = "tile size"
        elif len(self.valid_range) != 2:
            bad = "valid range"
        for f in self.frames:
            if sorted(f.band_order) != list(range(g.count)):
                bad = "band order"
            if not math.isfinite(f.dn_offset):
                bad = "dn offset"
        if bad:
            raise CorruptStreamError(f"corrupt .tec file: malformed header ({bad})")


def _known(cls: type, d: dict) -> dict:
    """Keys of `d` that `cls` knows: a later minor format version may add keys (FORMAT.md)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _num_out(v: float | None) -> float | str | None:
    """JSON has no NaN or infinity: write them as strings."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _num_in(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        if v not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad number {v!r}")
        return float(v)
    return float(v)
