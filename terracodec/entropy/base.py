"""What every entropy model shares: quantisation, the likelihood floor, the integer tables and
the plumbing to the rANS coder.

Tables live in three int32 buffers with CompressAI's names (`_quantized_cdf` [K, Lmax + 2],
`_cdf_length` [K], `_offset` [K]; layout in `cdf.py`), so that they travel with the weights and
CompressAI checkpoints load. A state dict whose tables have another size than the module's
(for example a checkpoint saved after `update()`, loaded into a fresh module) resizes them.

`compress` codes a whole tensor into ONE rANS stream (all batch items, C order), unlike
CompressAI's list of strings per batch item: a tile is our unit of storage, and one stream per
tile keeps the coder's lanes busy and the container simple. The stream is exactly the bytes
`rans_encode` returns; the table hash is recorded by the caller (model / container), not here.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from terracodec.entropy.cdf import PRECISION, table_hash
from terracodec.errors import InputError, ModelError
from terracodec.layers.bounds import LowerBound


class EntropyModel(nn.Module):
    """Base class; subclasses define `forward`, `update` and how indexes are built."""

    _offset: Tensor
    _quantized_cdf: Tensor
    _cdf_length: Tensor
    # Buffers whose size depends on the tables (resized when a state dict is loaded).
    _resizable_buffers: tuple[str, ...] = ("_offset", "_quantized_cdf", "_cdf_length")

    def __init__(self, likelihood_bound: float = 1e-9, entropy_coder_precision: int = PRECISION):
        super().__init__()
        if int(entropy_coder_precision) != PRECISION:
            raise ValueError(f"entropy_coder_precision must be {PRECISION} (rANS contract)")
        self.entropy_coder_precision = PRECISION
        self.use_likelihood_bound = likelihood_bound > 0
        if self.use_likelihood_bound:
            self.likelihood_lower_bound = LowerBound(likelihood_bound)
        self.register_buffer("_offset", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("_quantized_cdf", torch.zeros(0, dtype=torch.int32))
        self.register_buffer("_cdf_length", torch.zeros(0, dtype=torch.int32))

    # ----------------------------------------------------------------- quantisation
    @staticmethod
    def quantize(inputs: Tensor, mode: str, means: Optional[Tensor] = None) -> Tensor:
        """`noise`: add U(-0.5, 0.5) (training proxy); `dequantize`: round around `means`;
        `symbols`: the int32 integers `round(inputs - means)` that are coded."""
        if mode == "noise":
            return inputs + torch.empty_like(inputs).uniform_(-0.5, 0.5)
        if mode not in ("dequantize", "symbols"):
            raise ValueError(f"invalid quantization mode {mode!r}")
        centred = inputs - means if means is not None else inputs
        rounded = torch.round(centred)
        if mode == "dequantize":
            return rounded + means if means is not None else rounded
        return to_symbols(rounded)

    @staticmethod
    def dequantize(
        symbols: Tensor, means: Optional[Tensor] = None, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        if means is not None:
            return symbols.to(means.dtype) + means
        return symbols.to(dtype)

    def _bound_likelihood(self, likelihood: Tensor) -> Tensor:
        if self.use_likelihood_bound:
            return self.likelihood_lower_bound(likelihood)
        return likelihood

    # ----------------------------------------------------------------- tables
    @property
    def offset(self) -> Tensor:
        return self._offset

    @property
    def quantized_cdf(self) -> Tensor:
        return self._quantized_cdf

    @property
    def cdf_length(self) -> Tensor:
        return self._cdf_length

    def has_tables(self) -> bool:
        return self._quantized_cdf.numel() > 0

    def _set_tables(self, quantized_cdf: Tensor, cdf_length: Tensor, offset: Tensor) -> None:
        device = self._quantized_cdf.device
        self._quantized_cdf = quantized_cdf.to(device=device, dtype=torch.int32).contiguous()
        self._cdf_length = cdf_length.to(device=device, dtype=torch.int32).reshape(-1)
        self._offset = offset.to(device=device, dtype=torch.int32).reshape(-1)

    def _check_tables(self) -> None:
        cdf, length, offset = self._quantized_cdf, self._cdf_length, self._offset
        if cdf.numel() == 0 or length.numel() == 0 or offset.numel() == 0:
            raise ModelError("entropy model tables are not built: call update() first")
        if cdf.dim() != 2 or length.dim() != 1 or offset.dim() != 1:
            raise ModelError(f"invalid CDF table shapes {tuple(cdf.shape)}")
        if not (cdf.shape[0] == length.shape[0] == offset.shape[0]):
            raise ModelError("CDF table, lengths and offsets disagree on the number of rows")

    def table_hash(self) -> str:
        """sha256 hex of the integer tables (+ lengths + offsets); streams record it."""
        self._check_tables()
        return table_hash(self._quantized_cdf, self._cdf_length, self._offset)

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        for name in self._resizable_buffers:
            incoming = state_dict.get(prefix + name)
            current = getattr(self, name, None)
            if isinstance(incoming, Tensor) and isinstance(current, Tensor):
                if incoming.shape != current.shape:
                    setattr(
                        self,
                        name,
                        torch.empty(incoming.shape, dtype=current.dtype, device=current.device),
                    )
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    # ----------------------------------------------------------------- coding
    def _checked_indexes(self, indexes: Tensor) -> Tensor:
        idx = indexes.reshape(-1)
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise InputError(f"table indexes must be integers, got {idx.dtype}")
        idx = idx.to(torch.int32)
        rows = self._quantized_cdf.shape[0]
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= rows):
            raise InputError(f"table indexes must lie in [0, {rows})")
        return idx

    def compress_symbols(self, symbols: Tensor, indexes: Tensor) -> Any:
        """rANS-code int32 `symbols` with table rows `indexes` (same number of elements): a
        stream, or inside `rans_chain.deferred_coding` a `Segment` for the tile's chain."""
        from terracodec.entropy.rans import rans_encode
        from terracodec.entropy.rans_chain import Segment, deferring

        self._check_tables()
        if symbols.numel() != indexes.numel():
            raise InputError("symbols and indexes must have the same number of elements")
        if deferring():
            return Segment(symbols.reshape(-1).to("cpu", torch.int32), self._checked_indexes(indexes).cpu(),
                           self._quantized_cdf, self._cdf_length, self._offset)
        return rans_encode(
            symbols.reshape(-1).to(torch.int32),
            self._checked_indexes(indexes),
            self._quantized_cdf,
            self._cdf_length,
            self._offset,
        )

    def decompress_symbols(self, data: Any, indexes: Tensor) -> Tensor:
        """Inverse of `compress_symbols`: int32 symbols shaped like `indexes`, from a stream or
        from the tile's `rans_chain.ChainReader` (its next segment)."""
        from terracodec.entropy.rans import _check_tables, rans_decode
        from terracodec.entropy.rans_chain import ChainReader

        self._check_tables()
        if isinstance(data, ChainReader):
            tables = _check_tables(self._quantized_cdf, self._cdf_length, self._offset, torch.device("cpu"))
            values = data.read(self._checked_indexes(indexes), *tables)
            return values.to(device=indexes.device, dtype=torch.int32).reshape(indexes.shape)
        values = rans_decode(
            data,
            self._checked_indexes(indexes),
            self._quantized_cdf,
            self._cdf_length,
            self._offset,
        )
        return values.to(device=indexes.device, dtype=torch.int32).reshape(indexes.shape)

    def compress(self, inputs: Tensor, indexes: Tensor, means: Optional[Tensor] = None) -> bytes:
        """Code the whole tensor `round(inputs - means)` with table rows `indexes`."""
        if inputs.shape != indexes.shape:
            raise InputError(
                f"inputs {tuple(inputs.shape)} and indexes {tuple(indexes.shape)} differ in shape"
            )
        return self.compress_symbols(self.quantize(inputs, "symbols", means), indexes)

    def decompress(
        self,
        data: bytes,
        indexes: Tensor,
        means: Optional[Tensor] = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Tensor shaped like `indexes`: decoded symbols + `means` (or cast to `dtype`)."""
        symbols = self.decompress_symbols(data, indexes)
        if means is not None:
            means = means.expand(indexes.shape) if means.shape != indexes.shape else means
        return self.dequantize(symbols, means, dtype)


def to_symbols(rounded: Tensor) -> Tensor:
    """int32 symbols from already-rounded values; refuses what int32 cannot hold exactly."""
    if rounded.numel() and not bool(
        (torch.isfinite(rounded) & (rounded >= -(2**31)) & (rounded < 2**31)).all()
    ):
        raise InputError("latent values are not finite or do not fit in int32")
    return rounded.to(torch.int32)
