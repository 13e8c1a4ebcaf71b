"""Bit-reproducible evaluation of the entropy-parameter networks (fixed point in float64).

Why: the decoder must rebuild *exactly* the scale indexes and means the encoder used, or rANS
decodes garbage. Those parameters come out of convolutions (hyper-synthesis `h_s`, channel
context, checkerboard context, parameter aggregation), and a float32 convolution's result
depends on its summation order, which changes with the thread count, the batch size, the
algorithm the backend picks and the device. So these networks are evaluated here with
arithmetic that has no rounding at all inside the sums:

1. **Weights** of each layer become integers `W = round(w * 2**s_w)`, with `s_w` chosen per
   layer (from the weights alone, with exact operations: max, frexp, integer sums) such that
   the largest L1 norm of an output channel's weights, `max_o sum |W_o|`, is at most `2**30`.
2. **Activations** entering a layer become integers `A = round(x * 2**s_a)`, with `s_a` chosen
   per sample (from `max |x|` of that sample only) such that `|A| <= 2**22`.
3. The convolution of `A` with `W` runs in float64. Every product and every partial sum is then
   an integer of magnitude at most `2**22 * 2**30 = 2**52 < 2**53`, exactly representable, so
   every summation order (threads, blocking, GEMM or direct, CPU or GPU) gives the same,
   exact result. cuDNN is switched off for these calls so that no FFT/Winograd algorithm
   (which is not a plain sum of products) can be picked.
4. The integer result is scaled back by `2**-(s_a + s_w)` (exact), the float64 bias is added
   and ReLUs are applied: elementwise IEEE operations, identical everywhere.

Because `s_a` depends only on the sample's own activations, a tile gives the same parameters
whether it is coded alone or in a batch. Precision: 22 significant bits for activations
(relative to the sample's largest) and about 20 for the largest weights, comparable to
float32, so the parameters stay within ~1e-6 of a float32 evaluation (parity with the
reference model is tested in `tests/test_reference_parity.py`).
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terracodec.layers.conv import CheckerboardMaskedConv2d

ACTIVATION_BITS = 22  # |A| <= 2**22
WEIGHT_L1_BITS = 30  # max_o sum |W_o| <= 2**30; 22 + 30 = 52 < 53
_MAX_SHIFT = 60  # activations below 2**-38 are treated at this resolution (they round to 0)


def _exponent(x: Tensor) -> Tensor:
    """e with x < 2**e (x >= 0; e = 0 for x = 0), exactly."""
    return torch.frexp(x).exponent.to(torch.int64)


def pow2(k: Tensor) -> Tensor:
    """float64 `2**k` for integer k in [-1022, 1023], built from the bit pattern (exact on any
    device, unlike `pow`/`exp2`, whose exactness is up to the math library)."""
    k = k.to(torch.int64).clamp(-1022, 1023)
    return torch.bitwise_left_shift(k + 1023, 52).view(torch.float64)


def _out_channel_l1(w_int: Tensor, transposed: bool) -> Tensor:
    """Largest per-output-channel sum of |W| (exact: integer terms, sums < 2**53)."""
    dims = (0, 2, 3) if transposed else (1, 2, 3)
    return w_int.abs().sum(dim=dims).max()


def quantize_weight(weight: Tensor, transposed: bool) -> tuple[Tensor, int]:
    """(integer-valued float64 weights, s_w) with `max_o sum |W_o| <= 2**WEIGHT_L1_BITS`."""
    w = weight.detach().to(torch.float64)
    peak = w.abs().max()
    if float(peak) == 0.0:
        return torch.zeros_like(w), 0
    shift = 24 - int(_exponent(peak))
    while True:
        w_int = torch.round(w * pow2(torch.tensor(shift, device=w.device)))
        l1 = float(_out_channel_l1(w_int, transposed))
        if l1 <= 2.0**WEIGHT_L1_BITS:
            return w_int, shift
        # Reduce by the number of excess bits (at least one) and re-round.
        shift -= max(1, int(_exponent(torch.tensor(l1))) - WEIGHT_L1_BITS)


def quantize_activation(x: Tensor) -> tuple[Tensor, Tensor]:
    """(integer-valued float64 activations, per-sample int64 s_a `[B, 1, 1, 1]`)."""
    x = x.to(torch.float64)
    peak = x.abs().amax(dim=tuple(range(1, x.dim())), keepdim=True)
    shift = (ACTIVATION_BITS - _exponent(peak)).clamp(-_MAX_SHIFT, _MAX_SHIFT)
    return torch.round(x * pow2(shift)), shift


# Quantised weights per module, reused while the weights (and mask) are unchanged.
_WEIGHT_CACHE: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple, Tensor, int]]" = weakref.WeakKeyDictionary()


def _module_weight(module: nn.Conv2d | nn.ConvTranspose2d) -> tuple[Tensor, int]:
    masked = isinstance(module, CheckerboardMaskedConv2d)
    w = module.weight
    key = (w.data_ptr(), w._version, w.device, w.dtype, tuple(w.shape))
    if masked:
        key += (module.mask.data_ptr(), module.mask._version)
    cached = _WEIGHT_CACHE.get(module)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    weight = module.masked_weight() if masked else w
    w_int, s_w = quantize_weight(weight, isinstance(module, nn.ConvTranspose2d))
    _WEIGHT_CACHE[module] = (key, w_int, s_w)
    return w_int, s_w


def exact_conv(module: nn.Conv2d | nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """float64 output of `module(x)` computed bit-reproducibly (see the module docstring)."""
    transposed = isinstance(module, nn.ConvTranspose2d)
    w_int, s_w = _module_weight(module)
    a_int, s_a = quantize_activation(x)
    with torch.backends.cudnn.flags(enabled=False):
        if transposed:
            out = F.conv_transpose2d(
                a_int, w_int, None, module.stride, module.padding, module.output_padding,
                module.groups, module.dilation,
            )
        else:
            if module.padding_mode != "zeros":
                raise TypeError("exact_conv supports zero padding only")
            out = F.conv2d(
                a_int, w_int, None, module.stride, module.padding, module.dilation, module.groups
            )
    out = out * pow2(-(s_a + s_w))
    if module.bias is not None:
        out = out + module.bias.detach().to(torch.float64).view(1, -1, 1, 1)
    return out


def exact_forward(net: nn.Module, x: Tensor) -> Tensor:
    """Evaluate a network of convolutions, ReLUs and Sequentials exactly, in float64; a module
    with its own `exact_forward` (e.g. `latent_codecs.temporal_mixing`) evaluates itself."""
    own = getattr(net, "exact_forward", None)
    if own is not None:
        return own(x)
    if isinstance(net, nn.Sequential):
        for layer in net:
            x = exact_forward(layer, x)
        return x
    if isinstance(net, (nn.Conv2d, nn.ConvTranspose2d)):
        return exact_conv(net, x)
    if isinstance(net, nn.ReLU):
        return torch.relu(x.to(torch.float64))
    if isinstance(net, nn.Identity):
        return x.to(torch.float64)
    raise TypeError(f"exact_forward does not support {type(net).__name__}")
