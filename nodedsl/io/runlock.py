"""Run directories: checked before anything is written, and locked by the process that writes them.

Two trainings started on one run directory used to interleave their files (the config of one, the
checkpoint of the other). :class:`RunLock` takes an exclusive ``flock`` on ``RUN/.lock`` for as long as a
command writes the directory; a second process gets a ``run-locked`` diagnostic at once instead of
waiting. The lock is released by the kernel when the process ends, however it ends (even ``kill -9``),
so a stale lock file never blocks a later run.

:func:`prepare_run_dir` turns the ways a run path can be unusable (a file, a dangling symlink, a
read-only or unwritable folder) into ``io-error`` diagnostics.

Example:
    >>> import tempfile, os
    >>> run = os.path.join(tempfile.mkdtemp(), "run")
    >>> with RunLock(run):
    ...     try:
    ...         RunLock(run).acquire()
    ...     except NodeDslError as err:
    ...         print(err.diagnostics[0].code)
    run-locked
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from ..core.diagnostics import Diagnostic, NodeDslError, Span

__all__ = ["RunLock", "io_error", "prepare_run_dir"]

LOCK_NAME = ".lock"


def io_error(err: OSError, what: str, fallback: str | Path) -> NodeDslError:
    """An ``io-error`` diagnostic for ``err`` (full disk, read-only folder, ...), at the file it names."""
    where = str(err.filename or fallback)
    reason = err.strerror or str(err)
    notes = []
    if err.errno is not None and err.errno in (28, 122):  # ENOSPC, EDQUOT
        notes.append("the disk is full; files written before keep their previous content (atomic writes)")
    return NodeDslError([Diagnostic("io-error", f"cannot {what} '{where}': {reason}", Span(where, 0, 0), tuple(notes))])


def prepare_run_dir(run: str | Path) -> Path:
    """Create the run directory ``run`` if needed; ``io-error`` if it cannot be a writable directory."""
    run = Path(run)
    span = Span(str(run), 0, 0)
    if os.path.islink(run) and not os.path.exists(run):
        raise NodeDslError.single("io-error", f"run directory '{run}' is a dangling symbolic link", span)
    if run.exists() and not run.is_dir():
        raise NodeDslError.single(
            "io-error", f"run directory '{run}' exists and is not a directory", span, "choose another --run path"
        )
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise io_error(err, "create the run directory", run) from None
    if not os.access(run, os.W_OK | os.X_OK):
        raise NodeDslError.single("io-error", f"run directory '{run}' is not writable", span)
    return run


class RunLock:
    """An exclusive, non-blocking lock on a run directory (``with RunLock(run): ...``)."""

    def __init__(self, run: str | Path):
        self.run = Path(run)
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        prepare_run_dir(self.run)
        path = self.run / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise io_error(err, "create the lock file", path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise NodeDslError.single(
                "run-locked",
                f"run directory '{self.run}' is in use by another nodedsl process"
                + (f" (pid {holder})" if holder.isdigit() else ""),
                Span(str(self.run), 0, 0),
                "wait for it to finish, or choose another --run directory",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
