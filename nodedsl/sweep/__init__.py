"""Many runs of one train block: sweeps over a grid of train-block settings and seeds (a process pool or
Optuna), and ensembles of trained runs (mean and spread of their evaluations and predictions, bands).

``nodedsl sweep`` (:func:`run_sweep`), ``nodedsl eval --runs`` (:func:`evaluate_ensemble`) and
``nodedsl plot --runs`` (:func:`plot_ensemble`) call these; docs/scaling.md section 5 describes them.
"""

from .ensemble import evaluate_ensemble, plot_ensemble
from .grid import RunSpec, parse_grid, plan_runs
from .runner import SweepResult, run_sweep

__all__ = ["RunSpec", "SweepResult", "evaluate_ensemble", "parse_grid", "plan_runs", "plot_ensemble", "run_sweep"]
