"""``nodedsl check FILE...``: parse and check files; a summary line per model, or every diagnostic."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError
from .common import report


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def check(files: list[str] = typer.Argument(..., help="one or more .node files")) -> None:
        """Parse and check files: a one-line summary per model, or every diagnostic (exit 1)."""
        from ..program import load

        failed = False
        for path in files:
            try:
                prog = load(path)
            except NodeDslError as err:
                report(err.diagnostics)
                n = sum(1 for d in err.diagnostics if d.severity == "error")
                typer.echo(f"{path}: {n} error{'s' if n != 1 else ''}", err=True)
                failed = True
                continue
            report(prog.warnings, prog.sources)
            for info in prog.checked.root_models():
                typer.echo(f"{path}: {info.summary()}")
            for ds in prog.module.datasets:
                typer.echo(f"{path}: dataset {ds.name}")
            for tr in prog.module.trains:
                typer.echo(f"{path}: train {tr.model}")
        if failed:
            raise typer.Exit(1)
