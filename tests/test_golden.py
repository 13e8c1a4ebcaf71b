"""Golden bytes: every shipped model codes the bundled sample into the same tile payloads as when
these hashes were pinned, so a refactor cannot change what a model writes unnoticed.

The hashes cover the tile records (model payloads and exact-pixel patches, in index order),
not the container header, which a new container version may change. Float transforms round
differently on another CPU kind, so the hashes are pinned per CPU kind (`coder_platform`
without the torch version: torch 2.13 CPU and 2.14 CUDA builds write the same bytes here); on
another CPU kind the test says so and skips. Regenerate (after a deliberate change, in the
same commit): `python tests/test_golden.py`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import terracodec
from terracodec.bands import S2_L1C_BANDS, S2_L2A_BANDS
from terracodec.container import ContainerReader

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_payloads.json"
SAMPLE = sorted((Path(terracodec.__file__).parent / "data" / "sample").glob("*.tif"))
CASES = [("tec-fp-s2l1c", q) for q in (1, 2, 3, 4, 5)] + [("tec-fp-s2l2a", q) for q in (1, 3, 5)] + [
    ("tec-elic-s2l2a", q) for q in (1, 3, 5)] + [("tec-tt-small", 1)]


def _platform() -> str:
    from terracodec.temporal.coding import coder_platform

    return coder_platform().rsplit(" torch ", 1)[0]


def payload_hash(model: str, quality: int) -> str:
    """sha256 of the tile records of the bundled series coded by `model` (64 px tiles)."""
    import numpy as np
    import rasterio

    frames = []
    for path in SAMPLE:
        with rasterio.open(path) as ds:
            frames.append(ds.read())
    x, bands = np.stack(frames), list(S2_L1C_BANDS)
    if model in ("tec-fp-s2l2a", "tec-elic-s2l2a"):
        x, bands = np.delete(x, S2_L1C_BANDS.index("B10"), axis=1), list(S2_L2A_BANDS)
    if model == "tec-tt-small":
        x = x[:3]
    stream = terracodec.encode(x, model=model, quality=quality, band_names=bands, nodata=0,
                               tile_size=64, baseline_offset=False)
    h = hashlib.sha256()
    with ContainerReader(stream) as reader:
        for key in sorted(reader.entries):
            record = reader.read_tile(*key)
            h.update(record.code + record.patch + bytes([record.flags]))
    return h.hexdigest()


@pytest.mark.parametrize("model, quality", CASES)
def test_shipped_models_write_their_golden_payloads(model: str, quality: int) -> None:
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] != _platform():
        pytest.skip(f"hashes pinned on {golden['platform']!r}, this is {_platform()!r}")
    assert payload_hash(model, quality) == golden["hashes"][f"{model}@{quality}"]


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    hashes = {f"{m}@{q}": payload_hash(m, q) for m, q in CASES}
    GOLDEN.write_text(json.dumps({"platform": _platform(), "hashes": hashes}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
