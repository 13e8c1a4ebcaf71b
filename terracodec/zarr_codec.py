"""`TerracodecCodec`: a zarr-python 3 array -> bytes codec that stores each chunk as a `.tec` stream.

    from terracodec.zarr_codec import TerracodecCodec
    zarr.create_array(store, shape=(13, 1024, 1024), chunks=(13, 256, 256), dtype="uint16",
                      serializer=TerracodecCodec(model="tec-fp-s2l1c", quality=2), compressors=None)
    ds.to_zarr(store, encoding={"reflectance": {"serializer": TerracodecCodec(...),
                                                "compressors": None, "chunks": (1, 13, 256, 256)}})

Zarr finds the codec by its name, "terracodec" (entry point group `zarr.codecs`; importing
this module registers it too), so `zarr.open_array` and `xarray.open_zarr` decode without
further set-up, chunk by chunk (under Dask, in parallel). The codec is LOSSY: a chunk reads
back as `terracodec.decode(terracodec.encode(chunk))`, not as written; and since zarr
writes a partly covered chunk by decoding it, merging and coding it again, write whole chunks
(region writes aligned to the chunks) or each rewrite loses a little more.

What a chunk must be (`validate` refuses anything else, before anything is written):

* dims (band, y, x) or (time, band, y, x); every band of the model in ONE chunk, in the
  model's order (or in the order `band_names` gives); frames of a 4-D chunk are one stream's
  frames (temporal models code them in sequence);
* y and x chunk sizes multiples of the model's `multiple` (16 for TEC-FP, 64 for TEC-ELIC);
  the array itself may be any size (zarr fills edge chunks with the fill value);
* dtype uint16 or int16 (Sentinel-2 DN, what the models code) or float32 (reflectance 0..1
  is coded as DN = 10000 x value and decoded back; other floats as DN).

Configuration (JSON, stored in the array's metadata): `model` (a name of `terracodec.models()`
that needs no weights file), `quality` (None: the model's default, filled in when the array is
created), `band_names` (optional), `tile_size` (pixels; a chunk larger than a tile is coded as
several tiles of one stream) and `baseline_offset` ("auto", true or false: whether the values
carry Sentinel-2's +1000 DN offset; "auto" looks at a band named B10, else codes as the model's
own kind with a warning).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from terracodec.api.args import DEFAULT_TILE_SIZE, check_baseline_offset, check_quality, check_tile_size
from terracodec.errors import CorruptStreamError, InputError

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec

#: The codec's name in zarr metadata and in the `zarr.codecs` entry point group.
CODEC_NAME = "terracodec"
#: Chunk dtypes the codec stores (the models code Sentinel-2 DN; float32 as reflectance or DN).
DTYPES = ("uint16", "int16", "float32")


class ChunkLayoutError(InputError, ValueError):
    """An array whose chunks the codec cannot store (a ValueError too, as zarr's own checks)."""


@dataclass(frozen=True)
class TerracodecCodec(ArrayBytesCodec):
    """Each chunk -> one `.tec` stream coded by a named TerraCodec model (lossy)."""

    is_fixed_size = False

    model: str
    quality: int | float | str | None
    band_names: tuple[str, ...] | None
    tile_size: int
    baseline_offset: str | bool

    def __init__(self, *, model: str = "tec-fp-s2l1c", quality: Any = None,
                 band_names: Any = None, tile_size: int = DEFAULT_TILE_SIZE,
                 baseline_offset: str | bool = "auto") -> None:
        if not isinstance(model, str) or not model:
            raise InputError(f"model must be a model name, got {model!r}")
        if band_names is not None:
            if isinstance(band_names, str) or not all(isinstance(b, str) for b in band_names):
                raise InputError(f"band_names must be a list of strings, got {band_names!r}")
            band_names = tuple(band_names)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "quality", check_quality(quality))
        object.__setattr__(self, "band_names", band_names)
        object.__setattr__(self, "tile_size", check_tile_size(tile_size))
        object.__setattr__(self, "baseline_offset", check_baseline_offset(baseline_offset))

    # -- metadata ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, CODEC_NAME, require_configuration=False)
        known = {"model", "quality", "band_names", "tile_size", "baseline_offset"}
        unknown = sorted(set(config or {}) - known)
        if unknown:  # written by a newer terracodec, or not by terracodec at all
            raise InputError(f"terracodec codec configuration has unknown keys: {', '.join(unknown)}")
        return cls(**(config or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        config: dict[str, JSON] = {"model": self.model, "tile_size": self.tile_size,
                                   "baseline_offset": self.baseline_offset}
        if self.quality is not None:
            config["quality"] = self.quality
        if self.band_names is not None:
            config["band_names"] = list(self.band_names)
        return {"name": CODEC_NAME, "configuration": config}

    def evolve_from_array_spec(self, array_spec: ArraySpec) -> Self:
        """The model's default quality written down, so that the metadata says what coded."""
        if self.quality is not None:
            return self
        return replace(self, quality=_model(self.model, None)[1])

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        """Refuse, in one line, an array whose chunks are not what the model codes."""
        if not isinstance(chunk_grid, RegularChunkGrid):
            raise ChunkLayoutError("terracodec: the array needs a regular chunk grid")
        chunks = tuple(chunk_grid.chunk_shape)
        check_layout(self, tuple(shape), chunks, np.dtype(dtype.to_native_dtype()))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("terracodec chunks have a variable size")

    # -- chunks ------------------------------------------------------------------------------
    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        from terracodec.api.encoding import encode

        pixels = np.ascontiguousarray(chunk_array.as_numpy_array())
        codec, quality = _model(self.model, self.quality)
        names = list(self.band_names) if self.band_names else _model_bands(codec)
        stream = encode(pixels, None, model=self.model, quality=quality, band_names=names,
                        tile_size=self.tile_size, baseline_offset=self.baseline_offset)
        return chunk_spec.prototype.buffer.from_bytes(stream)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        from terracodec.api.decoding import decode

        pixels = decode(chunk_bytes.to_bytes()).pixels
        if len(chunk_spec.shape) == 3 and pixels.shape[0] == 1:
            pixels = pixels[0]
        dtype = np.dtype(chunk_spec.dtype.to_native_dtype())
        if pixels.shape != tuple(chunk_spec.shape) or pixels.dtype != dtype:
            raise CorruptStreamError(
                f"terracodec chunk holds {pixels.dtype} {pixels.shape}, the array expects "
                f"{dtype} {tuple(chunk_spec.shape)}")
        return chunk_spec.prototype.nd_buffer.from_numpy_array(pixels)

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)


def check_layout(codec: TerracodecCodec, shape: tuple[int, ...], chunks: tuple[int, ...],
                 dtype: np.dtype) -> None:
    """ChunkLayoutError unless arrays of `shape` cut into `chunks` of `dtype` suit `codec`."""
    if len(shape) not in (3, 4):
        raise ChunkLayoutError(
            f"terracodec stores (band, y, x) or (time, band, y, x) arrays, not {len(shape)}-D ones")
    if dtype.name not in DTYPES:
        raise ChunkLayoutError(
            f"terracodec stores {', '.join(DTYPES)} arrays (Sentinel-2 DN), not {dtype.name}")
    model, _ = _model(codec.model, codec.quality)
    bands, multiple = int(model.bands), int(model.multiple)
    if shape[-3] != bands or chunks[-3] != bands:
        raise ChunkLayoutError(
            f"terracodec model {codec.model} codes {bands} bands in one chunk; the array has "
            f"{shape[-3]} bands in chunks of {chunks[-3]}")
    if codec.band_names is not None and len(codec.band_names) != bands:
        raise ChunkLayoutError(f"terracodec: {len(codec.band_names)} band_names for {bands} bands")
    if chunks[-2] % multiple or chunks[-1] % multiple:
        raise ChunkLayoutError(
            f"terracodec model {codec.model} needs y and x chunks that are multiples of {multiple} px, "
            f"got {chunks[-2]} x {chunks[-1]}")


def _model(name: str, quality: Any) -> tuple[Any, Any]:
    """(codec, quality) of a named model (loaded once per process), as a ChunkLayoutError
    when the name is no model this codec can use."""
    from terracodec.api.resolve import resolve_model
    from terracodec.errors import ModelError
    from terracodec.zoo.table import MODELS

    entry = MODELS.get(name)
    if entry is None:
        raise ChunkLayoutError(f"terracodec: no model named {name!r} (see terracodec.models())")
    if entry.get("requires_weights"):
        raise ChunkLayoutError(f"terracodec: model {name} needs a weights file; the Zarr codec "
                               "takes models that ship their weights")
    try:
        codec, _, resolved = resolve_model(name, quality, None)
    except ModelError as exc:
        raise ChunkLayoutError(f"terracodec: {exc}") from None
    return codec, resolved


def _model_bands(codec: Any) -> list[str] | None:
    from terracodec.api.resolve import model_band_names

    return model_band_names(codec)


register_codec(CODEC_NAME, TerracodecCodec)

__all__ = ["CODEC_NAME", "ChunkLayoutError", "DTYPES", "TerracodecCodec", "check_layout"]
