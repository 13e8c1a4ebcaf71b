"""Shared test fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: A small mirror of the files of ../shared/data that the tests read (real data, cropped; see
#: tests/data/shared/LICENSE.md and make_mirror.py): used when ../shared/data is absent.
SHARED_MIRROR = Path(__file__).resolve().parent / "data" / "shared"

#: Set to 1 to run the tests on the mirror even where ../shared/data is present.
MIRROR_ENV = "TERRACODEC_TEST_MIRROR"


COMPRESSAI_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "compressai"


@pytest.fixture(scope="session")
def compressai_ref() -> tuple[dict, dict]:
    """(tensors, meta) recorded from CompressAI 1.2.8 by fixtures/make_compressai_fixtures.py
    (CompressAI itself is not installed: it pins numpy<2 and pulls torchvision)."""
    import json

    from safetensors.torch import load_file

    return (load_file(str(COMPRESSAI_FIXTURES / "tensors.safetensors")),
            json.loads((COMPRESSAI_FIXTURES / "meta.json").read_text()))


def shared_data_root() -> Path:
    """../shared/data beside the checkout when present, else the mirror tests/data/shared;
    TERRACODEC_TEST_MIRROR=1 forces the mirror."""
    forced = os.environ.get(MIRROR_ENV, "").strip().lower() not in ("", "0", "false", "no")
    return SHARED_MIRROR if forced or not SHARED_DATA.is_dir() else SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Real rasters with the layout of ../shared/data (the folder itself or the tests' mirror of
    the files they read). Tests must hold with both: sizes come from the files, not constants."""
    return shared_data_root()


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
