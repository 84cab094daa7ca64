"""The ``observe`` command: run a trained observer on recorded measurements.

Example::

    nodedsl train examples/observers.node --observer VdPEstimator
    nodedsl observe examples/observers.node --observer VdPEstimator --data measurements.csv -o estimates.csv
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.diagnostics import NodeDslError
from .common import fail, load_or_fail

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add ``observe`` to ``app``."""

    @app.command("observe")
    def observe(
        path: str = typer.Argument(..., help="the .node file"),
        observer: str = typer.Option(..., "--observer", help="the observer block"),
        data: str = typer.Option(..., "--data", help="CSV: trajectory (optional), t, one column per measure"),
        out: str = typer.Option("estimates.csv", "--out", "-o", help="where to write the estimates"),
        run: str | None = typer.Option(None, "--run", help="the observer's run directory (default runs/<observer>)"),
    ) -> None:
        """Estimate the full state from measurements with an observer trained by `train --observer`."""
        from ..train.observer_run import observe_file

        prog = load_or_fail(path)
        try:
            rows = observe_file(prog, observer, run or str(Path("runs") / observer), data, out)
        except NodeDslError as err:
            fail(err, prog.sources)
        typer.echo(f"{rows} estimates written: {out}")
