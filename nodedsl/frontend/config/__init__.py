"""Validated configuration of ``dataset`` and ``train`` blocks (pydantic v2 models), split by job.

- :mod:`.values`: the block's value AST -> plain Python (numbers, strings, lists, dicts, calls),
  recording the source span of every key;
- :mod:`.schema`: the pydantic models that validate the plain data;
- :mod:`.errors`: each pydantic error -> a :class:`~nodedsl.core.diagnostics.Diagnostic`
  (``unknown-key``, ``bad-value``, ``missing-key``) located at the offending key;
- :mod:`.validate`: the two entry points, with solver options checked against the torch-free catalog;
- :mod:`.overrides`: command-line ``--set key=value`` overrides.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> mod = parse_source("train M { data = d\\n epochs = 5\\n optimizer = adam(lr = 1e-2) }", "m.node")
    >>> cfg, diags = validate_train(mod.trains[0])
    >>> (cfg.epochs, cfg.optimizer.lr, cfg.solver.kind, diags)
    (5, 0.01, 'rk4', [])
    >>> cfg2 = apply_overrides(cfg, {"epochs": "7", "lr": "3e-3"})
    >>> (cfg2.epochs, cfg2.optimizer.lr)
    (7, 0.003)
"""

from .errors import key_span
from .optimizers import LBFGS, Adam, AdamW, GaussNewtonOpt, KFACOpt
from .overrides import ALIASES, apply_overrides
from .schema import (
    SOLVER_NAMES,
    AugmentedLagrangian,
    Checkpointing,
    Cosine,
    DatasetConfig,
    EarlyStopping,
    Exponential,
    Horizon,
    Normal,
    SolverCall,
    StepSchedule,
    TimeSpan,
    TrainConfig,
    Uniform,
    WindowInit,
)
from .validate import solver_args, validate_dataset, validate_train
from .values import CMDLINE, SIGNATURES, entries_to_plain, to_plain

__all__ = [
    "ALIASES",
    "CMDLINE",
    "LBFGS",
    "SIGNATURES",
    "SOLVER_NAMES",
    "Adam",
    "AdamW",
    "AugmentedLagrangian",
    "Checkpointing",
    "Cosine",
    "DatasetConfig",
    "EarlyStopping",
    "Exponential",
    "GaussNewtonOpt",
    "Horizon",
    "KFACOpt",
    "Normal",
    "SolverCall",
    "StepSchedule",
    "TimeSpan",
    "TrainConfig",
    "Uniform",
    "WindowInit",
    "apply_overrides",
    "entries_to_plain",
    "key_span",
    "solver_args",
    "to_plain",
    "validate_dataset",
    "validate_train",
]
