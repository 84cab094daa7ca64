"""Markers of models already proved, kept between processes: ``nodedsl check`` of an unchanged
port-Hamiltonian model then needs no SymPy (importing it is most of a warm check's time).

A marker is an empty file named after a hash of everything the proofs read (the model's declarations
and its sub-models', the nodedsl version and the proving code): present means "proved, nothing to
report". Only clean results are kept (a diagnostic has spans, which the hash leaves out), and nothing is
ever read back but the file's existence. The folder is the grammar cache's private one (mode 0700, owned
by the user); ``NODEDSL_NO_PROOF_CACHE`` turns the cache off.

Example:
    >>> import os, tempfile
    >>> saved = {k: os.environ.pop(k, None) for k in ("XDG_CACHE_HOME", "NODEDSL_NO_PROOF_CACHE")}
    >>> os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp()
    >>> proved("abc"), remember("abc"), proved("abc")
    (False, None, True)
    >>> _ = os.environ.pop("XDG_CACHE_HOME")
    >>> os.environ.update({k: v for k, v in saved.items() if v is not None})
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["proved", "remember"]


def _folder() -> Path | None:
    if os.environ.get("NODEDSL_NO_PROOF_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "nodedsl")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)  # makedirs gives only the leaf this mode
        os.makedirs(os.path.join(folder, "proved"), mode=0o700, exist_ok=True)
        st = os.stat(folder)
    except OSError:
        return None
    if not hasattr(os, "getuid") or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return Path(folder) / "proved"


def proved(key: str) -> bool:
    """Whether the model with this key was proved clean before."""
    folder = _folder()
    return folder is not None and (folder / key).is_file()


def remember(key: str) -> None:
    """Mark the key proved clean (best effort: a read-only cache only costs the next check SymPy)."""
    folder = _folder()
    if folder is None:
        return
    with contextlib.suppress(OSError):
        (folder / key).touch()
