"""``nodedsl sweep FILE --grid key=v1,v2 ... --seeds K [--jobs J] [--optuna TRIALS] -o SWEEPDIR``: one
training run per grid point and seed (see :mod:`nodedsl.sweep.runner`), a ``sweep.csv`` summary, the best
setting printed. Started again on the same folder, it trains only the runs that had not finished.

Example::

    nodedsl sweep examples/pendulum.node --grid lr=1e-3,3e-3 --grid batch=16,64 --seeds 2 -o sweeps/p
"""

from __future__ import annotations

import os

import typer

from ..core.diagnostics import NodeDslError
from .common import fail, load_or_fail


def register(app: typer.Typer) -> None:
    """Add the command ``sweep`` to a typer ``app`` (the main ``nodedsl`` app)."""

    @app.command("sweep")
    def sweep(
        path: str = typer.Argument(..., help="the .node file"),
        out: str = typer.Option(..., "--output", "-o", help="the sweep directory (one run directory per run)"),
        grid: list[str] = typer.Option(
            [], "--grid", help="key=v1,v2 (a train-block key as --set takes it); repeatable"
        ),
        seeds: int = typer.Option(1, "--seeds", help="seeds per grid point (the train block's seed, +1, ...)"),
        jobs: int = typer.Option(1, "--jobs", "-j", help="runs trained at once (worker processes)"),
        optuna: int | None = typer.Option(None, "--optuna", help="let Optuna pick this many grid points"),
        model: str | None = typer.Option(None, "--model", "--train", "-m", help="which train block (when several)"),
        set_: list[str] = typer.Option([], "--set", help="an override common to every run: --set epochs=50"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no line per finished run"),
        plots: bool = typer.Option(False, "--plots", help="draw each run's PNG plots (later: nodedsl plot --run)"),
    ) -> None:
        """Train every combination of the grid values times the seeds; summarize them in sweep.csv."""
        from ..sweep import parse_grid, run_sweep
        from .train import parse_sets

        prog = load_or_fail(path)
        stop = os.environ.get("NODEDSL_SWEEP_STOP_AFTER")  # tests: simulate an interruption after k runs
        try:
            result = run_sweep(
                path,
                parse_grid(grid),
                out,
                model=model,
                seeds=seeds,
                jobs=jobs,
                optuna_trials=optuna,
                sets=parse_sets(set_),
                stop_after=int(stop) if stop and stop.isdigit() else None,
                echo=None if quiet else typer.echo,
                plots=plots,
            )
        except NodeDslError as err:
            fail(err, prog.sources)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: finished runs are in {out}; run the same command to resume", err=True)
            raise typer.Exit(130) from None
        failed = sum(r.get("status") == "failed" for r in result.rows)
        typer.echo(
            f"{len(result.rows)} run(s) in {out}/sweep.csv: {result.trained} trained now, {result.reused} reused"
            + (f", {failed} failed" if failed else "")
        )
        if result.stopped:
            typer.echo("stopped early: run the same command to finish the sweep", err=True)
        if result.best is not None:
            shown = " ".join(f"{k}={v}" for k, v in result.best["params"].items()) or "(no grid)"
            typer.echo(
                f"best: {shown} (mean rollout RMSE {result.best['metric']:.4g} over {result.best['runs']} run(s))"
            )
        if failed == len(result.rows) and result.rows:
            raise typer.Exit(1)
