"""Support for parity tests and benchmarks against CompressAI (the dev extra).

CompressAI imports torchvision, whose PyPI wheel cannot load its C ops beside the CPU build of
torch. CompressAI's entropy models, coders and layers never use torchvision, so when the real
one fails to import, an empty stand-in takes its place.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType


def import_compressai() -> ModuleType:
    """Import CompressAI; ImportError when it is not installed (it is not a core dependency)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        pass
    except RuntimeError:
        for name in [n for n in sys.modules if n.startswith("torchvision")]:
            del sys.modules[name]
        stub = types.ModuleType("torchvision")
        stub.transforms = types.ModuleType("torchvision.transforms")
        sys.modules["torchvision"] = stub
        sys.modules["torchvision.transforms"] = stub.transforms
    return importlib.import_module("compressai")
