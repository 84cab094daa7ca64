"""The ``nodedsl`` console script: a plain ``nodedsl check FILE...`` skips the command-line framework.

Every other command line (options, ``--help``, other commands) goes to typer in :mod:`nodedsl.cli.main`.

Example::

    nodedsl check examples/*.node      # the fast route: no typer, no torch, no SymPy
    nodedsl check --help               # typer
"""

from __future__ import annotations

import sys

from .checking import check_files, guarded

__all__ = ["main"]


def _plain_check(argv: list[str]) -> bool:
    """True for ``check`` followed only by file names (an option or ``--`` needs typer's parsing)."""
    return len(argv) >= 2 and argv[0] == "check" and not any(a.startswith("-") for a in argv[1:])


def main() -> None:
    """Entry point: the fast ``check`` route, else the full command line; never a traceback."""
    argv = sys.argv[1:]
    if _plain_check(argv):
        guarded(lambda: sys.exit(check_files(argv[1:])))
    from .main import main as full

    full()


if __name__ == "__main__":
    main()
