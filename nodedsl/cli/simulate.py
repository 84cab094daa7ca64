"""``nodedsl simulate FILE``: simulate a model and write the long CSV format."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError, Span
from .common import fail, load_or_fail


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def simulate(
        path: str,
        model: str | None = typer.Option(None, "--model", "-m", help="model to simulate (default: the only/last one)"),
        t_end: float = typer.Option(10.0, "--t-end", help="final time"),
        step: float = typer.Option(0.01, "--step", help="output time step"),
        times: str | None = typer.Option(None, "--times", help="CSV file with a column 't' of output times"),
        set_: list[str] = typer.Option([], "--set", help="initial state, e.g. --set theta=0.5 (repeatable)"),
        input_: list[str] = typer.Option([], "--input", help="input signal: name=expression-of-t or name=file.csv"),
        solver: str = typer.Option("dopri5", "--solver", help="solver name (see docs/solvers.md)"),
        solver_step: float | None = typer.Option(None, "--solver-step", help="step of fixed-step solvers"),
        energy: bool = typer.Option(False, "--energy", help="add H and power columns (port-Hamiltonian models)"),
        samples: int | None = typer.Option(None, "--samples", help="SDE models: number of sample paths (default 1)"),
        seed: int = typer.Option(0, "--seed", help="SDE models: seed of the Brownian paths"),
        quantiles: bool = typer.Option(False, "--quantiles", help="SDE models: add mean and 5/50/95% columns"),
        out: str = typer.Option("-", "--output", "-o", help="output CSV (default: stdout)"),
    ) -> None:
        """Simulate a model and write the long CSV format (trajectory, t, states, outputs)."""
        from ..simulate import SimulationRequest, run_simulation, write_csv

        prog = load_or_fail(path)
        name = model or (prog.module.models[-1].name if prog.module.models else "")
        try:
            req = SimulationRequest(
                model=name,
                t_end=t_end,
                step=step,
                times_csv=times,
                sets=tuple(set_),
                inputs=tuple(input_),
                solver=solver,
                solver_step=solver_step,
                energy=energy,
                samples=samples,
                seed=seed,
                quantiles=quantiles,
            )
            table = run_simulation(prog, req)
        except NodeDslError as err:
            fail(err, prog.sources)
        try:
            write_csv(table, None if out == "-" else out)
        except OSError as err:
            fail(NodeDslError.single("io-error", f"cannot write '{out}': {err.strerror}", Span(out, 0, 0)))
