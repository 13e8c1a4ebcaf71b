"""Turning exceptions, warnings and signals into one-line messages: the CLI never shows a
traceback.

Our own errors (`TerracodecError`) exit 1 with `error: <message>`; anything else is a bug and
exits 2 with a one-line `error: internal error ...` (set TEC_DEBUG=1 to see the traceback).
Warnings (`TerracodecWarning`) print as `warning: <message>`. SIGTERM and SIGHUP unwind like
Ctrl-C, so temporary files are removed on the way out (exit 143 / 129; Ctrl-C 130). GDAL's own
log lines (libtiff's complaints about a full disk, ...) are silenced: the error says it once.
"""

from __future__ import annotations

import logging
import os
import signal
import warnings
from typing import Any

import click

from terracodec.errors import TerracodecError, TerracodecWarning


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (cleaning up) and exit 128 + signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str, code: int) -> None:
    """Print `error: message` on stderr and leave with `code`."""
    click.echo(f"error: {_one_line(message)}", err=True)
    raise click.exceptions.Exit(code)


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _install_handlers() -> None:
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _terminate)
    except (ValueError, AttributeError, OSError):  # not the main thread, or no such signal
        pass
    if not os.environ.get("TEC_DEBUG"):
        logging.getLogger("rasterio").setLevel(logging.CRITICAL)


def _show(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, TerracodecWarning):
            click.echo(f"warning: {_one_line(str(w.message))}", err=True)
        elif os.environ.get("TEC_DEBUG"):  # libraries' own warnings (rasterio's, ...): debug only
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


class ErrorHandlingGroup(click.Group):
    """A click group whose commands report errors and warnings in one line each."""

    def invoke(self, ctx: click.Context) -> Any:
        _install_handlers()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", TerracodecWarning)
            try:
                return self._invoke(ctx)
            finally:
                _show(caught)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except TerracodecError as exc:
            fail(str(exc), 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Terminated as exc:
            fail(f"terminated by signal {exc.signum}", 128 + exc.signum)
        except MemoryError:
            fail("out of memory", 1)
        except OSError as exc:
            if os.environ.get("TEC_DEBUG"):
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}{where}", 1)
        except Exception as exc:  # a bug: still one line, but say so
            if os.environ.get("TEC_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (TEC_DEBUG=1 shows the traceback)", 2)
