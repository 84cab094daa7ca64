"""The ``nodedsl`` command line: wires the stages together and renders diagnostics.

Example::

    nodedsl check examples/*.node
    nodedsl show examples/msd.node --model MassSpringDamper
    nodedsl simulate examples/pendulum.node --model PendulumTruth --t-end 5 --step 0.01 -o swing.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..core.diagnostics import Diagnostic, NodeDslError, Span, render

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="nodedsl: declare dynamical systems with known physics and learned terms; check, simulate and train them.",
)


def report(diags, sources: dict[str, str] | None = None) -> None:
    """Print diagnostics to stderr in ``file:line:col: error[code]: message`` form."""
    sources = sources or {}
    for d in diags:
        text = sources.get(d.span.file)
        if text is None and d.span.file and Path(d.span.file).is_file():
            try:
                text = Path(d.span.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = None
        typer.echo(render(d, text), err=True)


def fail(err: NodeDslError, sources: dict[str, str] | None = None) -> None:
    report(err.diagnostics, sources)
    n = sum(1 for d in err.diagnostics if d.severity == "error")
    typer.echo(f"{n} error{'s' if n != 1 else ''}", err=True)
    raise typer.Exit(1)


def load_or_fail(path: str):
    from ..program import load

    try:
        return load(path)
    except NodeDslError as err:
        fail(err)


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


@app.command()
def show(
    path: str,
    model: str | None = typer.Option(None, "--model", "-m", help="only this model"),
    latex: bool = typer.Option(False, "--latex", help="LaTeX instead of plain text"),
) -> None:
    """Print checked models in mathematical form (derived pH dynamics, constraints, parameters, nets)."""
    from ..symbolic.show import format_system

    prog = load_or_fail(path)
    names = [model] if model else [m.name for m in prog.module.models]
    try:
        for name in names:
            typer.echo(format_system(prog.system(name), prog.info(name), latex=latex))
            typer.echo("")
    except NodeDslError as err:
        fail(err, prog.sources)


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


def _register_optional() -> None:
    """Training commands live in nodedsl.cli.train, the energy plot in nodedsl.plots.energy."""
    from ..plots import bands as bands_plot
    from ..plots import energy as energy_plot
    from . import train as cli_train

    cli_train.register(app)
    energy_plot.register(app)
    bands_plot.register(app)


_register_optional()


def main() -> None:
    """Entry point: never lets a Python traceback reach the user."""
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as err:
        diag = Diagnostic(
            "internal",
            f"internal error: {type(err).__name__}: {err}",
            Span("<nodedsl>", 0, 0),
            ("please report this with the input that caused it",),
        )
        typer.echo(render(diag), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
