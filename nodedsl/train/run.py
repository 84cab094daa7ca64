"""Orchestration of a training run and of its evaluation (what ``nodedsl train/eval/plot`` call).

A run directory holds::

    config.json       the validated train block (after command-line overrides) and the data used
    checkpoint.pt     full training state (resume with --resume)
    model.pt          the trained weights (state_dict, source hash, learned parameter values)
    metrics.json      per-epoch losses and violations, learned parameters, final evaluation
    predictions.npz   rollouts of the validation trajectories (t, y, yhat, names, lengths)
    loss.png, fit.png plots
    energy.npz, energy.png   port-Hamiltonian models: H, dissipated and supplied power along those rollouts
    eval.json         written by ``evaluate``
    logs/             TensorBoard event files (``log = tensorboard``)

Under data parallelism (``shard``: this process's rank, docs/scaling.md) every rank trains and only
rank 0 writes any of these files.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..data.loading import Trajectories, split_by_trajectory
from ..data.windows import Windows, make_windows
from ..frontend import ast
from ..frontend.config import TrainConfig, apply_overrides, key_span, validate_train
from ..io.atomic import atomic_write
from ..io.checkpoint import (
    FORMAT,
    check_compatible,
    check_training_state,
    load_checkpoint,
    param_shapes,
    save_checkpoint,
)
from ..io.runlock import RunLock, io_error
from .distributed import Shard, resolve_device
from .evaluate import copy_solver_state, evaluate, rollout_outputs, solver_error, violations_after
from .inputs import compiled_model, estimate_initial_states, load_training_data, select_train
from .logs import open_log
from .loop import fit
from .metrics import metrics_document, rollout_errors, write_json
from .outputs import describe, energy_outputs, net_outputs, plot_run
from .scaling import set_auto_scales
from .second_order import OptimizerError
from .setup import Progress, TrainResult, build_solver, intra_op_threads

__all__ = [
    "compiled_model",
    "describe",
    "estimate_initial_states",
    "evaluate",
    "load_training_data",
    "plot_run",
    "run_training",
    "select_train",
]


def _first_window_x0(x0: torch.Tensor | None, windows, n_traj: int) -> torch.Tensor | None:
    """The trained initial-state estimates of each trajectory's first window, in trajectory order."""
    if x0 is None or windows is None:
        return None
    first = (windows.start == 0).nonzero().flatten()
    if len(first) != n_traj:
        return None
    return x0[first[windows.traj[first].argsort()]]


def run_training(
    program,
    train_block: ast.Train,
    *,
    overrides: Mapping[str, str] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    shard: Shard | None = None,
    plots: bool = True,
) -> TrainResult:
    """Validate the train block, build the data, train, and write the run directory (see module doc).

    ``shard``: this process's rank in a data-parallel group (None: one process, on the block's ``device``);
    ``plots=False``: no PNG files (``plot_run`` draws them later)."""
    cfg, diags = validate_train(train_block)
    if cfg is None:
        raise NodeDslError(diags)
    cfg = apply_overrides(cfg, dict(overrides or {}))
    shard = shard or Shard(0, 1, resolve_device(cfg.device))
    run = Path(run_dir) if run_dir is not None else Path(cfg.output) if cfg.output else Path("runs") / train_block.model
    # one writer per run directory (rank 0 of a group); refused commands write nothing
    lock = RunLock(run) if shard.writes else contextlib.nullcontext()
    with intra_op_threads(1), lock:
        try:
            return _run_training(program, train_block, cfg, run, resume, progress, shard, plots)
        except OSError as err:  # a full disk, a folder made read-only meanwhile: the old files survive
            raise io_error(err, "write", run) from None


@dataclass
class _Setup:
    """Everything a run needs once its config, model, data and run directory are ready."""

    name: str
    cfg: TrainConfig
    model: Any
    run: Path
    ckpt: Path
    source_hash: str
    train_traj: Trajectories
    val_traj: Trajectories | None
    wtrain: Windows
    wval: Windows | None
    data_info: dict
    shard: Shard


def _run_training(program, train_block, cfg, run, resume, progress, shard: Shard, plots=True) -> TrainResult:
    for tmp in run.glob("*.tmp") if shard.writes else ():  # atomic writes killed mid-way (we hold the lock)
        if tmp.name.split(".")[0] in {name.split(".")[0] for name in RUN_FILES}:
            tmp.unlink(missing_ok=True)
    if cfg.objective is not None and cfg.objective.kind == "density":  # a normalizing flow: density_run.py
        from .density_run import run_density

        return run_density(program, train_block, cfg, run, resume, progress)
    s = _prepare(program, train_block, cfg, run, resume, shard)
    result = _fit(program, s, resume, progress)
    if not shard.writes:
        return result
    _held_out_outputs(s, result, program)
    _ = plots and plot_run(s.run)  # a sweep's runs skip the PNG files
    return result


