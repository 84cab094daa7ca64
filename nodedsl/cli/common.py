"""What every command shares: printing diagnostics, failing with exit code 1, loading a file or failing.

Example:
    >>> from nodedsl.core.diagnostics import Diagnostic, NodeDslError
    >>> try:
    ...     fail(NodeDslError([Diagnostic("data-error", "bad")]))
    ... except Exception as exit_:
    ...     type(exit_).__name__
    'Exit'
"""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError
from .checking import render_all

__all__ = ["fail", "load_or_fail", "report"]


def report(diags, sources: dict[str, str] | None = None) -> None:
    """Print diagnostics to stderr in ``file:line:col: error[code]: message`` form."""
    for line in render_all(diags, sources):
        typer.echo(line, err=True)


def fail(err: NodeDslError, sources: dict[str, str] | None = None) -> None:
    """Print every diagnostic and the error count, then exit with status 1."""
    report(err.diagnostics, sources)
    n = sum(1 for d in err.diagnostics if d.severity == "error")
    typer.echo(f"{n} error{'s' if n != 1 else ''}", err=True)
    raise typer.Exit(1)


def load_or_fail(path: str):
    """The loaded program of ``path``, or its diagnostics printed and exit status 1."""
    from ..program import load

    try:
        return load(path)
    except NodeDslError as err:
        fail(err)
