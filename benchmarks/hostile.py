"""Forged `.tec` files against `tec info` and `tec decode`: refused, in bounded time and memory.

Every file of `terracodec.forge.corpus` (forged dimensions and counts, decompression bombs,
malformed fields; every checksum right) is made from real streams of the bundled sample (an
image model with several tiles, and a temporal one), then given to `tec info` and `tec decode`,
each in its own process (`tec info` only where the header or index is forged: it reads no
tile). Measured per run: the peak resident memory of that process (`os.wait4`; the streams
are made in another process, so that this one stays small: a child's peak starts from its
parent's size at fork) and its wall time; a run counts as refused when it exits 1 with one
`error:` line and no traceback. Target (issue 13): every run refused under 1.5 GB and 10 s.

    python benchmarks/hostile.py      # -> benchmarks/results/hostile.md, .json

Last line: `summary: worst_peak_mb=<x> worst_seconds=<x> refused=<n>/<n>`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLE = Path(__file__).resolve().parents[1] / "terracodec" / "data" / "sample"
TEC = [sys.executable, "-m", "terracodec.cli.main"]
LIMIT_MB, LIMIT_S = 1536, 10.0


def run(args: list[str]) -> dict:
    """Exit code, stderr, peak RSS (MB) and seconds of one command in its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    lines = [line for line in err.strip().splitlines() if line]
    refused = proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ")
    return {"rc": proc.returncode, "stderr": err.strip()[:300], "peak_mb": usage.ru_maxrss / 1024,
            "seconds": seconds, "refused": refused and "Traceback" not in err}


_MAKE_STREAMS = """
import sys
from pathlib import Path
from terracodec import api
files = sorted(Path(sys.argv[1]).glob("*.tif"))
api.encode(files[0], Path(sys.argv[2]) / "fp.tec", model="tec-fp-s2l1c", tile_size=64)
api.encode(files[:2], Path(sys.argv[2]) / "tt.tec", model="tec-tt-small", tile_size=64)
"""


def main() -> None:
    from terracodec.forge import TILE_LEVEL, corpus

    rows = []
    with tempfile.TemporaryDirectory(prefix="tec-hostile-") as tmp:
        tmp_path = Path(tmp)
        subprocess.run([sys.executable, "-c", _MAKE_STREAMS, str(SAMPLE), tmp], check=True)
        for kind in ("fp", "tt"):
            for name, blob in corpus((tmp_path / f"{kind}.tec").read_bytes()).items():
                path = tmp_path / f"{kind}_{name}.tec"
                path.write_bytes(blob)
                commands = [["decode", str(path), "-o", str(tmp_path / "out"), "-q"]]
                if name not in TILE_LEVEL:
                    commands.insert(0, ["info", str(path)])
                for command in commands:
                    r = run(TEC + command)
                    rows.append({"file": f"{kind}_{name}", "size": len(blob), "command": command[0], **r})
                    print(f"{kind}_{name:<28} {command[0]:<6} rc={r['rc']} {r['peak_mb']:7.0f} MB "
                          f"{r['seconds']:5.2f} s  {r['stderr'][:90]}", flush=True)
    worst_mb = max(r["peak_mb"] for r in rows)
    worst_s = max(r["seconds"] for r in rows)
    refused = sum(r["refused"] and r["peak_mb"] < LIMIT_MB and r["seconds"] < LIMIT_S for r in rows)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hostile.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "# Forged .tec files: refused in bounded time and memory (`benchmarks/hostile.py`)", "",
        f"Each file (built by `terracodec.forge.corpus` from real streams of the bundled sample, "
        f"every checksum right) given to `tec info` and `tec decode`, each in its own process; "
        f"peak resident memory (`wait4`) and wall time; target: exit 1 with one `error:` line, "
        f"under {LIMIT_MB} MB and {LIMIT_S:g} s. `tec decode` imports torch only for a stream "
        "whose header and index pass, so most refusals cost ~0.1 GB.", "",
        "| file | bytes | command | exit | peak MB | seconds | message |", "|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        msg = r["stderr"].replace("|", "/").splitlines()[0][:110] if r["stderr"] else ""
        lines.append(f"| {r['file']} | {r['size']} | {r['command']} | {r['rc']} | {r['peak_mb']:.0f} | "
                     f"{r['seconds']:.2f} | {msg} |")
    summary = f"summary: worst_peak_mb={worst_mb:.0f} worst_seconds={worst_s:.2f} refused={refused}/{len(rows)}"
    lines += ["", summary]
    (RESULTS / "hostile.md").write_text("\n".join(lines) + "\n")
    print(summary)


if __name__ == "__main__":
    main()
