"""Turning exceptions into one-line messages: the CLI never shows a traceback.

Our own errors (`TerracodecError`) exit 1 with `error: <message>`; anything else is a bug and
exits 2 with a one-line `error: internal error ...` (set TEC_DEBUG=1 to see the traceback).
"""

from __future__ import annotations

import os
from typing import Any

import click

from terracodec.errors import TerracodecError


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def fail(message: str, code: int) -> None:
    """Print `error: message` on stderr and leave with `code`."""
    click.echo(f"error: {_one_line(message)}", err=True)
    raise click.exceptions.Exit(code)


class ErrorHandlingGroup(click.Group):
    """A click group whose commands report errors in one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except TerracodecError as exc:
            fail(str(exc), 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except OSError as exc:
            if os.environ.get("TEC_DEBUG"):
                raise
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            fail(f"{exc.strerror or exc}{where}", 1)
        except Exception as exc:  # a bug: still one line, but say so
            if os.environ.get("TEC_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (TEC_DEBUG=1 shows the traceback)", 2)
