"""Cloud-aware coding: which tokens of a temporal frame are filled (predicted) instead of sent.

    cloud raster (non-zero = cloud) --16x16 blocks, cover > CLOUD_COVER--> cloudy latent cells
        --windows of the model's tokenizer, the fill mode--> filled tokens [windows, 16]
        --zlib(packbits)--> the tile payload (version 3), read back by the decoder

A filled token costs 0 bits and both sides set it to round(mean) of the integer entropy path
(`coding.predicted_token`), from the previous frames and the tokens before it: the cloud is
replaced by what the model expects there. Modes (the paper's):

* `interleave`: only the cloudy tokens are filled; the clear ones after them are still sent.
* `propagate`: in each window, every token from the first cloudy one on is filled.

A model with latent repacking (FlexTEC) carries channel slices of every position in each
token, so there a window is filled whole when its cloudy cells exceed `CLOUD_COVER`.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch
from torch import Tensor

from terracodec.errors import CorruptStreamError, InputError
from terracodec.temporal.windows import current_windows

#: A latent cell (16 x 16 pixels) counts as cloudy when more than this share of it is cloud.
CLOUD_COVER = 0.5
FILL_MODES = ("interleave", "propagate")
CELL = 16


def cloudy_cells(mask: np.ndarray, cover: float = CLOUD_COVER) -> np.ndarray:
    """`[H, W]` cloud mask (non-zero = cloud) -> `[ceil(H/16), ceil(W/16)]` bool cells; pixels
    beyond the raster count as clear."""
    h, w = mask.shape
    ph, pw = -(-h // CELL) * CELL, -(-w // CELL) * CELL
    padded = np.zeros((ph, pw), np.float32)
    padded[:h, :w] = mask != 0
    share = padded.reshape(ph // CELL, CELL, pw // CELL, CELL).mean(axis=(1, 3))
    return share > cover


def tile_cells(cells: np.ndarray, row_off: int, col_off: int, padded_h: int, padded_w: int,
               outside: bool = False) -> np.ndarray:
    """The cells of a tile at pixel offset (row_off, col_off) whose padded size is
    padded_h x padded_w (tiles start on the 16 px grid); cells wholly past the frame (padding,
    no pixel of the frame) are `outside`."""
    r0, c0 = row_off // CELL, col_off // CELL
    out = np.full((padded_h // CELL, padded_w // CELL), outside, bool)
    part = cells[r0:r0 + out.shape[0], c0:c0 + out.shape[1]]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def filled_tokens(cells: Tensor, mode: str, repacked: bool, window: int = 4) -> Tensor:
    """`[B, h, w]` cloudy cells -> `[B * windows, window**2]` bool filled tokens, in the order of
    the tokenizer's current windows."""
    if mode not in FILL_MODES:
        raise InputError(f"unknown cloud fill mode {mode!r} (expected one of {', '.join(FILL_MODES)})")
    per_position = current_windows(cells[:, None].float(), window)[..., 0] > 0.5  # [n, 16]
    if repacked:
        whole = per_position.float().mean(1) > CLOUD_COVER
        return whole[:, None].expand_as(per_position).clone()
    if mode == "propagate":
        return torch.cumsum(per_position.int(), 1) > 0
    return per_position


