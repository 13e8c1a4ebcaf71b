"""Entropy models (latents <-> symbols + integer CDF tables) and the rANS coder (bytes)."""

from terracodec.entropy.base import EntropyModel
from terracodec.entropy.bottleneck import EntropyBottleneck
from terracodec.entropy.cdf import quantize_pmf, table_hash
from terracodec.entropy.gaussian import GaussianConditional, default_scale_table
from terracodec.entropy.location_scale import LocationScaleGaussianConditional
from terracodec.entropy.rans import rans_decode, rans_encode

__all__ = [
    "EntropyModel",
    "EntropyBottleneck",
    "GaussianConditional",
    "LocationScaleGaussianConditional",
    "default_scale_table",
    "quantize_pmf",
    "table_hash",
    "rans_encode",
    "rans_decode",
]
