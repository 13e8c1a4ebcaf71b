"""GDN / IGDN normalisation: `y_i = x_i * (beta_i + sum_j gamma_ij x_j^2)^(-1/2 or +1/2)`.

The channel mixing is a matmul per pixel (CompressAI writes it as a 1x1 convolution). The Triton
kernel fuses the square, the matmul (tiles of gamma against tiles of x^2), the bias, the
(r)sqrt and the final multiply, so that the `norm` tensor never reaches memory.

`gdn(x, beta, gamma, inverse)` dispatches (see `_dispatch.py`); `gdn_reference` is the torch
definition the kernel is tested against. `beta` and `gamma` are the effective (already
re-parametrised) values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._dispatch import triton_available, use_triton


def gdn_reference(x: Tensor, beta: Tensor, gamma: Tensor, inverse: bool = False) -> Tensor:
    """Torch definition, identical to CompressAI's `GDN.forward` on 4-D input."""
    if x.dim() < 2:
        raise ValueError(f"GDN expects [N, C, ...] input, got shape {tuple(x.shape)}")
    channels = x.shape[1]
    shape = x.shape
    x4 = x if x.dim() == 4 else x.reshape(shape[0], channels, -1, 1)
    norm = F.conv2d(x4 * x4, gamma.reshape(channels, channels, 1, 1), beta)
    norm = torch.sqrt(norm) if inverse else torch.rsqrt(norm)
    return (x4 * norm).reshape(shape)


def gdn(
    x: Tensor, beta: Tensor, gamma: Tensor, inverse: bool = False, *, backend: str | None = None
) -> Tensor:
    """GDN (or IGDN when `inverse`) of `x` [N, C, ...]; Triton on CUDA float32 without grad."""
    if x.dtype == torch.float32 and use_triton(x, beta, gamma, backend=backend):
        return _gdn_triton(x, beta, gamma, inverse)
    return gdn_reference(x, beta, gamma, inverse)


if triton_available():
    import triton
    import triton.language as tl

    @triton.jit
    def _gdn_kernel(
        x_ptr,
        gamma_ptr,
        beta_ptr,
        out_ptr,
        C,
        P,
        INVERSE: tl.constexpr,
        BLOCK_I: tl.constexpr,
        BLOCK_J: tl.constexpr,
        BLOCK_P: tl.constexpr,
    ):
        # One program: output channels [i0, i0+BLOCK_I) x pixels [p0, p0+BLOCK_P) of item n.
        pid_p = tl.program_id(0)
        pid_i = tl.program_id(1)
        n = tl.program_id(2).to(tl.int64)
        offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
        offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
        base = n * C * P
        mask_p = offs_p < P
        mask_i = offs_i < C
        acc = tl.zeros([BLOCK_I, BLOCK_P], dtype=tl.float32)
        for j0 in range(0, C, BLOCK_J):
            offs_j = j0 + tl.arange(0, BLOCK_J)
            mask_j = offs_j < C
            g = tl.load(
                gamma_ptr + offs_i[:, None] * C + offs_j[None, :],
                mask=mask_i[:, None] & mask_j[None, :],
                other=0.0,
            )
            xj = tl.load(
                x_ptr + base + offs_j[:, None] * P + offs_p[None, :],
                mask=mask_j[:, None] & mask_p[None, :],
                other=0.0,
            )
            acc += tl.dot(g, xj * xj, input_precision="ieee")
        beta = tl.load(beta_ptr + offs_i, mask=mask_i, other=1.0)
        norm = acc + beta[:, None]
        tile = mask_i[:, None] & mask_p[None, :]
        xi = tl.load(x_ptr + base + offs_i[:, None] * P + offs_p[None, :], mask=tile, other=0.0)
        if INVERSE:
            y = xi * tl.sqrt(norm)
        else:
            y = xi / tl.sqrt(norm)
        tl.store(out_ptr + base + offs_i[:, None] * P + offs_p[None, :], y, mask=tile)


def _gdn_triton(x: Tensor, beta: Tensor, gamma: Tensor, inverse: bool) -> Tensor:
    if x.dim() < 2:
        raise ValueError(f"GDN expects [N, C, ...] input, got shape {tuple(x.shape)}")
    batch, channels = x.shape[0], x.shape[1]
    xc = x.contiguous()
    pixels = xc[0, 0].numel() if batch else 0
    out = torch.empty_like(xc)
    if xc.numel() == 0:
        return out
    gamma_c = gamma.to(torch.float32).contiguous()
    beta_c = beta.to(torch.float32).contiguous()
    block_i, block_j, block_p = 32, 32, 64
    grid = (triton.cdiv(pixels, block_p), triton.cdiv(channels, block_i), batch)
    _gdn_kernel[grid](
        xc, gamma_c, beta_c, out, channels, pixels,
        INVERSE=bool(inverse), BLOCK_I=block_i, BLOCK_J=block_j, BLOCK_P=block_p,
    )
    return out
