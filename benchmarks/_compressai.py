"""Import CompressAI for the benchmarks (same shim as tests/conftest.py:import_compressai).

CompressAI imports torchvision, whose PyPI wheel cannot load its C ops beside the CPU build of
torch; CompressAI's entropy coders never use it, so an empty stand-in takes its place.
"""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType


def import_compressai() -> ModuleType:
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
    try:
        return importlib.import_module("compressai")
    except ImportError as exc:
        raise SystemExit("this benchmark compares against CompressAI: "
                         "pip install -e '.[dev]'") from exc
