"""Learned image codecs (TEC-FP, TEC-ELIC), their weights and the model registry."""

from terracodec.models import elic, factorized  # noqa: F401  (register "tec-elic", "tec-fp")
from terracodec.models.base import ImageCodec

__all__ = ["ImageCodec"]
