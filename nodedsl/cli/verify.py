"""The ``verify`` command: a reachtube (GoTube, or the Gronwall baseline) and a property checked over it.

Example::

    nodedsl verify examples/pendulum.node --model PendulumTruth --center theta=1 --center omega=0 \\
        --radius 0.05 --t-end 5 --step 0.1 --property "theta^2 + omega^2 <= 4" -o tube.csv --plot tube.png
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..core.diagnostics import NodeDslError, Span

__all__ = ["register"]


def _default_model(prog, run: str | None) -> str:
    if run is not None:
        config = Path(run) / "config.json"
        try:
            name = json.loads(config.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            name = None
        if isinstance(name, str):
            return name
    return prog.module.models[-1].name if prog.module.models else ""


def register(app: typer.Typer) -> None:
    """Add ``verify`` to ``app``."""

    @app.command("verify")
    def verify_cmd(
        path: str = typer.Argument(..., help="the .node file"),
        model: str | None = typer.Option(None, "--model", "-m", help="model (default: the run's, or the last)"),
        run: str | None = typer.Option(None, "--run", help="a training run directory: verify the trained model"),
        center: list[str] = typer.Option([], "--center", help="centre of the initial ball: NAME=V (repeatable)"),
        radius: float = typer.Option(0.1, "--radius", help="radius of the initial ball"),
        norm: str = typer.Option("2", "--norm", help="norm of the ball and of the tube: 2 or inf"),
        t_end: float = typer.Option(1.0, "--t-end", help="horizon"),
        step: float = typer.Option(0.1, "--step", help="output time step"),
        confidence: float = typer.Option(0.99, "--confidence", help="probability that the tube is conservative"),
        samples: int | None = typer.Option(None, "--samples", help="boundary samples (default: from --confidence)"),
        prop: str | None = typer.Option(None, "--property", help="e.g. 'x^2 + v^2 <= 4', checked over the tube"),
        method: str = typer.Option("gotube", "--method", help="gotube (statistical) or lipschitz (Gronwall)"),
        no_baseline: bool = typer.Option(False, "--no-baseline", help="gotube without the Gronwall tube beside it"),
        set_: list[str] = typer.Option([], "--set", help="hold an input at a value: NAME=V (repeatable)"),
        solver: str = typer.Option("rk4", "--solver", help="fixed-step solver"),
        solver_step: float | None = typer.Option(None, "--solver-step", help="solver step (default <= 0.01)"),
        device: str = typer.Option("cpu", "--device", help="cpu or cuda"),
        seed: int = typer.Option(0, "--seed", help="seed of the samples"),
        out: str = typer.Option("-", "--output", "-o", help="tube CSV (default: stdout)"),
        plot: str | None = typer.Option(None, "--plot", help="write a PNG of the tube"),
    ) -> None:
        """Bound every trajectory from a ball of initial states by a tube; check a property over it."""
        from ..analysis.output import plot_tube, summary, write_tube_csv
        from ..analysis.verify import VerifyRequest, verify
        from .common import fail, load_or_fail

        prog = load_or_fail(path)
        req = VerifyRequest(
            model=model or _default_model(prog, run),
            center=tuple(center),
            radius=radius,
            norm=norm,
            t_end=t_end,
            step=step,
            confidence=confidence,
            samples=samples,
            property=prop,
            method=method,
            baseline=not no_baseline,
            run=run,
            sets=tuple(set_),
            solver=solver,
            solver_step=solver_step,
            device=device,
            seed=seed,
        )
        sources = dict(prog.sources)
        if prop is not None:
            sources["<--property>"] = prop
        try:
            tube = verify(prog, req)
        except NodeDslError as err:
            fail(err, sources)
        try:
            write_tube_csv(tube, None if out == "-" else out)
            if plot is not None:
                plot_tube(tube, plot)
        except OSError as err:
            target = plot if plot is not None and out != "-" else out
            fail(NodeDslError.single("io-error", f"cannot write '{target}': {err.strerror}", Span(target, 0, 0)))
        for line in summary(tube):
            typer.echo(line, err=out == "-")
        if tube.property is not None and tube.property.verdict == "violated":
            raise typer.Exit(3)
