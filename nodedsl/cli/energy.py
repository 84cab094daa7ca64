"""``nodedsl energy-plot CSV -o PNG``: H, dissipated and supplied power and the energy-balance residual of a
port-Hamiltonian simulation (see :mod:`nodedsl.plots.energy`)."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError
from .common import fail


def register(app: typer.Typer) -> None:
    """Add the command ``energy-plot CSV -o PNG`` to a typer ``app`` (the main ``nodedsl`` app)."""

    @app.command("energy-plot")
    def energy_plot(
        csv_path: str = typer.Argument(..., metavar="CSV", help="output of `nodedsl simulate ... --energy`"),
        out: str = typer.Option("energy.png", "--output", "-o", help="PNG to write"),
        title: str = typer.Option(None, "--title", help="figure title"),
    ) -> None:
        """Plot H, dissipated and supplied power and the energy-balance residual of a simulation."""
        try:
            from ..plots.energy import plot_energy  # numpy and matplotlib load only for this command

            summary = plot_energy(csv_path, out, title=title)
        except NodeDslError as err:
            fail(err)
        typer.echo(
            f"{out}: {summary['trajectories']} trajectory(ies); H {summary['H0']:.6g} -> "
            f"{summary['H_end']:.6g}, dissipated {summary['dissipated']:.6g}, supplied "
            f"{summary['supplied']:.6g}; max |residual| {summary['max_abs_residual']:.3g} "
            f"({summary['relative_residual']:.2e} of the energy scale)"
        )
