"""Shared test helpers.

CompressAI is only a parity reference (dev extra). Its import pulls torchvision, whose PyPI
wheel cannot load its C ops beside the CPU build of torch; CompressAI's entropy models and
layers never use torchvision, so we put an empty stand-in in its place when the real one fails.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def import_compressai():
    """Import CompressAI for parity tests, or skip the test when it is not installed."""
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
    except ImportError:
        pytest.skip("compressai (dev extra) is not installed")


@pytest.fixture(scope="session")
def compressai():
    return import_compressai()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
