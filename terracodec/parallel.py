"""Coarse-grained parallelism: independent tasks on a few threads, one intra-op thread each.

Used for tiles of a scene (`terracodec.api`: every tile of a tile row is a task) and, inside a
TEC-TT tile, for chunks of windows and the analysis transform (`terracodec.temporal.coding`).

Why not torch's intra-op threads:

* Determinism. Several CPU kernels split their work differently with the thread count and so
  sum in another order: oneDNN's 1x1 convolutions (GDN) with 1 vs 2 threads, transposed
  convolutions with 3, 8 or 16 threads (measured), a multi-threaded BLAS GEMM on a 16-core
  host. A task always runs on one intra-op thread, and which thread runs it, or how many there
  are, never changes its result: decoded pixels are the same whatever the thread count.
* Speed on a shared machine: every operator is a parallel region that ends in a barrier, so
  one busy core stalls every operator (measured on the project's 2-core host under load: 2
  intra-op threads slower than 1, the transforms 10x slower). A task runs start to finish on
  one thread and an idle thread takes the next one: one wait per batch of tasks.

Threads are budgeted: a batch of `n` tasks on `w` workers gives each task `max(1, w // n)`
threads of its own (`budget()`), which a task may spend on nested `run_tasks` (one TEC-TT tile
on a 2-core machine still codes its windows on 2 threads) and on exact arithmetic
(`intra_op_threads`). Float arithmetic whose summation order matters (the transforms) runs
through `run_float` on `float_threads()` threads: a number the caller fixes from the work's
shape, never from the machine (1 where many tiles run side by side, `ALONE_THREADS` for a
stream of one tile), so results do not depend on the thread count. Every task runs in the
caller's grad and inference mode.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence, TypeVar

import torch

T = TypeVar("T")

#: (nesting depth, workers) -> pool. A task's nested tasks go to a pool of the next depth, never
#: to the (busy) pool that runs the task itself.
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_LOCK = threading.Lock()
_LOCAL = threading.local()


def _pool(depth: int, workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        if (depth, workers) not in _POOLS:
            _POOLS[depth, workers] = ThreadPoolExecutor(workers, thread_name_prefix=f"tec{depth}")
        return _POOLS[depth, workers]


#: Intra-op threads of the float transforms of a stream of one tile (which would otherwise
#: leave all but one core idle): a constant, so its pixels are the same on every machine of one
#: kind whatever its core count (oneDNN's sums depend on the thread count, not the cores).
ALONE_THREADS = 2


def float_threads_for(units: int) -> int:
    """The float thread count for work of `units` independent tiles: 1 when several can run
    side by side, `ALONE_THREADS` for one."""
    return 1 if units > 1 else ALONE_THREADS


def float_threads() -> int:
    """Intra-op threads of float transforms in the running task (1 unless its caller said)."""
    return getattr(_LOCAL, "float_threads", 1)


def run_float(fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` on exactly `float_threads()` intra-op threads (see the module docstring)."""
    n = float_threads()

    def task() -> T:
        with intra_op_threads(n):
            return fn(*args)

    return run_tasks([task], workers=1)[0]


def budget() -> int:
    """Threads the running task may use: its share of a batch inside `run_tasks`, else torch's
    intra-op thread count."""
    return getattr(_LOCAL, "budget", None) or torch.get_num_threads()


def in_task() -> bool:
    """Whether this code runs inside a task of `run_tasks` (on one intra-op thread)."""
    return getattr(_LOCAL, "budget", None) is not None


@contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` for a block, for arithmetic whose result does
    not depend on it (exact integer or fixed-point networks): the rest of a task stays on one."""
    old = torch.get_num_threads()
    if n == old:
        yield
        return
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def chunks(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` of `range(n)`."""
    return [slice(i, min(i + size, n)) for i in range(0, n, max(1, size))]


def run_tasks(tasks: Sequence[Callable[[], T]], workers: Optional[int] = None,
              float_threads: Optional[int] = None) -> list[T]:
    """Results of `tasks` (in order), run on up to `workers` threads (default: `budget()`) with
    one intra-op thread each, in the caller's grad and inference mode; `float_threads` (default:
    the caller's) is what `run_float` gives their float transforms."""
    if not tasks:
        return []
    total = workers or budget()
    workers = max(1, min(total, len(tasks)))
    share = max(1, total // len(tasks))
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    depth = getattr(_LOCAL, "depth", 0) + 1
    floats = float_threads if float_threads is not None else getattr(_LOCAL, "float_threads", 1)

    def run(task: Callable[[], T]) -> T:
        outer = (getattr(_LOCAL, "budget", None), getattr(_LOCAL, "depth", 0),
                 getattr(_LOCAL, "float_threads", 1))
        _LOCAL.budget, _LOCAL.depth, _LOCAL.float_threads = share, depth, floats
        torch.set_num_threads(1)  # this thread's OpenMP/MKL setting
        try:
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                return task()
        finally:
            _LOCAL.budget, _LOCAL.depth, _LOCAL.float_threads = outer

    old = torch.get_num_threads()
    try:
        if workers == 1:
            return [run(task) for task in tasks]
        futures = [_pool(depth, workers).submit(run, task) for task in tasks]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # Ctrl-C or a signal in the caller: stop what has not started
            for f in futures:
                f.cancel()
            wait(futures)  # running tasks end before the caller frees what they share
            raise
        failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
        if failed:  # a task failed (a corrupt tile): what has not started never will
            for f in futures:
                f.cancel()
            wait(futures)
            raise failed[0].exception()
        return [f.result() for f in futures]
    finally:
        torch.set_num_threads(old)  # restores the process-wide default that tasks changed


__all__ = ["ALONE_THREADS", "budget", "chunks", "float_threads", "float_threads_for", "in_task", "intra_op_threads",
           "run_float", "run_tasks"]
