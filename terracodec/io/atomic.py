"""Output files that appear whole or not at all, never over an input, never over a file by
surprise.

Every output is written to a temporary file beside its final path and moved into place only
once everything succeeded, so that an error, Ctrl-C or SIGTERM (the CLI turns it into an
exception) never leaves a half-written GeoTIFF or `.tec` behind. Several outputs (one GeoTIFF
per frame) commit together.

* Temporary names are `.<name>.<random>.part`: hidden, and matched by no `*.tif` / `*.tec` glob.
* Files are created with mode 0666 minus the umask, as any other program's outputs.
* Contents are flushed to disk (`fsync`) before the rename and the directory after it, so that a
  power cut leaves the old file or the new one, not an empty one.
* An existing file is replaced only with `overwrite=True`; a path in `protected` (the inputs
  of the run) never is. Without `overwrite`, the final move uses a hard link, which fails if a
  file appeared meanwhile (no check-then-replace race).
"""

from __future__ import annotations

import errno
import os
import secrets
import weakref
from pathlib import Path
from types import TracebackType
from typing import Iterable

from terracodec.errors import InputError


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_LIVE: "weakref.WeakSet[AtomicOutputs]" = weakref.WeakSet()


def abort_all() -> None:
    """Remove the temporaries (and files half-committed) of every live `AtomicOutputs`: what a
    process does when a signal ends it without unwinding (worker threads may still be inside a
    tile, and closing their datasets under them can crash)."""
    for outputs in list(_LIVE):
        for path in outputs._placing:
            path.unlink(missing_ok=True)
        outputs.abort()


class AtomicOutputs:
    """Hands out temporary paths and commits them (all) or removes them (all)."""

    def __init__(self, *, overwrite: bool = False, protected: Iterable[str | os.PathLike] = ()) -> None:
        self.overwrite = overwrite
        self.protected = [Path(p) for p in protected]
        self._pending: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []
        self._created_dirs: list[Path] = []
        self._placing: list[Path] = []  # finals already placed by a commit in progress
        _LIVE.add(self)

    def check_target(self, final: str | os.PathLike) -> Path:
        """`final`, or InputError when it may not be written (an input, a directory, or an
        existing file without `overwrite`)."""
        final = Path(final)
        for p in self.protected:
            if _same_file(final, p):
                raise InputError(f"refusing to write {final}: it is an input of this run")
        if final.is_dir():
            raise InputError(f"cannot write {final}: it is a directory")
        if (final.exists() or final.is_symlink()) and not self.overwrite:
            raise InputError(f"{final} exists (use --overwrite / overwrite=True to replace it)")
        if any(final == f for _, f in self._pending):
            raise InputError(f"{final} would be written twice")
        return final

    def make_dir(self, directory: Path) -> None:
        """Create an output directory; it is removed again on abort if it is still empty."""
        if directory.exists():
            if not directory.is_dir():
                raise InputError(f"cannot write to {directory}: it exists and is not a directory")
            return
        missing = []
        for parent in [directory, *directory.parents]:
            if parent.exists():
                break
            missing.append(parent)
        try:
            directory.mkdir(parents=True)
        except OSError as exc:
            raise InputError(f"cannot create directory {directory}: {exc.strerror or exc}") from None
        self._created_dirs.extend(reversed(missing))

    def temp_for(self, final: str | os.PathLike, *, scratch: bool = False, suffix: str = "") -> Path:
        """A fresh, empty temporary file in the final file's directory (mode 0666 & ~umask),
        moved onto `final` by `commit`; a `scratch` file is an intermediate, only removed.
        `suffix` follows `.part` for writers that pick a format by extension (matplotlib)."""
        final = Path(final) if scratch else self.check_target(final)
        parent = final.parent if str(final.parent) else Path(".")
        for _ in range(100):
            temp = parent / f".{final.name}.{secrets.token_hex(4)}.part{suffix}"
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            except OSError as exc:
                raise InputError(f"cannot write {final}: {exc.strerror or exc}") from None
            os.close(fd)
            if scratch:
                self._scratch.append(temp)
            else:
                self._pending.append((temp, final))
            return temp
        raise InputError(f"cannot write {final}: no free temporary name")  # pragma: no cover

    def discard(self, temp: Path) -> None:
        """Remove a temporary file that will not be committed (an intermediate)."""
        self._pending = [(t, f) for t, f in self._pending if t != temp]
        self._scratch = [t for t in self._scratch if t != temp]
        temp.unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        """Move every temporary file onto its final path (data flushed to disk first)."""
        done = self._placing = []
        final = None
        try:
            for temp, final in self._pending:
                fsync_file(temp)
            for temp, final in self._pending:
                self._place(temp, final)
                done.append(final)
            for directory in {f.parent for _, f in self._pending}:
                _fsync_dir(directory if str(directory) else Path("."))
        except (OSError, InputError) as exc:
            for path in done:  # all or nothing: what was placed goes again
                path.unlink(missing_ok=True)
            self.abort()
            if isinstance(exc, InputError):
                raise
            raise InputError(f"cannot write {final}: {exc.strerror or exc}") from None
        for temp in self._scratch:
            temp.unlink(missing_ok=True)
        self._pending, self._scratch, self._created_dirs, self._placing = [], [], [], []
        return done

    def _place(self, temp: Path, final: Path) -> None:
        if self.overwrite:
            os.replace(temp, final)
            return
        try:
            os.link(temp, final)  # fails if `final` exists: never replaces a file by surprise
        except FileExistsError:
            raise InputError(f"{final} exists (use --overwrite / overwrite=True to replace it)") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if final.exists():  # a file system without hard links: check, then rename
                raise InputError(f"{final} exists (use --overwrite / overwrite=True to replace it)") from None
            os.replace(temp, final)
            return
        temp.unlink()

    def abort(self) -> None:
        """Remove every temporary file (and directories this object created, when empty)."""
        for temp in [t for t, _ in self._pending] + self._scratch:
            temp.unlink(missing_ok=True)
        self._pending, self._scratch, self._placing = [], [], []
        for directory in reversed(self._created_dirs):
            try:
                directory.rmdir()
            except OSError:
                pass
        self._created_dirs = []

    def __enter__(self) -> "AtomicOutputs":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
