"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from terracodec import testing

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def import_compressai():
    """Import CompressAI for parity tests, or skip the test when it is not installed."""
    try:
        return testing.import_compressai()
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
