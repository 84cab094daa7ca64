"""Training: multiple shooting, the augmented Lagrangian for constraints, checkpoints, metrics, plots.

See docs/training.md. The library never prints; the CLI (:mod:`nodedsl.cli.train`) draws progress.

Example:
    >>> from nodedsl.train import fit, TrainResult, run_training, evaluate, plot_run   # doctest: +SKIP
"""

from ..io.checkpoint import load_checkpoint, load_weights, save_checkpoint
from .constraints import AugmentedLagrangian
from .loop import TrainResult, build_solver, fit, schedule_factor
from .metrics import rollout_errors
from .rollout import observation_map, rollout
from .run import evaluate, load_training_data, plot_run, run_training, select_train

__all__ = [
    "AugmentedLagrangian",
    "TrainResult",
    "build_solver",
    "evaluate",
    "fit",
    "load_checkpoint",
    "load_training_data",
    "load_weights",
    "observation_map",
    "plot_run",
    "rollout",
    "rollout_errors",
    "run_training",
    "save_checkpoint",
    "schedule_factor",
    "select_train",
]
