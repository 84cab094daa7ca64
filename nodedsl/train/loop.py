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

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from ..core.diagnostics import Diagnostic, NodeDslError
from ..io.checkpoint import FORMAT, check_compatible, load_checkpoint, param_shapes, save_checkpoint
from .constraints import AugmentedLagrangian
from .rollout import WindowField, initial_states, is_autonomous, observation_map, observe, time_groups

__all__ = ["TrainResult", "build_solver", "fit", "schedule_factor"]

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


# ------------------------------------------------------------------ pieces
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


def _optimizer(spec, params):
    if spec.kind == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    if spec.kind == "adamw":
        return torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.LBFGS(
        params, lr=spec.lr, max_iter=spec.max_iter, history_size=spec.history_size, line_search_fn="strong_wolfe"
    )


def _batches(groups, size: int, g: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled minibatches of window indices, each inside one time-grid group."""
    out = []
    for rows, grid in groups:
        perm = rows[torch.randperm(len(rows), generator=g)]
        out.extend((perm[i : i + size], grid) for i in range(0, len(perm), size))
    order = torch.randperm(len(out), generator=g).tolist()
    return [out[i] for i in order]


def _clone(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone(v) for v in obj)
    return copy.deepcopy(obj)


class _Shooting:
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


class _Trainer:
    def __init__(self, model, wtrain, wval, cfg, progress, checkpoint_path, source_hash):
        self.model, self.cfg, self.progress = model, cfg, progress
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.source_hash = source_hash
        self.obs_map = observation_map(model)
        n = len(model.state_names)
        self.full = len({i for i in self.obs_map if i is not None}) == n
        self.autonomous = is_autonomous(model)
        init = cfg.window_init
        learned = not self.full or init.kind == "learned"
        self.hold = init.after if init.kind == "learned" else 0  # epochs with the estimates held fixed
        self.train = _Shooting(model, wtrain, self.obs_map, learned)
        self.val = _Shooting(model, wval, self.obs_map, learned) if wval is not None and len(wval) else None
        grids = [grid for _, grid in self.train.groups]
        dt = min(float((gr[1:] - gr[:-1]).min()) for gr in grids)
        self.solver = build_solver(cfg.solver, dt, n)
        self.gradient = cfg.gradient_mode()
        self.solver_params = [p for p in self.solver.parameters() if p.requires_grad]
        self.params = [p for p in model.parameters() if p.requires_grad]
        if self.train.learned:
            self.params.append(self.train.x0)
        self.opt = _optimizer(cfg.optimizer, self.params) if self.params else None
        self.base_lr = cfg.optimizer.lr
        self.rem_opt = torch.optim.Adam(self.solver_params, lr=REMAINDER_LR) if self.solver_params else None
        self.val_opt = torch.optim.Adam([self.val.x0], lr=1e-2) if self.val is not None and self.val.learned else None
        infos = tuple(getattr(model, "constraints", ()) or ())
        self.al = (
            AugmentedLagrangian(infos, cfg.constraints, model.x0_default.dtype)
            if infos and cfg.constraints is not None
            else None
        )
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

    # ---------------------------------------------------------------- state
    def capture(self) -> dict:
        return {
            "format": FORMAT,
            "model": getattr(self.model, "name", ""),
            "source_hash": self.source_hash,
            "param_shapes": param_shapes(self.model),
            "model_state": _clone(self.model.state_dict()),
            "epoch": self.epoch,
            "optimizer": _clone(self.opt.state_dict()) if self.opt else None,
            "x0_train": self.train.x0.detach().clone() if self.train.learned else None,
            "x0_val": self.val.x0.detach().clone() if self.val is not None and self.val.learned else None,
            "x0_val_optimizer": _clone(self.val_opt.state_dict()) if self.val_opt else None,
            "solver_state": [p.detach().clone() for p in self.solver_params],
            "remainder_optimizer": _clone(self.rem_opt.state_dict()) if self.rem_opt else None,
            "al": self.al.state_dict() if self.al else None,
            "rng": self.gen.get_state(),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "streak": self.streak,
            "steps": self.steps,
            "history": [dict(h) for h in self.history],
            "best": _clone(self.best),
            "bad_epochs": self.bad_epochs,
            "wall_time": self.wall,
            "config": self.cfg.model_dump(mode="json"),
        }

    def restore_params(self, snap: dict) -> None:
        """Parameters and optimizer states only (the rollback after a non-finite loss)."""
        with torch.no_grad():
            self.model.load_state_dict(snap["model_state"])
            if self.train.learned and snap.get("x0_train") is not None:
                self.train.x0.copy_(snap["x0_train"])
            if self.val is not None and self.val.learned and snap.get("x0_val") is not None:
                self.val.x0.copy_(snap["x0_val"])
            for p, v in zip(self.solver_params, snap.get("solver_state") or []):
                p.copy_(v)
        if self.opt and snap.get("optimizer") is not None:
            self.opt.load_state_dict(_clone(snap["optimizer"]))
        if self.val_opt and snap.get("x0_val_optimizer") is not None:
            self.val_opt.load_state_dict(_clone(snap["x0_val_optimizer"]))
        if self.rem_opt and snap.get("remainder_optimizer") is not None:
            self.rem_opt.load_state_dict(_clone(snap["remainder_optimizer"]))

    def restore(self, snap: dict) -> None:
        """Everything: resuming a run."""
        check_compatible(snap, self.model, self.checkpoint_path or "checkpoint")
        for key, learned, shoot in (
            ("x0_train", self.train.learned, self.train),
            ("x0_val", self.val is not None and self.val.learned, self.val),
        ):
            saved = snap.get(key)
            if learned and (saved is None or saved.shape != shoot.x0.shape):
                raise NodeDslError(
                    [
                        Diagnostic(
                            "checkpoint-mismatch",
                            "the checkpoint was written for different "
                            "training data (window count differs); train without --resume",
                        )
                    ]
                )
        try:
            self.restore_params(snap)
        except (ValueError, KeyError, RuntimeError) as err:
            raise NodeDslError(
                [
                    Diagnostic(
                        "checkpoint-mismatch",
                        "the checkpoint's training state does not fit "
                        f"this training setup ({err}); train without --resume",
                    )
                ]
            ) from None
        self.epoch = int(snap["epoch"])
        if self.al and snap.get("al"):
            self.al.load_state_dict(snap["al"])
        self.gen.set_state(snap["rng"])
        self.lr_scale = float(snap.get("lr_scale", 1.0))
        self.rollbacks = int(snap.get("rollbacks", 0))
        self.streak = int(snap.get("streak", 0))
        self.steps = int(snap.get("steps", 0))
        self.history = list(snap.get("history", []))
        self.best = snap.get("best") or {"epoch": None, "val": None, "state": None}
        self.bad_epochs = int(snap.get("bad_epochs", 0))
        self.wall = float(snap.get("wall_time", 0.0))

    def save(self, snap: dict) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, snap)

    # ---------------------------------------------------------------- one batch
    def horizon(self, shoot: _Shooting, grid: torch.Tensor) -> int:
        """Steps per shooting segment this epoch: the horizon curriculum of the ``horizon`` key.

        Long windows from a poor initial guess make a rugged loss; starting with short segments from
        observed states and lengthening them to the full window is the usual multiple-shooting remedy.
        Only for fully observed windows that start from data, on a uniform grid."""
        k = grid.numel() - 1
        spec = self.cfg.horizon
        if spec.kind == "full" or shoot is not self.train or (shoot.learned and not self.held()) or k <= spec.start:
            return k
        steps = grid[1:] - grid[:-1]
        if not bool(torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-6, atol=1e-12)):
            return k
        progress = self.epoch / max(1.0, spec.until * self.cfg.epochs)
        if progress >= 1:
            return k
        target = spec.start + (k - spec.start) * progress
        return max(d for d in range(1, k + 1) if k % d == 0 and d <= max(target, 1))

    def predict(self, shoot: _Shooting, idx: torch.Tensor, grid: torch.Tensor):
        from ..solvers import solve

        w = shoot.w
        tb, ub, y = w.t[idx], w.u[idx], w.y[idx]
        x0 = shoot.initial(idx)
        h = self.horizon(shoot, grid)
        k = grid.numel() - 1
        if h < k:  # segments of h steps, each starting from its observed first state
            starts = range(0, k, h)
            x0 = torch.cat([initial_states(self.model, y[:, j], self.obs_map) for j in starts])
            tb = torch.cat([tb[:, j : j + h + 1] for j in starts])
            ub = torch.cat([ub[:, j : j + h + 1] for j in starts])
            y = torch.cat([y[:, j : j + h + 1] for j in starts])
            grid = grid[: h + 1]
        fieldw = WindowField(self.model, tb[:, 0], grid, ub, self.autonomous)
        ys = solve(fieldw, x0, grid, solver=self.solver, gradient=self.gradient).ys
        states = ys.transpose(0, 1)  # [B, K+1, n]
        yhat = observe(self.model, states, tb, ub, self.obs_map)
        self._target = y
        return states, yhat, tb, ub

    def data_loss(self, yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        err = yhat - y
        return err.abs().mean() if self.cfg.loss == "mae" else err.pow(2).mean()

    def held(self) -> bool:
        """True while the window initial-state estimates are held at their initial values."""
        return self.epoch < self.hold

    def continuity(self, shoot: _Shooting, idx: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        nxt = shoot.w.next[idx]
        has = nxt >= 0
        if not shoot.learned or self.held() or not bool(has.any()):
            return states.new_zeros(())
        return (states[has, -1] - shoot.x0[nxt[has]]).pow(2).mean()

    def objective(self, idx, grid):
        states, yhat, tb, ub = self.predict(self.train, idx, grid)
        data = self.data_loss(yhat, self._target)
        loss = data + self.continuity(self.train, idx, states)
        if self.al:
            n, m = states.shape[-1], ub.shape[-1]
            loss = loss + self.al.penalty(
                self.model, states.reshape(-1, n), tb.reshape(-1), ub.reshape(tb.numel(), m), self.gen
            )
        return loss, data, states, tb, ub

    def set_lr(self) -> None:
        if self.opt is None:
            return
        lr = (
            self.base_lr * self.lr_scale * schedule_factor(self.cfg.schedule, self.epoch, self.cfg.epochs, self.base_lr)
        )
        for group in self.opt.param_groups:
            group["lr"] = lr

    def grads_finite_and_clip(self) -> bool:
        grads = [p for p in self.params if p.grad is not None]
        if not grads:
            return True
        norm = torch.nn.utils.clip_grad_norm_(grads, self.cfg.clip if self.cfg.clip else float("inf"))
        return bool(torch.isfinite(norm))

    def step(self, idx, grid) -> float | None:
        """One optimizer step; the batch's data loss, or None when it was not finite."""
        from ..solvers import SolverError

        for p in self.solver_params:
            p.grad = None
        try:
            if isinstance(self.opt, torch.optim.LBFGS):
                holder = {}

                def closure():
                    self.opt.zero_grad(set_to_none=True)
                    loss, data, states, tb, ub = self.objective(idx, grid)
                    if torch.isfinite(loss):
                        loss.backward()
                        self.grads_finite_and_clip()
                    holder.update(data=data.detach(), states=states.detach(), tb=tb, ub=ub, loss=loss.detach())
                    return loss

                self.opt.step(closure)
                if not bool(torch.isfinite(holder["loss"])) or not all(
                    bool(torch.isfinite(p).all()) for p in self.params
                ):
                    return None
                data, states, tb, ub = holder["data"], holder["states"], holder["tb"], holder["ub"]
            else:
                if self.opt is not None:
                    self.opt.zero_grad(set_to_none=True)
                loss, data, states, tb, ub = self.objective(idx, grid)
                if not bool(torch.isfinite(loss)):
                    return None
                if self.opt is not None:
                    loss.backward()
                    if not self.grads_finite_and_clip():
                        return None
                    self.opt.step()
        except SolverError as err:
            if err.option in CONFIG_ERRORS:
                raise
            return None  # an integration that cannot go on: treated like a non-finite loss
        except AssertionError as err:  # torchdiffeq: "underflow in dt"
            if "underflow" not in str(err):
                raise
            return None
        self.steps += 1
        if self.al:
            self.al.commit()
        if self.rem_opt is not None and self.steps % REMAINDER_EVERY == 0:
            self.train_remainder(states.detach(), tb, ub)
        return float(data.detach())

    def train_remainder(self, states, tb, ub) -> None:
        n, m = states.shape[-1], ub.shape[-1]
        x = states[:, :-1].reshape(-1, n)
        rows = torch.randperm(x.shape[0], generator=self.gen)[:REMAINDER_ROWS]
        u = ub[:, :-1].reshape(x.shape[0], m)[rows]
        t0 = tb[:, :-1].reshape(-1)[rows]
        h = float(getattr(self.solver, "step_size", 0.05))
        # inputs held over the step; a WindowField so the model's own Taylor coefficients are used
        grid = torch.tensor([0.0, h], dtype=x.dtype, device=x.device)
        field = WindowField(self.model, t0, grid, u.unsqueeze(1).expand(-1, 2, -1), self.autonomous)
        loss = self.solver.remainder_loss(field, x[rows], h, substeps=REMAINDER_SUBSTEPS)
        if bool(torch.isfinite(loss)):
            grads = torch.autograd.grad(loss, self.solver_params, allow_unused=True)
            for p, gr in zip(self.solver_params, grads):
                p.grad = gr
            self.rem_opt.step()
            for p in self.solver_params:
                p.grad = None

    # ---------------------------------------------------------------- validation
    def validate(self) -> float | None:
        if self.val is None:
            return None
        total, count = 0.0, 0
        size = max(self.cfg.batch * 4, 256)
        for rows, grid in self.val.groups:
            for i in range(0, len(rows), size):
                idx = rows[i : i + size]
                try:
                    if self.val_opt is not None and not self.held():
                        self.val_opt.zero_grad(set_to_none=True)
                        states, yhat, _, _ = self.predict(self.val, idx, grid)
                        loss = self.data_loss(yhat, self.val.w.y[idx])
                        obj = loss + self.continuity(self.val, idx, states)
                        if bool(torch.isfinite(obj)):
                            obj.backward(inputs=[self.val.x0])
                            self.val_opt.step()
                    else:
                        with torch.no_grad():
                            _, yhat, _, _ = self.predict(self.val, idx, grid)
                            loss = self.data_loss(yhat, self.val.w.y[idx])
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
                total, count = 0.0, 0
                for idx, grid in _batches(self.train.groups, cfg.batch, self.gen):
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
                if self.status == "diverged":
                    break
                train_loss = total / count if count else float("nan")
                val_loss = self.validate()
                violations = self.al.epoch_violations() if self.al else {}
                if self.al and (self.epoch + 1) % cfg.constraints.update_every == 0:
                    self.al.update()
                self.epoch += 1
                self.wall += time.perf_counter() - started
                lr = self.opt.param_groups[0]["lr"] if self.opt else 0.0
                self.history.append(
                    {
                        "epoch": self.epoch,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "violations": violations,
                        "lr": lr,
                        "mu": self.al.mu if self.al else None,
                        "wall_time": self.wall,
                        "parameters": self.model.parameter_values(),
                    }
                )
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

    def early_stopping(self, val_loss: float | None) -> bool:
        es = self.cfg.early_stopping
        if val_loss is None or not math.isfinite(val_loss):
            return False
        if self.best["val"] is None or val_loss < self.best["val"] - (es.min_delta if es else 0.0):
            self.best = {
                "epoch": self.epoch,
                "val": val_loss,
                "state": _clone(self.model.state_dict()) if es else None,
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
            x0_train=self.train.x0.detach().clone() if self.train.learned else None,
            x0_val=self.val.x0.detach().clone() if self.val is not None and self.val.learned else None,
            checkpoint=str(self.checkpoint_path) if self.checkpoint_path else None,
        )


class _threads:
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
) -> TrainResult:
    """Train ``model`` in place on ``windows_train``; early stopping watches ``windows_val`` (may be None).

    ``progress(epoch, epochs, train_loss, val_loss, worst_violation)`` is called after every epoch.
    ``checkpoint_path``: where to save the full training state every ``config.checkpoint_every``
    epochs, at the end and on Ctrl-C. ``resume_from``: a checkpoint path (or loaded dict) to continue;
    its source hash must equal ``source_hash`` (when both are set). ``threads``: torch intra-op threads
    while training (restored afterwards; None leaves the setting alone).
    """
    with _threads(threads):
        trainer = _Trainer(model, windows_train, windows_val, config, progress, checkpoint_path, source_hash)
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
        return trainer.run()
