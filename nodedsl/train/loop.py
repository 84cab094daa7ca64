"""``fit``: multiple-shooting training of a compiled model on windows of trajectory data.

Free of global state: the model, the windows and the config go in, a :class:`TrainResult` comes out.
Every random choice (batch order, collocation samples) draws from one ``torch.Generator`` seeded by
``config.seed``, whose state is checkpointed, so a resumed run equals an uninterrupted one.

Per batch of windows: each window is integrated from its initial state over its ``window`` steps
(local time, shared grid), the outputs are compared with the data (MSE or MAE), and the augmented
Lagrangian term of the model's constraints is added. When some state is not observed, each window's
initial state is a trained parameter and a continuity term ties a window's predicted end to the next
window's initial state (see docs/training.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ..core.diagnostics import Diagnostic, NodeDslError
from ..io.checkpoint import load_checkpoint
from .batch import BatchSteps
from .constraints import AugmentedLagrangian
from .distributed import Shard
from .irregular import batched_grids
from .latent import make_encoder, make_shooting
from .native import make_fast
from .parallel import ParallelSteps, check_parallel
from .rollout import is_autonomous, observation_map
from .second_order import check_trainer
from .setup import (
    CONFIG_ERRORS,
    MAX_ROLLBACKS,
    REMAINDER_LR,
    Progress,
    TrainResult,
    build_solver,
    clone_state,
    intra_op_threads,
    make_optimizer,
    minibatches,
    schedule_factor,
)
from .snapshot import Snapshots

__all__ = ["TrainResult", "build_solver", "fit", "schedule_factor"]


def _to(windows, device: torch.device):
    """The windows with every tensor on ``device``."""
    if windows is None or windows.t.device == device:
        return windows
    moved = {k: getattr(windows, k).to(device) for k in ("t", "y", "u", "traj", "start", "next")}
    for key in ("x", "missing"):
        value = getattr(windows, key, None)
        moved[key] = value.to(device) if value is not None else None
    return replace(windows, **moved)


class _Trainer(Snapshots, BatchSteps, ParallelSteps):
    """One training run: the state of the loop over epochs (built per call of :func:`fit`, never shared)."""

    def __init__(self, model, wtrain, wval, cfg, progress, checkpoint_path, source_hash, shard: Shard, dtargets=None):
        self.model, self.cfg, self.progress = model, cfg, progress
        self.shard, self.on_epoch = shard, None
        self.dtargets, self.dterm = dtargets, None  # derivative supervision: derivsup.DerivativeTargets
        model.to(shard.device)
        wtrain, wval = _to(wtrain, shard.device), _to(wval, shard.device)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.source_hash = source_hash
        self.obs_map = observation_map(model)
        n = len(model.state_names)
        self.full = len({i for i in self.obs_map if i is not None}) == n
        self.autonomous = is_autonomous(model)
        init = cfg.window_init
        # a window starting at a gap in the data has no observed start: estimate every start then
        gap_starts = wtrain.missing is not None and bool(wtrain.missing[:, 0].any())
        learned = init.kind == "learned" or ((not self.full or gap_starts) and init.kind == "data")
        self.hold = init.after if init.kind == "learned" else 0  # epochs with the estimates held fixed
        self.encoder = make_encoder(
            model, self.obs_map, init, wtrain.y.shape[1]
        )  # window_init = encoder(...): see latent.py
        self.train = make_shooting(model, wtrain, self.obs_map, init, learned, self.encoder)
        has_val = wval is not None and len(wval)
        self.val = make_shooting(model, wval, self.obs_map, init, learned, self.encoder) if has_val else None
        grids = [grid for _, grid in self.train.groups]
        dt = min(float((gr[1:] - gr[:-1]).min()) for gr in grids)
        self.solver = build_solver(cfg.solver, dt, n)
        if isinstance(self.solver, torch.nn.Module):
            self.solver.to(shard.device)
        if self.encoder is not None:
            self.encoder.to(shard.device)
        if batched_grids(self.solver, model, self.train.groups, cfg):  # irregular samples: one batch
            self.train.merge_grids()
        if self.val is not None and batched_grids(self.solver, model, self.val.groups, cfg):
            self.val.merge_grids()
        self.gradient = cfg.gradient_mode()
        self.fast, self.compile_info = make_fast(model, self.solver, cfg, self.obs_map, self.autonomous, self.train)
        self.solver_params = [p for p in self.solver.parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        if self.train.learned:
            self.params.append(self.train.x0)
        if self.encoder is not None:
            self.params.extend(self.encoder.parameters())
        self.opt = make_optimizer(cfg.optimizer, self.params, model) if self.params else None
        self.base_lr = cfg.optimizer.lr
        self.rem_opt = torch.optim.Adam(self.solver_params, lr=REMAINDER_LR) if self.solver_params else None
        self.val_opt = torch.optim.Adam([self.val.x0], lr=1e-2) if self.val is not None and self.val.learned else None
        infos = tuple(getattr(model, "constraints", ()) or ())
        self.al = (
            AugmentedLagrangian(infos, cfg.constraints, model.x0_default.dtype, shard.device, auto_update="steps")
            if infos and cfg.constraints is not None
            else None
        )
        check_trainer(cfg, self.al, self.encoder)  # gauss_newton needs a sum of squares
        self.gen = torch.Generator().manual_seed(int(cfg.seed))
        self.epoch = 0
        self.lr_scale = 1.0
        self.rollbacks = 0
        self.streak = 0
        self.steps = 0
        self.history: list[dict] = []
        self.best: dict = {"epoch": None, "val": None, "state": None}
        self.bad_epochs = 0
        self.wall = 0.0
        self.status = "completed"
        if shard.world > 1:
            check_parallel(self)

    # ---------------------------------------------------------------- validation
    def validate(self) -> float | None:
        if self.val is None:
            return None
        total, count = 0.0, 0
        size = max(self.cfg.batch * 4, 256)
        # data parallel: each rank takes its strided share of every chunk, the sums are reduced; per-window
        # estimates fitted chunk by chunk (val_opt) are fitted alike on every rank instead (one optimizer)
        sh = self.shard if self.shard.world > 1 and self.val_opt is None else None
        for rows, grid in self.val.groups:
            for i in range(0, len(rows), size):
                idx = rows[i : i + size] if sh is None else sh.split(rows[i : i + size])
                if not len(idx):
                    continue
                try:
                    if self.val_opt is not None and not self.held():
                        self.val_opt.zero_grad(set_to_none=True)
                        states, yhat, _, _ = self.predict(self.val, idx, grid)
                        loss = self.data_loss(yhat, self._target)
                        obj = loss + self.continuity(self.val, idx, states)
                        if bool(torch.isfinite(obj)):
                            obj.backward(inputs=[self.val.x0])
                            self.val_opt.step()
                    else:
                        with torch.no_grad():
                            _, yhat, _, _ = self.predict(self.val, idx, grid)
                            loss = self.data_loss(yhat, self._target)
                except Exception as err:
                    from ..solvers import SolverError

                    if (
                        not isinstance(err, (SolverError, AssertionError))
                        or getattr(err, "option", None) in CONFIG_ERRORS
                    ):
                        raise
                    loss = torch.tensor(float("nan"))
                total += float(loss.detach()) * len(idx)
                count += len(idx)
        if sh is not None:
            total, count = sh.sum_(torch.tensor([total, count], dtype=torch.float64, device=sh.device)).tolist()
        return total / max(count, 1)

    # ---------------------------------------------------------------- the loop
    def run(self) -> TrainResult:
        cfg = self.cfg
        snapshot = self.capture()
        try:
            while self.epoch < cfg.epochs:
                started = time.perf_counter()
                self.set_lr()
                for shoot in (self.train, self.val):
                    if shoot is not None and shoot.learned:
                        shoot.x0.requires_grad_(not self.held())
                if self.al:
                    self.al.reset_epoch()
                total, count, dsum = 0.0, 0, 0.0
                for idx, grid in minibatches(self.train.groups, cfg.batch, self.gen):
                    loss = self.step(idx, grid)
                    if loss is None or not math.isfinite(loss):
                        self.rollbacks += 1
                        self.streak += 1
                        self.restore_params(snapshot)
                        self.lr_scale *= 0.5
                        self.set_lr()
                        if self.streak >= MAX_ROLLBACKS:
                            self.status = "diverged"
                            break
                        continue
                    self.streak = 0
                    total += loss * len(idx)
                    count += len(idx)
                    dsum += float(self.dterm.detach()) * len(idx) if self.dterm is not None else 0.0
                if self.status == "diverged":
                    break
                train_loss = total / count if count else float("nan")
                self.reduce_epoch()  # data parallel: constraint statistics and the generator agree
                val_loss = self.validate()
                violations = self.al.epoch_violations() if self.al else {}
                self.epoch += 1
                self.wall += time.perf_counter() - started
                if self.al and self.al.due():  # at the epoch's end: data-parallel statistics are reduced
                    self.al.update()
                self.record(train_loss, val_loss, violations)
                if self.dtargets is not None:
                    self.history[-1]["derivative_loss"] = dsum / count if count else float("nan")
                stop = self.early_stopping(val_loss)
                snapshot = self.capture()
                if self.epoch % cfg.checkpoint_every == 0 or self.epoch == cfg.epochs or stop:
                    self.save(snapshot)
                if self.progress is not None:
                    worst = max(violations.values()) if violations else None
                    self.progress(self.epoch, cfg.epochs, train_loss, val_loss, worst)
                if stop:
                    self.status = "early_stopped"
                    break
        except KeyboardInterrupt:
            self.save(snapshot)  # the last completed epoch: --resume continues from there
            raise
        if self.status == "early_stopped" and self.best.get("state") is not None:
            self.restore_params({"model_state": self.best["state"], "x0_train": self.best.get("x0_train")})
        if self.status == "diverged":
            self.restore_params(snapshot)
            self.save(snapshot)
        return self.result()

    def record(self, train_loss: float, val_loss: float | None, violations: dict) -> None:
        """Append the epoch to the history (and pass it to ``on_epoch``: the experiment log)."""
        lr = self.opt.param_groups[0]["lr"] if self.opt else 0.0
        entry = {
            "epoch": self.epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "violations": violations,
            "lr": lr,
            "mu": self.al.mu if self.al else None,
            # the largest |multiplier| per constraint, for the plots (full vectors are in the checkpoint)
            "multipliers": self.al.largest() if self.al else {},
            "penalty": self.al.epoch_penalty() if self.al else None,
            "al_updates": self.al.updates if self.al else None,
            "wall_time": self.wall,
            "parameters": self.model.parameter_values(),
        }
        self.history.append(entry)
        if self.on_epoch is not None:
            self.on_epoch(entry)

    def early_stopping(self, val_loss: float | None) -> bool:
        es = self.cfg.early_stopping
        if val_loss is None or not math.isfinite(val_loss):
            return False
        if self.best["val"] is None or val_loss < self.best["val"] - (es.min_delta if es else 0.0):
            self.best = {
                "epoch": self.epoch,
                "val": val_loss,
                "state": clone_state(self.model.state_dict()) if es else None,
                "x0_train": self.train.x0.detach().clone() if es and self.train.learned else None,
            }
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        return es is not None and self.bad_epochs >= es.patience

    def final_violations(self) -> dict[str, float]:
        """Violations after training: all training windows' predicted states plus dense collocation."""
        if not self.al:
            return {}
        g = torch.Generator().manual_seed(int(self.cfg.seed) + 7919)
        parts = []
        with torch.no_grad():
            for rows, grid in self.train.groups:
                for i in range(0, len(rows), 1024):
                    try:
                        states, _, tb, ub = self.predict(self.train, rows[i : i + 1024], grid)
                    except Exception:
                        return {c.name: float("inf") for c in self.al.infos}
                    parts.append(
                        (states.reshape(-1, states.shape[-1]), tb.reshape(-1), ub.reshape(tb.numel(), ub.shape[-1]))
                    )
        states = torch.cat([p[0] for p in parts])
        t = torch.cat([p[1] for p in parts])
        u = torch.cat([p[2] for p in parts])
        return self.al.evaluate(self.model, states, t, u, g)

    def result(self) -> TrainResult:
        last = self.history[-1] if self.history else {}
        if self.fast is not None:
            self.compile_info["compile_seconds"] = round(self.fast.compile_seconds, 3)
        return TrainResult(
            status=self.status,
            epochs_run=self.epoch,
            history=self.history,
            train_loss=last.get("train_loss", float("nan")),
            val_loss=last.get("val_loss"),
            best_epoch=self.best.get("epoch"),
            best_val_loss=self.best.get("val"),
            parameters=self.model.parameter_values(),
            violations=self.final_violations(),
            multipliers=self.al.multipliers() if self.al else {},
            mu=self.al.mu if self.al else None,
            rollbacks=self.rollbacks,
            wall_time=self.wall,
            fully_observed=self.full,
            x0_train=self.train.x0.detach().cpu().clone() if self.train.learned else None,
            x0_val=self.val.x0.detach().cpu().clone() if self.val is not None and self.val.learned else None,
            checkpoint=str(self.checkpoint_path) if self.checkpoint_path else None,
            extra={
                "compile": dict(self.compile_info),
                **({"encoder": self.encoder} if self.encoder is not None else {}),
            },
        )


