"""The ensemble forms of ``eval`` and ``plot`` (``--runs DIR...``): printing what
:mod:`nodedsl.sweep.ensemble` computes.

Example::

    nodedsl eval examples/pendulum.node --runs runs/a runs/b runs/c -o runs/ensemble
    nodedsl plot --runs runs/a runs/b runs/c -o bands.png
"""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError
from .common import fail

__all__ = ["eval_ensemble", "plot_ensemble_bands"]


def _pm(mean: float, std: float) -> str:
    return f"{mean:.4g} +- {std:.2g}"


def eval_ensemble(prog, runs: list[str], model: str | None, data: str | None, out: str | None) -> None:
    """``nodedsl eval FILE --runs ...``: mean +- spread of each metric over the members."""
    from ..sweep import evaluate_ensemble

    try:
        res = evaluate_ensemble(runs, prog, model, data, out)
    except NodeDslError as err:
        fail(err, prog.sources)
    mean, std = res["mean"], res["std"]
    typer.echo(
        f"{res['model']}: ensemble of {len(runs)} runs over {res['trajectories']} trajectories ({res['on']}):"
        f" RMSE {_pm(mean['rmse'], std['rmse'])}, normalized {_pm(mean['nrmse'], std['nrmse'])}"
    )
    for name, e in mean["per_output"].items():
        s = std["per_output"][name]
        typer.echo(
            f"  {name}: RMSE {_pm(e['rmse'], s['rmse'])}, MAE {_pm(e['mae'], s['mae'])},"
            f" prediction spread {res['prediction_spread'][name]:.3g}"
        )
    for name, v in mean.get("parameters", {}).items():
        sv = std["parameters"][name]
        typer.echo(f"  {name} = {_pm(v, sv) if isinstance(v, float) else f'{v} +- {sv}'}")
    for name, v in mean.get("violations", {}).items():
        typer.echo(f"  constraint {name}: violation {_pm(v, std['violations'][name])}")
    typer.echo(f"  the ensemble-mean prediction: RMSE {res['ensemble_mean_prediction']['rmse']:.4g}")
    if out is not None:
        typer.echo(f"written: {out}/ensemble.json, {out}/ensemble.npz")


def plot_ensemble_bands(runs: list[str], out: str, trajectory: int) -> None:
    """``nodedsl plot --runs ...``: prediction bands across the members for one held-out trajectory."""
    from ..sweep import plot_ensemble

    try:
        summary = plot_ensemble(runs, out, trajectory=trajectory)
    except NodeDslError as err:
        fail(err)
    typer.echo(f"written: {out} ({summary['members']} members, trajectory {summary['trajectory']})")
