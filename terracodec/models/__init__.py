"""Learned image codecs (TEC-FP, TEC-ELIC), their weights and the model registry.

This package is also `terracodec.models()`, the API's list of available models: a package and
a function cannot share the name `terracodec.models` otherwise (importing the package replaces
the function attribute), so the package itself is callable.
"""

import sys
import types

from terracodec.models import elic, factorized  # noqa: F401  (register "tec-elic", "tec-fp")
from terracodec.models.base import ImageCodec


class _CallablePackage(types.ModuleType):
    def __call__(self) -> list[dict]:
        """The available models (`terracodec.api.models`)."""
        from terracodec.api.resolve import models

        return models()


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["ImageCodec"]
