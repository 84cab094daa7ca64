"""``nodedsl check FILE...``: parse and check files; a summary line per model, or every diagnostic.

The work is :func:`nodedsl.cli.checking.check_files`, which the console script also calls directly for a
plain ``nodedsl check FILE...`` (no typer import); this module is the typer route (``--help``, ``--``).
"""

from __future__ import annotations

import typer

from .checking import check_files


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def check(files: list[str] = typer.Argument(..., help="one or more .node files")) -> None:
        """Parse and check files: a one-line summary per model, or every diagnostic (exit 1)."""
        code = check_files(files, out=typer.echo, err=lambda line: typer.echo(line, err=True))
        if code:
            raise typer.Exit(code)