def filled_grid(cloud: Tensor, mode: str, repacked: bool = False, window: int = 4) -> tuple[Tensor, Tensor]:
    """`[h, w]` cloudy cells (of a tile, or of a frame whose tiles start on whole windows) on the
    grid padded to whole windows (padding clear) -> (filled tokens `[windows, window**2]`, the
    payload's record; `[H, W]` bool filled cells of the padded grid). A model that codes latent
    cells rather than tokens (`tec-tt-elic`) fills these cells: the modes act on each window's
    cells in raster order, as on tokens."""
    h, w = (-(-n // window) * window for n in cloud.shape)
    grid = torch.zeros((h, w), dtype=torch.bool)
    grid[: cloud.shape[0], : cloud.shape[1]] = cloud.bool()
    tokens = filled_tokens(grid[None], mode, repacked, window)
    return tokens, torch.from_numpy(token_cells(tokens, h, w, window))


def recorded_cells(mask: bytes, h: int, w: int, window: int = 4) -> np.ndarray:
    """The filled cells a payload's mask records for an `h x w` cell grid: `[H, W]` bool over the
    grid padded to whole windows (the inverse of `filled_grid`'s record)."""
    ph, pw = -(-h // window) * window, -(-w // window) * window
    return token_cells(unpack_mask(mask, (ph // window) * (pw // window), window * window), ph, pw, window)


def filled_share(cells: np.ndarray, mode: str, repacked: bool, window: int = 4,
                 size: tuple[int, int] | None = None) -> float:
    """Share of a frame's pixels (`size` = (H, W); default: whole cells) whose latent cells are
    filled, from its cloudy cells (windows on the frame's grid, as the tiles' windows are: tiles
    start on multiples of 64 px): what the decoded `.filled.tif` marks."""
    h, w = cells.shape
    _, filled = filled_grid(torch.from_numpy(np.asarray(cells, bool)), mode, repacked, window)
    rows, cols = size or (h * CELL, w * CELL)
    return round(float(cell_pixels(filled.numpy(), rows, cols).mean()), 6)


def token_cells(filled: Tensor, h: int, w: int, window: int = 4) -> np.ndarray:
    """`[windows, window**2]` filled tokens of an `h x w` cell grid -> `[h, w]` bool filled cells
    (the inverse of `filled_tokens`' layout; a repacked model's whole windows come back whole)."""
    from terracodec.temporal.windows import merge_windows

    return merge_windows(filled[:, :, None].float(), h, w, window)[0, 0].numpy() > 0.5


def cell_pixels(cells: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """`[h, w]` cells -> `[rows, cols]` pixels (16 x 16 each, cut at `rows` x `cols`)."""
    return np.kron(cells, np.ones((CELL, CELL), bool))[:rows, :cols]


def pack_mask(filled: Tensor) -> bytes:
    return zlib.compress(np.packbits(filled.cpu().numpy().reshape(-1)).tobytes(), 9)


def unpack_mask(data: bytes, windows: int, steps: int) -> Tensor:
    """Inverse of `pack_mask` for a tile of `windows` windows; CorruptStreamError otherwise."""
    need = -(-windows * steps // 8)
    try:
        raw = zlib.decompressobj().decompress(data, need + 1)
    except zlib.error:
        raise CorruptStreamError("corrupt tile payload: the filled-token mask does not inflate") from None
    if len(raw) != need:
        raise CorruptStreamError("corrupt tile payload: the filled-token mask has the wrong size")
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))[: windows * steps]
    return torch.from_numpy(bits.astype(bool)).reshape(windows, steps)


def frame_payloads(payloads: list[bytes], filled: Tensor | None) -> list[bytes]:
    """Each tile's payload of a coded frame (`payloads`: the coder's, one per tile): as it is, or
    version 3 around it when the tile has filled tokens (`filled` `[tiles * windows, 16]` or
    None)."""
    from terracodec.models.payload import pack_filled

    out = []
    per_tile = filled.shape[0] // len(payloads) if filled is not None else 0
    for b, payload in enumerate(payloads):
        mask = filled[b * per_tile:(b + 1) * per_tile] if filled is not None else None
        out.append(pack_filled(pack_mask(mask), payload) if mask is not None and bool(mask.any()) else payload)
    return out


def read_payloads(data: list[bytes], windows: int, steps: int) -> tuple[list[bytes], Tensor | None]:
    """(the inner payloads, filled tokens `[tiles * windows, steps]` or None) of a frame's tile
    payloads (inverse of `frame_payloads`; `windows` per tile)."""
    from terracodec.models.payload import split_filled

    parts = [split_filled(d) for d in data]
    if all(m is None for m, _ in parts):
        return [p for _, p in parts], None
    masks = [torch.zeros(windows, steps, dtype=torch.bool) if m is None else unpack_mask(m, windows, steps)
             for m, _ in parts]
    return [p for _, p in parts], torch.cat(masks)


__all__ = ["frame_payloads", "read_payloads", "CLOUD_COVER", "FILL_MODES", "cell_pixels", "cloudy_cells", "filled_grid", "filled_share", "filled_tokens", "pack_mask", "recorded_cells", "tile_cells", "token_cells", "unpack_mask"]
