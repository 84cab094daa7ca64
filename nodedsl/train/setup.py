"""The pieces of a training run: its result, the solver and optimizer built from the config, minibatches
of windows, the windows' initial states, and the intra-op thread setting (restored afterwards).

Example:
    >>> from nodedsl.frontend.config import StepSchedule
    >>> round(schedule_factor(StepSchedule(kind="step", every=10, gamma=0.5), 25, 100, 1e-3), 3)
    0.25
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from .rollout import initial_states, time_groups

__all__ = [
    "CONFIG_ERRORS",
    "MAX_ROLLBACKS",
    "Progress",
    "Shooting",
    "TrainResult",
    "build_solver",
    "clone_state",
    "intra_op_threads",
    "make_optimizer",
    "minibatches",
    "schedule_factor",
]


Progress = Callable[[int, int, float, "float | None", "float | None"], None]
REMAINDER_EVERY = 10  # optimizer steps between two steps of a learned solver remainder (taylor)
# each remainder step: Adam at this rate on this many random states against RK4 with this many substeps.
# benchmarks/tlnode.py, 3 seeds: with these, time to dopri5's error is 5.6-33x shorter than dopri5's on
# Van der Pol (3.3-24x refitting every 5 steps; 1.4-3x with lr 1e-3 on every state and 16 substeps, a
# fit 5x costlier than a model step)
REMAINDER_LR, REMAINDER_ROWS, REMAINDER_SUBSTEPS = 1e-2, 64, 8
CONFIG_ERRORS = ("solver", "gradient", "state_dim")  # SolverError options that no rollback can fix
MAX_ROLLBACKS = 20  # consecutive non-finite steps before a run is declared diverged


@dataclass
class TrainResult:
    """What a training run produced (the model itself holds the trained parameters)."""

    status: str  # completed | early_stopped | diverged
    epochs_run: int
    history: list[dict]
    train_loss: float
    val_loss: float | None
    best_epoch: int | None
    best_val_loss: float | None
    parameters: dict
    violations: dict[str, float]
    multipliers: dict[str, list[float]]
    mu: float | None
    rollbacks: int
    wall_time: float
    fully_observed: bool
    x0_train: torch.Tensor | None = None
    x0_val: torch.Tensor | None = None
    checkpoint: str | None = None
    extra: dict = field(default_factory=dict)

    def worst_violation(self) -> float | None:
        return max(self.violations.values()) if self.violations else None


def build_solver(spec, dt: float, state_dim: int):
    """The solver of a ``SolverSpec``; a missing ``step`` is the data's sampling interval ``dt``."""
    from ..solvers import SolverError, make_solver

    opts = dict(spec.options)
    if spec.kind == "taylor" and opts.get("remainder", True) and "state_dim" not in opts:
        opts["state_dim"] = state_dim
    try:
        return make_solver(spec.kind, **opts)
    except SolverError as err:
        if err.option == "step" and "step" not in opts:
            return make_solver(spec.kind, **opts, step=dt)
        raise


def schedule_factor(schedule, epoch: int, epochs: int, base_lr: float) -> float:
    """Learning-rate multiplier of ``schedule`` at ``epoch`` (0-based)."""
    if schedule is None:
        return 1.0
    if schedule.kind == "cosine":
        floor = min(schedule.min_lr / base_lr, 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    if schedule.kind == "step":
        return schedule.gamma ** (epoch // schedule.every)
    if schedule.kind == "exponential":
        return schedule.gamma**epoch
    return 1.0


def make_optimizer(spec, params, model=None):
    if spec.kind in ("gauss_newton", "kfac"):
        from .second_order import KFAC, GaussNewton, linear_layers

        if spec.kind == "gauss_newton":
            return GaussNewton(params, lr=spec.lr, damping=spec.damping, max_params=spec.max_params)
        options = spec.model_dump(exclude={"kind"})
        return KFAC(params, linear_layers(model) if model is not None else [], **options)
    if spec.kind == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.kind == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.LBFGS(
        params, lr=spec.lr, max_iter=spec.max_iter, history_size=spec.history_size, line_search_fn="strong_wolfe"
    )


def minibatches(groups, size: int, g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled minibatches of window indices, each inside one time-grid group."""
    out = []
    for rows, grid in groups:
        perm = rows[torch.randperm(len(rows), generator=g)]
        out.extend((perm[i : i + size], grid) for i in range(0, len(perm), size))
    order = torch.randperm(len(out), generator=g).tolist()
    return [out[i] for i in order]


def clone_state(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(clone_state(v) for v in obj)
    return copy.deepcopy(obj)


class Shooting:
    """The windows of one split, with their initial states (fixed from data, or trained)."""

    def __init__(self, model, windows, obs_map, learned: bool):
        dtype = model.x0_default.dtype
        if windows.y.dtype != dtype or windows.u.dtype != dtype:
            windows = replace(windows, y=windows.y.to(dtype), u=windows.u.to(dtype))
        self.w = windows
        self.groups = time_groups(windows.t)
        x0 = initial_states(model, windows.y[:, 0], obs_map)
        self.learned = learned
        self.x0 = torch.nn.Parameter(x0) if self.learned else x0

    def initial(self, idx: torch.Tensor) -> torch.Tensor:
        return self.x0[idx]

    irregular = False  # True: windows on their own time grids, stepped together (train/irregular.py)

    def merge_grids(self) -> None:
        """One group of every window, each later stepped on its own times (see ``irregular_rollout``)."""
        if len(self.groups) > 1:
            self.groups = [(torch.arange(len(self.w)), self.w.t[0] - self.w.t[0, 0])]
            self.irregular = True


class intra_op_threads:
    """Run with ``n`` intra-op threads, restoring the previous setting afterwards (None: unchanged).

    Small models train several times faster on one thread: per-op threading overhead dominates."""

    def __init__(self, n: int | None):
        self.n, self.before = n, None

    def __enter__(self):
        if self.n is not None:
            self.before = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.before is not None:
            torch.set_num_threads(self.before)
