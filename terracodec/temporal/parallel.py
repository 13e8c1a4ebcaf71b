"""Coarse-grained parallelism for TEC-TT coding: independent tasks (chunks of windows, the
analysis transform) on a few threads, one intra-op thread each.

Why not torch's intra-op threads: every operator is a parallel region that ends in a barrier,
so on a shared machine one busy core stalls every operator (measured on the project's 2-core
host under load: 2 intra-op threads slower than 1, the transforms 10x slower). Windows are
independent through the context encoders, the joint encoder, the memory's keys/values and the
encoder's teacher-forced decoder pass, so a chunk of windows runs start to finish on one thread
and an idle thread takes the next chunk: one wait per phase instead of one per operator.

Determinism: results never depend on which thread runs a task or on how many threads there
are (each task runs with one intra-op thread; chunk boundaries depend only on the number of
windows). Rows are computed identically whatever the chunk (row-local operations, see
`terracodec.temporal.coding`), so encoder and decoder may even chunk differently.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence, TypeVar

import torch

T = TypeVar("T")

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="tec-tt")
        return _POOLS[workers]


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` of `range(n)`."""
    return [slice(i, min(i + size, n)) for i in range(0, n, max(1, size))]


def run_tasks(tasks: Sequence[Callable[[], T]], workers: Optional[int] = None) -> list[T]:
    """Results of `tasks` (in order), run on up to `workers` threads (default: torch's intra-op
    thread count) with one intra-op thread each, in the caller's grad mode."""
    workers = min(workers or torch.get_num_threads(), len(tasks))
    old = torch.get_num_threads()
    if workers <= 1:
        torch.set_num_threads(1)
        try:
            return [task() for task in tasks]
        finally:
            torch.set_num_threads(old)
    grad = torch.is_grad_enabled()

    def run(task: Callable[[], T]) -> T:
        torch.set_num_threads(1)  # this thread's OpenMP/MKL setting
        with torch.set_grad_enabled(grad):
            return task()

    try:
        futures = [_pool(workers).submit(run, task) for task in tasks]
        return [f.result() for f in futures]
    finally:
        torch.set_num_threads(old)  # restores the process-wide default that workers changed


__all__ = ["chunks", "run_tasks"]
