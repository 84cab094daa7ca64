"""``nodedsl sweep --optuna TRIALS``: Optuna (the optional extra ``sweep``) chooses which grid points to
train, each grid key a categorical choice among its ``--grid`` values; a trial trains its grid point with
every seed and scores it by the mean metric of those runs (``runner.metric``: validation rollout RMSE).

Trials are asked ``jobs`` at a time (Optuna's ask-and-tell interface) so that a process pool trains them
together. The sampler is seeded (TPE, seed 0), and a grid point Optuna proposes again reuses its finished
run directories, so a resumed search retraces the same trials without training them again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..core.diagnostics import Diagnostic, NodeDslError
from .grid import CMDLINE, RunSpec

__all__ = ["optuna_search"]


def _optuna():
    try:
        import optuna
    except ImportError:
        raise NodeDslError(
            [
                Diagnostic(
                    "bad-argument",
                    "--optuna needs the package optuna",
                    CMDLINE,
                    ("install it with: pip install 'nodedsl[sweep]'",),
                )
            ]
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def optuna_search(
    specs: list[RunSpec],
    grid: dict[str, list[str]],
    trials: int,
    jobs: int,
    execute: Callable[[list[RunSpec]], dict[str, dict]],
    stopped: Callable[[], bool],
    metric: Callable[[dict], float],
    seed: int = 0,
) -> list[tuple[dict[str, str], float]]:
    """Run ``trials`` Optuna trials over the grid; returns (grid point, score) per told trial.

    ``execute`` trains runs and returns their ``sweep.csv`` rows; ``metric`` scores a row."""
    optuna = _optuna()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    keys = [k for k in grid if k != "seed"]
    told: list[tuple[dict[str, str], float]] = []
    left = trials
    while left > 0 and not stopped():
        batch = [study.ask() for _ in range(min(jobs, left))]
        chosen = [{k: str(t.suggest_categorical(k, grid[k])) for k in keys} for t in batch]
        runs = [s for s in specs if any(s.params == c for c in chosen)]
        rows = execute(runs)
        for trial, point in zip(batch, chosen):
            scores = [metric(rows[s.name]) for s in runs if s.params == point and s.name in rows]
            if stopped() and len(scores) < sum(s.params == point for s in runs):
                study.tell(trial, state=optuna.trial.TrialState.FAIL)  # interrupted: not a measurement
                continue
            score = sum(scores) / len(scores) if scores else math.inf
            if math.isfinite(score):
                study.tell(trial, score)
                told.append((point, score))
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        left -= len(batch)
    return told
