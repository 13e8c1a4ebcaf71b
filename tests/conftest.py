"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


COMPRESSAI_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compressai"


@pytest.fixture(scope="session")
def compressai_ref() -> tuple[dict, dict]:
    """(tensors, meta) recorded from CompressAI 1.2.8 by fixtures/make_compressai_fixtures.py
    (CompressAI itself is not installed: it pins numpy<2 and pulls torchvision)."""
    import json

    from safetensors.torch import load_file

    return (load_file(str(COMPRESSAI_FIXTURES / "tensors.safetensors")),
            json.loads((COMPRESSAI_FIXTURES / "meta.json").read_text()))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> Path:
    """Tests never write into ~/.cache/terracodec: built tables go to the run's temporary
    folder, shared by the xdist workers of one run (subprocesses inherit it)."""
    import os

    root = tmp_path_factory.getbasetemp()
    shared = root.parent if root.name.startswith("popen-gw") else root
    cache = shared / "terracodec-cache"
    os.environ["TERRACODEC_CACHE"] = str(cache)
    return cache