def _prepare(program, train_block, cfg, run, resume, shard: Shard) -> _Setup:
    """Build the model and the windows, check a checkpoint to resume, then (only then) write config.json."""
    name = train_block.model
    model = compiled_model(program, name, cfg.seed)
    base = Path(train_block.span.file).parent if train_block.span.file not in ("", "<unknown>", "<string>") else None
    traj, data_info = load_training_data(program, cfg, model, base)
    if traj.missing is not None:
        _refuse_gaps(cfg, traj)
    train_traj, val_traj = split_by_trajectory(traj, cfg.validation, cfg.seed)
    try:
        wtrain = make_windows(train_traj, cfg.window)
        wval = make_windows(val_traj, cfg.window) if val_traj is not None else None
    except NodeDslError as err:  # point at the window key when the data have no line to show
        raise NodeDslError(
            [
                replace(d, span=key_span(cfg, "window"), notes=d.notes + (f"data: {cfg.data}",))
                if d.span.line == 0
                else d
                for d in err.diagnostics
            ]
        ) from None
    ckpt = run / "checkpoint.pt"
    scales = set_auto_scales(model, train_traj)  # scale = auto nets (a resumed run loads them back)
    if scales:
        data_info["net_scales"] = scales
    source_hash = program.source_hash(name)
    if resume and not ckpt.is_file():
        raise NodeDslError(
            [
                Diagnostic(
                    "bad-checkpoint",
                    f"nothing to resume: no checkpoint in '{run}'",
                    Span(str(run), 0, 0),
                    ("train without --resume first",),
                )
            ]
        )
    if resume:
        run_id = _resume_state(ckpt, model, source_hash, name)
    else:
        run_id = _fresh_run(run) if shard.writes else ""
    data_info.update(
        run_id=run_id,
        device=str(shard.device),
        processes=shard.world,
        train_trajectories=train_traj.n_traj,
        val_trajectories=val_traj.n_traj if val_traj else 0,
        train_windows=len(wtrain),
        val_windows=len(wval) if wval is not None else 0,
    )
    if shard.writes:
        write_json(
            run / "config.json",
            {
                "model": name,
                "run_id": run_id,
                "source": str(train_block.span.file),
                "train": cfg.model_dump(mode="json"),
                "data": data_info,
            },
        )
    return _Setup(name, cfg, model, run, ckpt, source_hash, train_traj, val_traj, wtrain, wval, data_info, shard)


# every file a run writes (plus temporaries of atomic writes); a fresh run removes the previous run's
RUN_FILES = (
    "checkpoint.pt",
    "model.pt",
    "metrics.json",
    "predictions.npz",
    "coupling.json",
    "eval.json",
    "energy.npz",
    "energy.png",
    "loss.png",
    "fit.png",
    "config.json",
)


def _resume_state(ckpt: Path, model, source_hash: str, name: str) -> str:
    """Check the checkpoint to resume (model, source, parameter shapes, training state) before anything is
    written; returns its run id (a new one for checkpoints older than run ids)."""
    state = load_checkpoint(ckpt, source_hash=source_hash, model_name=name)
    check_compatible(state, model, ckpt)
    check_training_state(state, ckpt)
    run_id = state.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else uuid.uuid4().hex


def _fresh_run(run: Path) -> str:
    """A new run id, after removing the files of a previous run in ``run`` (so no file mixes two runs)."""
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    for old in (run / "logs").glob("events.out.tfevents.*"):
        old.unlink(missing_ok=True)
    return uuid.uuid4().hex


def _fit(program, s: _Setup, resume: bool, progress: Progress | None) -> TrainResult:
    """Train (after a least-squares coupling estimate when configured) and write model.pt."""
    from ..solvers import SolverError

    name, cfg, model, run, ckpt, source_hash = s.name, s.cfg, s.model, s.run, s.ckpt, s.source_hash
    train_traj, wtrain, wval = s.train_traj, s.wtrain, s.wval
    # coupling = least_squares: a learned interconnection (C = learn skew) is estimated in one shot from
    # finite differences (train/coupling.py); when nothing else needs gradient training (no other learned
    # parameter or net, or only those of sub-models loaded by `weights`), fit only evaluates (1 epoch,
    # everything frozen); otherwise the estimate is a warm start for ordinary training.
    estimate, fit_cfg, frozen = None, cfg, []
    log = open_log(cfg.log, run) if s.shard.writes else None
    if cfg.coupling == "least_squares":
        from .coupling import prepare_least_squares

        estimate, fit_cfg, frozen = prepare_least_squares(program, name, model, train_traj, cfg)
        if estimate is not None and s.shard.writes:
            write_json(run / "coupling.json", estimate.summary())
    try:
        if getattr(model, "noise", None) is not None:  # an SDE model: transition likelihood or distribution matching
            from .sde_fit import train_sde

            _single_process(s.shard, "an SDE model's objective")
            if s.shard.device.type != "cpu" and cfg.device != "auto":
                raise NodeDslError(
                    [Diagnostic("device-unavailable", f"SDE models train on the CPU only, not '{cfg.device}'")]
                )

            ck = {"checkpoint_path": ckpt, "source_hash": source_hash, "run_id": s.data_info["run_id"]}
            result = train_sde(model, train_traj, s.val_traj, fit_cfg, progress=progress, resume=resume, **ck)
        else:
            result = fit(
                model,
                wtrain,
                wval,
                fit_cfg,
                progress=progress,
                resume_from=ckpt if resume else None,
                checkpoint_path=ckpt,
                source_hash=source_hash,
                run_id=s.data_info["run_id"],
                derivatives=_derivative_targets(model, train_traj, wtrain, cfg),
                shard=s.shard,
                on_epoch=log.epoch if log is not None else None,
            )
    except SolverError as err:
        raise solver_error(err, cfg) from None
    except OptimizerError as err:
        raise NodeDslError(
            [Diagnostic("bad-value", f"optimizer {cfg.optimizer.kind}: {err}", key_span(cfg, "optimizer"))]
        ) from None
    finally:
        model.to("cpu")  # trained on cfg.device; the run's files and rollouts are device-free
        for p in frozen:
            p.requires_grad_(True)
        if log is not None:
            log.close()
    if estimate is not None:
        result.extra["coupling"] = estimate.summary()
    if not s.shard.writes:
        return result
    save_checkpoint(
        run / "model.pt",
        {
            "format": FORMAT,
            "model": name,
            "source_hash": source_hash,
            "run_id": s.data_info["run_id"],
            "param_shapes": param_shapes(model),
            "model_state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "parameters": {k: v for k, v in result.parameters.items()},
        },
    )
    return result


