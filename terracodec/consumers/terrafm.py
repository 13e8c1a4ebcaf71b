"""TerraFM-B / TerraFM-L (mbzuai-oryx/TerraFM): a DINO-style ViT/16 with one patch embedding per
modality, so that its state dict loads the published checkpoints unchanged.

    x [B, 12 or 2, H, W] --conv 16x16 of the modality (to 3D)--> + modality vector
      --> proj1 (no bias) --> LayerNorm --> proj2 --> proj3 (to D)      = patch tokens [B, N, D]
      --> [CLS] + tokens + positions (bicubic-resized from 14x14)
      --> depth x (x + attn(norm1 x); x + mlp(norm2 x)) --> norm       = features [B, 1+N, D]

Its 16-px patch grid is our latent grid (1/16), so patch token (r, c) covers the same 160 m as
latent cell (r, c). The modality is an explicit argument: the public `prepare_tokens` sends any
12-band input through the L1C embedding, which is wrong for L2A data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terracodec.errors import InputError, ModelError

PATCH = 16
PRETRAIN_SIZE = 224  # the positional table is 14 x 14 (+ CLS)
MODALITIES = ("s2_l2a", "s2_l1c", "s1")
#: S2 bands TerraFM reads, in order (the SSL4EO order without B10), and S1's.
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
S1_BANDS = ("VV", "VH")


@dataclass(frozen=True)
class TerraFMSize:
    name: str
    dim: int
    depth: int
    heads: int


SIZES = {"b": TerraFMSize("terrafm-b", 768, 12, 12), "l": TerraFMSize("terrafm-l", 1024, 24, 16)}


class TokenProjection(nn.Module):
    """The modality tokens' shared projection (3D -> 3D -> D)."""

    def __init__(self, dim: int, wide: int) -> None:
        super().__init__()
        self.proj1 = nn.Linear(wide, wide, bias=False)
        self.norm_input = nn.LayerNorm(wide)
        self.proj2 = nn.Linear(wide, wide)
        self.proj3 = nn.Linear(wide, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj3(self.proj2(self.norm_input(self.proj1(x))))


class ModalityPatchEmbed(nn.Module):
    """One 16x16 convolution and one learned offset per modality, then the shared projection."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        wide = 3 * dim
        self.patch_size = PATCH
        self.conv2d_s2_l2a = nn.Conv2d(len(S2_BANDS), wide, PATCH, PATCH)
        self.conv2d_s2_l1c = nn.Conv2d(len(S2_BANDS), wide, PATCH, PATCH)
        self.conv2d_s1 = nn.Conv2d(len(S1_BANDS), wide, PATCH, PATCH)
        self.s2_l2a_embed = nn.Parameter(torch.zeros(1, wide))
        self.s2_l1c_embed = nn.Parameter(torch.zeros(1, wide))
        self.s1_embed = nn.Parameter(torch.zeros(1, wide))
        self.projection = TokenProjection(dim, wide)

    def forward(self, x: Tensor, modality: str) -> Tensor:
        conv = getattr(self, f"conv2d_{modality}")
        tokens = conv(x).flatten(2).transpose(1, 2) + getattr(self, f"{modality}_embed")
        return self.projection(tokens)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TerraFM(nn.Module):
    """The encoder (no head). `patch_tokens` is what consumers use."""

    def __init__(self, size: TerraFMSize) -> None:
        super().__init__()
        self.size, self.arch = size, size.name
        grid = PRETRAIN_SIZE // PATCH
        self.patch_embed = ModalityPatchEmbed(size.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, size.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, size.dim))
        self.blocks = nn.ModuleList(Block(size.dim, size.heads) for _ in range(size.depth))
        self.norm = nn.LayerNorm(size.dim, eps=1e-6)

    @property
    def dim(self) -> int:
        return self.size.dim

    def positions(self, rows: int, cols: int) -> Tensor:
        """Positional table for a rows x cols patch grid: the 14x14 table resized bicubically
        with the public code's scale factors ((n + 0.1) / 14), so outputs match it."""
        table = self.pos_embed
        n = table.shape[1] - 1
        if rows * cols == n and rows == cols:
            return table
        side, d = int(math.sqrt(n)), table.shape[-1]
        grid = table[:, 1:].reshape(1, side, side, d).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic")
        if grid.shape[-2:] != (rows, cols):
            raise InputError(f"cannot resize TerraFM's positions to a {rows}x{cols} patch grid")
        return torch.cat([table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, d)], dim=1)

    def tokens(self, x: Tensor, modality: str) -> Tensor:
        """Embedded patches with [CLS] and positions: [B, 1 + N, D]."""
        if modality not in MODALITIES:
            raise InputError(f"unknown TerraFM modality {modality!r} (one of {', '.join(MODALITIES)})")
        want = len(S1_BANDS) if modality == "s1" else len(S2_BANDS)
        if x.ndim != 4 or x.shape[1] != want:
            raise InputError(f"TerraFM's {modality} embedding takes {want} bands, got input of shape {tuple(x.shape)}")
        b, _, h, w = x.shape
        if h % PATCH or w % PATCH:
            raise InputError(f"TerraFM needs sides that are multiples of {PATCH} px, got {h}x{w}")
        return self.with_positions(self.patch_embed(x, modality), h // PATCH, w // PATCH)

    def with_positions(self, patches: Tensor, rows: int, cols: int) -> Tensor:
        """[CLS] + embedded patches [B, rows * cols, D] + positions: [B, 1 + N, D]."""
        tokens = torch.cat([self.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1)
        return tokens + self.positions(rows, cols)

    def tokens_from_patches(self, patches: Tensor, rows: int, cols: int) -> Tensor:
        """`patch_tokens` from embedded patches [B, rows * cols, D] (what a latent adapter gives
        in place of the patch embedding): [B, D, rows, cols]."""
        out = self.run_blocks(self.with_positions(patches, rows, cols))[:, 1:]
        return out.transpose(1, 2).reshape(patches.shape[0], self.dim, rows, cols)

    def run_blocks(self, tokens: Tensor) -> Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def patch_tokens(self, x: Tensor, modality: str) -> Tensor:
        """The last layer's normalised patch tokens on the 1/16 grid: [B, D, H/16, W/16]
        (the public `extract_feature` at its last index)."""
        x_tokens = self.tokens(x, modality)
        b, _, h, w = x.shape
        out = self.run_blocks(x_tokens)[:, 1:]
        return out.transpose(1, 2).reshape(b, self.dim, h // PATCH, w // PATCH)

    def forward(self, x: Tensor, modality: str) -> Tensor:
        """The [CLS] feature (the public `forward`)."""
        return self.run_blocks(self.tokens(x, modality))[:, 0]


def size_of_state(state: dict[str, Tensor], source: str) -> TerraFMSize:
    """Which TerraFM a state dict is (its width and depth), or a one-line ModelError."""
    if "cls_token" not in state or "pos_embed" not in state:
        raise ModelError(f"{source} is not a TerraFM checkpoint (no cls_token / pos_embed)")
    dim = state["cls_token"].shape[-1]
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for size in SIZES.values():
        if (size.dim, size.depth) == (dim, depth):
            return size
    raise ModelError(f"{source}: a ViT of width {dim} and depth {depth} is neither TerraFM-B nor TerraFM-L")


def build_terrafm(size: str = "b", *, weights: str | Path | None = None, seed: int | None = None) -> TerraFM:
    """TerraFM in eval mode: from a checkpoint (`weights`, strict; its size must be `size`), or
    with random weights (`seed`; DINO's initialisation) for tests and rate studies."""
    from terracodec.consumers.checkpoint import read_checkpoint
    from terracodec.weights import load_state

    if size not in SIZES:
        raise ModelError(f"unknown TerraFM size {size!r} (b or l)")
    model = TerraFM(SIZES[size])
    if weights is not None:
        state = read_checkpoint(weights)
        found = size_of_state(state, str(weights))
        if found != SIZES[size]:
            raise ModelError(f"{weights} is {found.name}, not {SIZES[size].name}")
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        load_state(model, state, str(weights))
    else:
        init_random(model, seed)
    return model.eval()


def init_random(model: TerraFM, seed: int | None) -> None:
    """DINO's initialisation (truncated normal, std 0.02; LayerNorms 1 / 0) from a seeded generator."""
    generator = torch.Generator().manual_seed(0 if seed is None else seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name and name.endswith("weight"):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                p.copy_((torch.randn(p.shape, generator=generator) * 0.02).clamp_(-0.04, 0.04))


__all__ = ["MODALITIES", "S1_BANDS", "S2_BANDS", "SIZES", "TerraFM", "build_terrafm", "size_of_state"]
