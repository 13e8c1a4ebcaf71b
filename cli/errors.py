"""Turning exceptions, warnings and signals into one-line messages: the CLI never shows a
traceback.

Our own errors (`TerracodecError`) exit 1 with `error: <message>`; anything else is a bug and
exits 2 with a one-line `error: internal error ...` (set TEC_DEBUG=1 to see the traceback).
Warnings (`TerracodecWarning`) print as `warning: <message>`. SIGTERM, SIGHUP and Ctrl-C end
the command at once: its temporary outputs are removed, the one line is said and the process
exits 143 / 129 / 130 without unwinding, because worker threads may still be inside a tile and
closing datasets under them can crash (measured under load: SIGSEGV). GDAL's own log lines
(libtiff's complaints about a full disk, ...) are silenced: the error says it once.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
import tempfile
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import click

from terracodec.errors import TerracodecError, TerracodecWarning
from terracodec.io.atomic import abort_all


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str, code: int) -> None:
    """Print `error: message` on stderr and leave with `code`."""
    click.echo(f"error: {_one_line(message)}", err=True)
    raise click.exceptions.Exit(code)


def _terminate(signum: int, frame: Any) -> None:
    abort_all()
    _leave_now("interrupted" if signum == signal.SIGINT else f"terminated by signal {signum}", 128 + signum)


@contextmanager
def _signals_end_the_command() -> Iterator[None]:
    """SIGTERM, SIGHUP and SIGINT run `_terminate` while the command runs; the previous
    handlers come back afterwards (a command invoked in-process leaves its host as it was)."""
    saved = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            saved[sig] = signal.signal(sig, _terminate)
    except (ValueError, AttributeError, OSError):  # not the main thread, or no such signal
        pass
    if not os.environ.get("TEC_DEBUG"):
        logging.getLogger("rasterio").setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _show(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, TerracodecWarning):
            click.echo(f"warning: {_one_line(str(w.message))}", err=True)
        elif os.environ.get("TEC_DEBUG"):  # libraries' own warnings (rasterio's, ...): debug only
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


@contextmanager
def _c_stderr_captured() -> Iterator[None]:
    """What C libraries write to file descriptor 2 (libtiff's "No space left on device", twice,
    GDAL's "ERROR 1: ...") goes to a temporary file, shown only with TEC_DEBUG: the error line
    says it once. Python's own stderr keeps writing where it did."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    capture = tempfile.TemporaryFile()
    python_stderr = sys.stderr
    try:
        uses_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        uses_fd2 = False  # a test runner's stream: nothing to move
    os.dup2(capture.fileno(), 2)
    if uses_fd2:
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(saved), "wb"), encoding=python_stderr.encoding,
                                      errors="backslashreplace", line_buffering=True)
    try:
        yield
    finally:
        if uses_fd2:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)
        if os.environ.get("TEC_DEBUG"):
            capture.seek(0)
            os.write(2, capture.read())
        capture.close()


class ErrorHandlingGroup(click.Group):
    """A click group whose commands report errors and warnings in one line each (warnings
    first, the error last)."""

    def invoke(self, ctx: click.Context) -> Any:
        failure: tuple[str, int] | None = None
        with _signals_end_the_command(), _c_stderr_captured(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TerracodecWarning)
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure becomes one line
                failure = _failure(exc)
            finally:
                _show(caught)
                if failure is not None:
                    fail(*failure)


def _leave_now(message: str, code: int) -> None:
    """Say the one line and leave at once: no unwinding, no interpreter exit (waiting for worker
    threads there can take long on a busy machine, and tearing modules down under them can
    crash)."""
    click.echo(f"error: {_one_line(message)}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _failure(exc: BaseException) -> tuple[str, int]:
    """(message, exit code) of a failed command; re-raises what TEC_DEBUG wants to see."""
    if isinstance(exc, TerracodecError):
        return str(exc), 1
    if isinstance(exc, KeyboardInterrupt):  # raised by a library, not by our SIGINT handler
        return "interrupted", 130
    if isinstance(exc, MemoryError):
        return "out of memory", 1
    if os.environ.get("TEC_DEBUG") or not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return f"{exc.strerror or exc}{where}", 1
    return f"internal error: {type(exc).__name__}: {exc} (TEC_DEBUG=1 shows the traceback)", 2
