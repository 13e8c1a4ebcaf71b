"""Where an archive's work units run: this process, local worker processes, or a Dask cluster.

Local workers are `spawn`ed processes (never forked from a process that has started torch's
threads); a Dask cluster is reached by its scheduler's address, and its workers need
terracodec installed and the inputs and outputs at the same paths (a shared file system).
Either way each worker loads a model once (`terracodec.api.workers`).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

from terracodec.errors import InputError

#: How long to wait for a scheduler to answer (a Dask duration: "20s", "2min").
TIMEOUT_ENV = "TERRACODEC_SCHEDULER_TIMEOUT"


@contextmanager
def executor_for(workers: int = 1, scheduler: str | None = None) -> Iterator[tuple[Any, int]]:
    """(executor or None, the number of units it runs at once)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer, got {workers!r}")
    if scheduler is not None:
        if workers != 1:
            raise InputError("give --workers or --scheduler, not both (a cluster's workers are its own)")
        with _dask_client(scheduler) as client:
            yield client, max(1, sum(client.nthreads().values()))
        return
    if workers == 1:
        yield None, 1
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool, workers


@contextmanager
def _dask_client(address: str) -> Iterator[Any]:
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--scheduler needs Dask: pip install 'terracodec[cloud]'") from None
    try:
        client = Client(address, timeout=os.environ.get(TIMEOUT_ENV, "20s"))
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


__all__ = ["executor_for"]
