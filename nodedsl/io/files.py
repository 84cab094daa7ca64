"""Safe reads of user-named files: regular files only, and never more bytes than a limit.

A path at a FIFO blocks a plain ``open`` forever, ``/dev/zero`` never ends, a device may have side
effects: every file that a ``.node`` import, a data path or ``--times``/``--input`` names goes through
:func:`check_regular` (a ``stat`` that cannot block) and is read by :func:`read_bytes`, which stops at
the limit instead of allocating what the file claims.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.txt"); _ = open(p, "w").write("hi")
    >>> read_bytes(p, "source-bytes")
    b'hi'
    >>> try:
    ...     read_bytes("/dev/zero", "source-bytes")
    ... except NodeDslError as err:
    ...     err.diagnostics[0].code
    'not-a-file'
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..core.limits import limit, over_limit

__all__ = ["check_regular", "open_regular", "read_bytes", "read_text"]


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_regular(path: str | Path, span: Span | None = None, what: str = "file") -> os.stat_result:
    """``stat`` of ``path`` (following links); ``not-a-file`` unless it is a regular file, ``file-not-found``
    if missing, ``unreadable-file`` for a symlink loop or another ``stat`` failure."""
    where = span or Span(str(path), 0, 0)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NodeDslError.single("file-not-found", f"cannot find {what} '{path}'", where) from None
    except OSError as err:  # ELOOP (a symlink loop), EACCES, ENAMETOOLONG, ...
        raise NodeDslError.single("unreadable-file", f"cannot read {what} '{path}': {err.strerror}", where) from None
    if not stat.S_ISREG(st.st_mode):
        raise NodeDslError(
            [
                Diagnostic(
                    "not-a-file",
                    f"{what} '{path}' is {_kind(st.st_mode)}, not a regular file",
                    where,
                    ("nodedsl reads only regular files (no FIFOs, devices or directories)",),
                )
            ]
        )
    return st


def read_bytes(path: str | Path, limit_name: str, span: Span | None = None, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most the limit ``limit_name`` (``too-large`` beyond)."""
    where = span or Span(str(path), 0, 0)
    check_regular(path, span, what)
    cap = limit(limit_name)
    try:
        # O_NONBLOCK: if the path was swapped for a FIFO after the stat, open does not block
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise NodeDslError.single("unreadable-file", f"cannot read {what} '{path}': {err.strerror}", where) from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise NodeDslError.single("not-a-file", f"{what} '{path}' is not a regular file", where)
        data = fh.read(cap + 1)
    if len(data) > cap:
        size = os.stat(path).st_size
        raise NodeDslError([over_limit(limit_name, max(size, len(data)), f"{what} '{path}'", where)])
    return data


def open_regular(path: str | Path, limit_name: str, span: Span | None = None, what: str = "file") -> BinaryIO:
    """The regular file ``path`` opened for reading (binary), once its size is within ``limit_name``: for
    readers that stream the file themselves (pyarrow). The caller closes it."""
    where = span or Span(str(path), 0, 0)
    check_regular(path, span, what)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # no blocking on a swapped-in FIFO
    except OSError as err:
        raise NodeDslError.single("unreadable-file", f"cannot read {what} '{path}': {err.strerror}", where) from None
    fh = os.fdopen(fd, "rb")
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode):
        fh.close()
        raise NodeDslError.single("not-a-file", f"{what} '{path}' is not a regular file", where)
    if st.st_size > limit(limit_name):
        fh.close()
        raise NodeDslError([over_limit(limit_name, st.st_size, f"{what} '{path}'", where)])
    return fh


def read_text(path: str | Path, limit_name: str, span: Span | None = None, what: str = "file") -> str:
    """:func:`read_bytes` decoded as UTF-8 (``unreadable-file`` if it is not UTF-8)."""
    data = read_bytes(path, limit_name, span, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        where = span or Span(str(path), 0, 0)
        raise NodeDslError.single(
            "unreadable-file", f"{what} '{path}' is not UTF-8 text (byte {err.start})", where
        ) from None
