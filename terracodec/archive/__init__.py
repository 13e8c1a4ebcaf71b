"""Whole archives: `archive()` codes every input under folders into `.tec` streams with a
manifest, on this machine's cores, local worker processes or a Dask cluster; `verify_file()`
audits streams without decoding them (`tec archive`, `tec verify`).

| module | job |
|---|---|
| `discover` | which inputs, grouped how, written where |
| `run` | encode or reuse each, the manifest |
| `verify` | checksums and structure, no pixels |
| `cluster` | the executor: none, a process pool, a Dask client |
"""

from __future__ import annotations

import os
from typing import Any, Callable

from terracodec.archive.discover import Job, find_jobs
from terracodec.archive.run import MANIFEST, ArchiveRun, run_archive
from terracodec.archive.verify import Verified, verify_file


def archive(sources: list[str | os.PathLike], out: str | os.PathLike, *, series_by: str = "none",
            workers: int = 1, scheduler: str | None = None, force: bool = False,
            progress: Callable[[int, int, dict[str, Any]], None] | None = None,
            **encode_options: Any) -> list[dict[str, Any]]:
    """Encode every GeoTIFF and Sentinel-2 product under `sources` into `out` (mirroring their
    paths), appending one line per input to `out/manifest.jsonl`; returns those records.

    `workers` > 1: that many local worker processes; `scheduler`: a Dask distributed scheduler's
    address (its workers must see the same paths). `encode_options`: `terracodec.encode`'s
    keywords (model, quality, tile_size, ...). Outputs are byte-identical whatever the
    parallelism."""
    from terracodec.archive.cluster import executor_for

    jobs = find_jobs(list(sources), out, series_by)
    with executor_for(workers, scheduler) as (executor, slots):
        run = ArchiveRun(dict(encode_options), executor, max(1, 2 * slots) if executor else 1, force)
        return run_archive(jobs, out, run, progress)


__all__ = ["ArchiveRun", "Job", "MANIFEST", "Verified", "archive", "find_jobs", "run_archive", "verify_file"]
