"""Running an archive: every job encoded (or its verified output reused), one manifest line each.

Idempotent and resumable: an output that exists, verifies (`terracodec.archive.verify`) and was
coded with the model and quality asked for (when asked) is reused; a missing, truncated or
corrupt one is redone; `force` redoes all. Outputs appear atomically (`terracodec.api.encode`),
so an interrupted run leaves whole streams or none. One failing input is recorded and the rest
go on.

Where the work runs: with no executor, one input at a time on this process's threads; with an
executor (a local process pool, a Dask `Client`), several inputs at once, each one's work units
submitted to it (`terracodec.api.execute`): the bytes are the same either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from terracodec.archive.discover import Job
from terracodec.archive.verify import verify_file
from terracodec.errors import TerracodecError

MANIFEST = "manifest.jsonl"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Manifest:
    """`OUT/manifest.jsonl`: one JSON object per input and run, appended and flushed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, allow_nan=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class ArchiveRun:
    """What every job is coded with, and where the work runs."""

    options: dict[str, Any] = field(default_factory=dict)  # keywords of `terracodec.encode`
    executor: Any = None
    concurrent_inputs: int = 1
    force: bool = False


def _reusable(job: Job, run: ArchiveRun) -> dict[str, Any] | None:
    """`info()` of a job's existing output when it can stand, else None."""
    if run.force or not job.output.is_file():
        return None
    if not verify_file(job.output).ok:
        return None
    from terracodec.api.describe import info

    d = info(job.output)
    model, quality = run.options.get("model"), run.options.get("quality")
    if d["frames"] != len(job.frames) or (model is not None and d["model"] != model) or (
        quality is not None and str(d["quality"]) != str(quality)
    ):
        return None
    return d


def _record(job: Job, status: str, action: str, start: float, d: dict | None = None,
            error: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "source": job.source, "output": str(job.output), "status": status, "action": action,
        "error": error, "bytes": None, "bpppb": None, "seconds": round(time.perf_counter() - start, 3),
        "sha256": None, "frames": len(job.frames), "model": None, "quality": None,
    }
    if d is not None:
        out.update(bytes=d["bytes"], bpppb=round(float(d["bpppb"]), 6), sha256=sha256_of(job.output),
                   model=d["model"], quality=d["quality"])
    return out


def _one(job: Job, run: ArchiveRun) -> dict[str, Any]:
    from terracodec.api.encoding import encode

    start = time.perf_counter()
    try:
        reused = _reusable(job, run)
        if reused is not None:
            return _record(job, "ok", "reused", start, reused)
        frames = job.frames[0] if len(job.frames) == 1 else job.frames
        d = encode(frames, job.output, overwrite=True, executor=run.executor, **run.options)
        return _record(job, "ok", "encoded", start, d)
    except TerracodecError as exc:
        return _record(job, "error", "failed", start, error=str(exc))
    except (OSError, RuntimeError, ValueError, TypeError, MemoryError) as exc:  # a bug or the OS: still recorded
        return _record(job, "error", "failed", start, error=f"{type(exc).__name__}: {exc}")


def run_archive(jobs: list[Job], out: str | os.PathLike, run: ArchiveRun,
                progress: Callable[[int, int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Every job, a manifest line each (in completion order); returns the records in job order."""
    manifest = Manifest(Path(out) / MANIFEST)
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    done = 0
    lock = threading.Lock()

    def finish(i: int, record: dict[str, Any]) -> None:
        nonlocal done
        manifest.append(record)
        with lock:
            results[i] = record
            done += 1
            if progress:
                progress(done, len(jobs), record)

    if run.executor is None or run.concurrent_inputs <= 1:
        for i, job in enumerate(jobs):
            finish(i, _one(job, run))
    else:
        with ThreadPoolExecutor(run.concurrent_inputs, thread_name_prefix="tec-archive") as pool:
            futures = {pool.submit(_one, job, run): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                finish(futures[future], future.result())
    return [r for r in results if r is not None]


__all__ = ["ArchiveRun", "MANIFEST", "Manifest", "run_archive", "sha256_of"]