def fit(
    model,
    windows_train,
    windows_val,
    config,
    *,
    progress: Progress | None = None,
    resume_from: str | Path | dict | None = None,
    checkpoint_path: str | Path | None = None,
    source_hash: str = "",
    threads: int | None = 1,
    run_id: str = "",
    device: str | torch.device | None = None,
    shard: Shard | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    derivatives=None,
) -> TrainResult:
    """Train ``model`` in place on ``windows_train``; early stopping watches ``windows_val`` (may be None).

    ``progress(epoch, epochs, train_loss, val_loss, worst_violation)`` is called after every epoch.
    ``checkpoint_path``: where to save the full training state every ``config.checkpoint_every``
    epochs, at the end and on Ctrl-C. ``resume_from``: a checkpoint path (or loaded dict) to continue;
    its source hash must equal ``source_hash`` (when both are set). ``threads``: torch intra-op threads
    while training (restored afterwards; None leaves the setting alone). ``run_id``: stamped into every
    checkpoint, so each file of a run directory can be traced to one run.

    ``device``: where everything trains (the model stays there afterwards); ``shard``: this process's
    rank in a data-parallel group (its device wins; only rank 0 writes checkpoints; see
    :mod:`nodedsl.train.distributed`). ``on_epoch(entry)`` gets every epoch's history entry.
    ``derivatives``: a :class:`~nodedsl.train.derivsup.DerivativeTargets` of ``windows_train``.
    """
    shard = shard or Shard(0, 1, torch.device(device) if device is not None else torch.device("cpu"))
    if not shard.writes:
        checkpoint_path = None
    with intra_op_threads(threads):
        trainer = _Trainer(
            model, windows_train, windows_val, config, progress, checkpoint_path, source_hash, shard, derivatives
        )
        trainer.run_id, trainer.on_epoch = run_id, on_epoch
        if resume_from is not None:
            state = (
                resume_from
                if isinstance(resume_from, dict)
                else load_checkpoint(
                    resume_from, source_hash=source_hash or None, model_name=getattr(model, "name", None)
                )
            )
            if source_hash and state.get("source_hash") and state["source_hash"] != source_hash:
                raise NodeDslError(
                    [
                        Diagnostic(
                            "checkpoint-mismatch",
                            "the checkpoint was written for a different version of the model's source",
                        )
                    ]
                )
            trainer.restore(state)
        if shard.world > 1:  # the same start on every rank (seeded alike already; this makes it certain)
            for t in [*model.state_dict().values(), *([trainer.train.x0] if trainer.train.learned else [])]:
                with torch.no_grad():
                    shard.broadcast_(t)
        return trainer.run()
