"""Output files that appear whole or not at all.

Every output is written to a temporary file beside its final path and moved into place with
`os.replace` only once everything succeeded, so that an error (or Ctrl-C) never leaves a
half-written GeoTIFF or `.tec` behind. Several outputs (one GeoTIFF per frame) commit together.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from types import TracebackType

from terracodec.errors import InputError


class AtomicOutputs:
    """Hands out temporary paths and commits them (all) or removes them (all)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._created_dirs: list[Path] = []

    def make_dir(self, directory: Path) -> None:
        """Create an output directory; it is removed again on abort if it is still empty."""
        if directory.exists():
            if not directory.is_dir():
                raise InputError(f"cannot write to {directory}: it exists and is not a directory")
            return
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create directory {directory}: {exc.strerror or exc}") from None
        self._created_dirs.append(directory)

    def temp_for(self, final: str | os.PathLike, suffix: str = ".tmp") -> Path:
        """A fresh temporary file in the final file's directory."""
        final = Path(final)
        if final.is_dir():
            raise InputError(f"cannot write {final}: it is a directory")
        try:
            fd, name = tempfile.mkstemp(
                prefix=f".{final.name}.", suffix=suffix, dir=final.parent if str(final.parent) else "."
            )
        except OSError as exc:
            raise InputError(f"cannot write {final}: {exc.strerror or exc}") from None
        os.close(fd)
        temp = Path(name)
        self._pending.append((temp, final))
        return temp

    def discard(self, temp: Path) -> None:
        """Remove a temporary file that will not be committed (an intermediate)."""
        self._pending = [(t, f) for t, f in self._pending if t != temp]
        temp.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        """Move every temporary file onto its final path."""
        done = []
        try:
            for temp, final in self._pending:
                os.replace(temp, final)
                done.append(final)
        except OSError as exc:
            self.abort()
            raise InputError(f"cannot write {final}: {exc.strerror or exc}") from None
        self._pending = []
        return done

    def abort(self) -> None:
        """Remove every temporary file (and directories this object created, when empty)."""
        for temp, _ in self._pending:
            temp.unlink(missing_ok=True)
        self._pending = []
        for directory in reversed(self._created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass

    def __enter__(self) -> "AtomicOutputs":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
