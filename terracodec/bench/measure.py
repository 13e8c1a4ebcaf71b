"""Wall time and peak memory of one call, measured the same way for every codec.

Peak memory is the kernel's resident-set high-water mark (`VmHWM`), reset just before the call
through `/proc/self/clear_refs` (Linux >= 4.0), minus the resident set before the call: it sees
every allocation, NumPy, torch or C library alike. Free heap memory is handed back to the
kernel first (glibc `malloc_trim`), so that the call's allocations show up as new resident
pages; what an allocator still keeps from earlier calls (e.g. thread arenas) and reuses is not
counted again, so the figure is a lower bound of what a fresh process would need. Where /proc
is not writable, tracemalloc's peak (Python and NumPy allocations only) is used instead and
`METHOD` says so.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _can_reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kb("VmHWM")
        return True
    except OSError:
        return False


METHOD = "rss-high-water-mark" if _can_reset_hwm() else "tracemalloc"


def _trimmer() -> Callable[[], None]:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):
        return lambda: None


_trim = _trimmer()


def measure(fn: Callable[[], T]) -> tuple[T, float, int]:
    """(fn(), seconds, peak extra bytes) of one call."""
    if METHOD == "rss-high-water-mark":
        _trim()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kb("VmRSS")
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        peak = max(0, _status_kb("VmHWM") - before) * 1024
        return out, seconds, peak
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    try:
        out = fn()
    finally:
        seconds = time.perf_counter() - start
        peak = max(0, tracemalloc.get_traced_memory()[1] - base)
        if started:
            tracemalloc.stop()
    return out, seconds, peak


__all__ = ["METHOD", "measure"]
