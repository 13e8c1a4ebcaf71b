"""Start-up of `tec --help` and `tec info` (issue 13: under 0.5 s, without importing torch).

Each command runs 10 times in its own process (the installed `tec` entry point, as a user runs
it); reported: the median wall time, the peak resident memory (`wait4`, from a parent that has
not loaded torch) and whether torch was imported (`python -X importtime`).

    python benchmarks/startup.py      # -> benchmarks/results/startup.md

Last line: `summary: help_s=<x> info_s=<x> info_peak_mb=<x> torch_imported=<bool>`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE = Path(__file__).resolve().parents[1] / "terracodec" / "data" / "sample" / "S2L1C_20150711.tif"
RUNS = 10


def tec_command() -> list[str]:
    here = Path(sys.executable).parent / "tec"
    return [str(here)] if here.exists() else [shutil.which("tec") or "tec"]


def measure(args: list[str]) -> tuple[float, float]:
    """(median seconds, peak MB) over RUNS runs."""
    times, peaks = [], []
    for _ in range(RUNS):
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        peaks.append(usage.ru_maxrss / 1024)
        assert os.waitstatus_to_exitcode(status) == 0, args
    return statistics.median(times), max(peaks)


def imports_torch(args: list[str]) -> bool:
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    err = subprocess.run(args, capture_output=True, text=True, env=env).stderr
    return any(line.rsplit("|", 1)[-1].strip() == "torch" for line in err.splitlines())


def main() -> None:
    tec = tec_command()
    with tempfile.TemporaryDirectory() as tmp:
        stream = Path(tmp) / "s.tec"
        subprocess.run(tec + ["encode", str(SAMPLE), "-o", str(stream), "-q"], check=True)
        rows = {"tec --help": tec + ["--help"], "tec info": tec + ["info", str(stream)],
                "tec info --json": tec + ["info", str(stream), "--json"]}
        results = {name: (*measure(args), imports_torch(args)) for name, args in rows.items()}
    lines = ["# Start-up without torch (`benchmarks/startup.py`)", "",
             f"Median of {RUNS} runs of the installed `tec`, each in its own process; peak resident "
             "memory (`wait4`); torch imported or not (`PYTHONPROFILEIMPORTTIME`).", "",
             "| command | median s | peak MB | imports torch |", "|---|---:|---:|---|"]
    for name, (seconds, peak, torch_in) in results.items():
        lines.append(f"| `{name}` | {seconds:.3f} | {peak:.0f} | {torch_in} |")
    summary = (f"summary: help_s={results['tec --help'][0]:.3f} info_s={results['tec info'][0]:.3f} "
               f"info_peak_mb={results['tec info'][1]:.0f} "
               f"torch_imported={any(r[2] for r in results.values())}")
    lines += ["", summary]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "startup.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[4:]))


if __name__ == "__main__":
    main()
