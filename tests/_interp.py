"""Running a test file's Triton kernel cases (`-k interp`) in a child process with
`TRITON_INTERPRET=1`: Triton decides at import time whether it interprets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_interpreted(test_file: str) -> None:
    """Run `test_file`'s `interp` cases interpreted; fail with their output if any fails or
    none ran."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", "-p", "no:cacheprovider",
         "-k", "interp", str(Path(test_file).resolve())],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout.split("\n")[-2]
