"""``nodedsl bands-plot CSV -o PNG``: mean, median and 5-95% band over the sample paths of an SDE
simulation (``nodedsl simulate ... --samples N``; see :mod:`nodedsl.plots.bands`)."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError
from .common import fail


def register(app: typer.Typer) -> None:
    """Add the command ``bands-plot CSV -o PNG`` to a typer ``app`` (the main ``nodedsl`` app)."""

    @app.command("bands-plot")
    def bands_plot(
        csv_path: str = typer.Argument(..., metavar="CSV", help="output of `nodedsl simulate ... --samples N`"),
        out: str = typer.Option("bands.png", "--output", "-o", help="PNG to write"),
        state: list[str] = typer.Option([], "--state", help="only these columns (repeatable)"),
        title: str = typer.Option(None, "--title", help="figure title"),
    ) -> None:
        """Plot the mean, median and 5-95% band over the sample paths of a simulation."""
        from ..plots.bands import plot_bands

        try:
            summary = plot_bands(csv_path, out, states=state or None, title=title)
        except NodeDslError as err:
            fail(err)
        typer.echo(f"{out}: {summary['paths']} path(s), states {', '.join(summary['states'])}")
