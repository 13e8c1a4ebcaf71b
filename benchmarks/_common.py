"""Helpers shared by the benchmark scripts (run as scripts: this folder is on sys.path)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from terracodec.testing import import_compressai as _import_compressai

#: The project's real rasters (see its MANIFEST.md), beside the checkout.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Where benchmarks write their results.
RESULTS = Path(__file__).resolve().parent / "results"


def import_compressai() -> ModuleType:
    """CompressAI, or exit with a one-line hint (it is in the dev extra, not the core install)."""
    try:
        return _import_compressai()
    except ImportError as exc:
        raise SystemExit("this benchmark compares against CompressAI: pip install -e '.[dev]'") from exc


def write_report(stem: str, lines: list[str], summary: str) -> None:
    """`benchmarks/results/<stem>.md` (the lines, then the summary line), printed likewise: the
    summary is always the last line a benchmark prints."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.md").write_text("\n".join([*lines, summary, ""]))
    print("\n".join(lines))
    print(summary)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (benchmarks record the machine they ran on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def oscd_test_series(bands: Sequence[str], crop: int | None) -> list[Any]:
    """The 10 OSCD test cities, both dates as 2-frame `Sample`s (evaluation only: never trained on)."""
    from terracodec.bench import load_inputs

    root = SHARED_DATA / "oscd_s2_l1c"
    cities = [c.strip() for c in (root / "test.txt").read_text().replace("\n", ",").split(",") if c.strip()]
    return load_inputs([root / c for c in cities], bands=list(bands), series=True, crop=crop)


def eolearn_series(bands: Sequence[str], crop: int | None = None) -> list[Any]:
    """The eo-learn 5-date L1C series as one `Sample` [T, 13, H, W] uint16 DN in date order
    (the file holds reflectance in Sentinel Hub band order, which is the L1C order)."""
    from terracodec.bench.data import Sample, center_crop

    root = SHARED_DATA / "eolearn_reference_scenes"
    x = np.load(root / "REFERENCE_SCENES.npy")  # [T, H, W, C] reflectance
    stamps = json.loads((root / "timestamps.json").read_text())["REFERENCE_SCENES_index_to_timestamp"]
    dn = np.rint(x[np.argsort(stamps)] * 10000.0).clip(0, 65535).astype(np.uint16).transpose(0, 3, 1, 2)
    if crop:
        dn = center_crop(dn, crop)
    return [Sample("eolearn_slovenia_2015", np.ascontiguousarray(dn), list(bands))]