def _derivative_targets(model, traj, windows, cfg):
    """Derivative supervision's targets at the training windows (``derivatives = ...``), or None."""
    if cfg.derivatives is None:
        return None
    from .derivsup import DerivativeTargets
    from .rollout import observation_map

    return DerivativeTargets(
        model, traj, windows, observation_map(model), cfg.derivatives, key_span(cfg, "derivatives")
    )


def _held_out_outputs(s: _Setup, result: TrainResult, program=None) -> None:
    """Roll out the held-out trajectories; write metrics.json, predictions.npz, the energy outputs and
    the net curves (``nets.npz``)."""
    from ..solvers import SolverError

    name, cfg, model, run, ckpt, data_info = s.name, s.cfg, s.model, s.run, s.ckpt, s.data_info
    train_traj, val_traj, wtrain, wval = s.train_traj, s.val_traj, s.wtrain, s.wval
    # rollouts of the held-out trajectories (the training ones when nothing is held out)
    held = val_traj if val_traj is not None else train_traj
    windows = wval if val_traj is not None else wtrain
    dt = float(held.t[0, 1] - held.t[0, 0]) if held.t.shape[1] > 1 else 1.0
    solver = build_solver(cfg.solver, dt, len(model.state_names))
    copy_solver_state(solver, ckpt)
    x0 = _first_window_x0(result.x0_val if val_traj is not None else result.x0_train, windows, held.n_traj)
    try:
        states, yhat = rollout_outputs(model, held, solver, x0, cfg.window)
        evaluation = rollout_errors(yhat, held.y, held.lengths, held.output_names, held.missing)
        evaluation["on"] = "validation" if val_traj is not None else "training"
        evaluation["violations"] = violations_after(model, cfg, states, held)
    except SolverError as err:
        states, yhat = None, None
        evaluation = {"error": err.message}
    result.extra.update(run_dir=str(run), evaluation=evaluation, data=data_info)
    write_json(
        run / "metrics.json",
        {
            **metrics_document(
                result, model=name, config=cfg.model_dump(mode="json"), data=data_info, evaluation=evaluation
            ),
            "run_id": data_info["run_id"],
        },
    )
    if yhat is not None:
        atomic_write(run / "predictions.npz", lambda fh: _savez(fh, held, yhat, data_info["run_id"]), binary=True)
    if states is not None and getattr(model, "system", None) is not None and model.system.ph is not None:
        energy_outputs(model, states, held, run)
    if states is not None and len(getattr(model, "nets", ())) and program is not None:
        net_outputs(program, model, states, held, data_info, run)


def _refuse_gaps(cfg, traj: Trajectories) -> None:
    """Gaps are masked in trajectory losses; the estimators that read every sample refuse them."""
    for key, used in (("objective", cfg.objective is not None), ("assimilate", cfg.assimilate is not None)):
        if used:
            raise NodeDslError.single(
                "data-error",
                f"the data have {traj.n_missing} missing output value(s), and `{key}` needs every observation",
                key_span(cfg, key),
                (f"data: {traj.source}", "fill or drop the gaps, or train with the default trajectory loss"),
            )


def _savez(fh, held: Trajectories, yhat: torch.Tensor, run_id: str) -> None:
    np.savez(
        fh,
        t=held.t.numpy(),
        y=(held.y if held.missing is None else held.y.masked_fill(held.missing, float("nan"))).numpy(),
        yhat=yhat.numpy(),
        lengths=held.lengths.numpy(),
        names=np.array(held.output_names, dtype=str),
        ids=np.array([str(i) for i in held.ids], dtype=str),
        run_id=np.array(run_id),
    )


def _single_process(shard: Shard, what: str) -> None:
    if shard.world > 1:
        raise NodeDslError(
            [Diagnostic("parallel-unsupported", f"data-parallel training (--nproc, torchrun) does not support {what}")]
        )
