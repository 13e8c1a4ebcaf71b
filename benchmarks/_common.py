"""Helpers shared by the benchmark scripts (run as scripts: this folder is on sys.path)."""

from __future__ import annotations

import platform
from pathlib import Path
from types import ModuleType

from terracodec.testing import import_compressai as _import_compressai


def import_compressai() -> ModuleType:
    """CompressAI, or exit with a one-line hint (it is in the dev extra, not the core install)."""
    try:
        return _import_compressai()
    except ImportError as exc:
        raise SystemExit("this benchmark compares against CompressAI: pip install -e '.[dev]'") from exc


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (benchmarks record the machine they ran on)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
