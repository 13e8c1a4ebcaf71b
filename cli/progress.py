"""A rich progress bar on stderr for long encodes and decodes (only on a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """Yields a `(done, total)` callback, or None when stderr is not a terminal or `enabled` is off."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bar = Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("tiles"),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    )
    task = bar.add_task(label, total=None)
    with bar:

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def archive_progress(enabled: bool = True) -> Iterator[Callable[[int, int, dict], None] | None]:
    """A `(done, total, record)` callback counting inputs (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bar = Progress(
        TextColumn("archiving"), BarColumn(), MofNCompleteColumn(), TextColumn("inputs"),
        TextColumn("{task.fields[last]}"), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    )
    task = bar.add_task("archiving", total=None, last="")
    with bar:

        def update(done: int, total: int, record: dict) -> None:
            bar.update(task, completed=done, total=total, last=f"{record['status']} {record['source']}"[-60:])

        yield update
