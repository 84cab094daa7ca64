"""``fit_sde``: training an SDE model by the transition likelihood or by distribution matching.

The ``train`` block's ``objective`` selects it (see :mod:`nodedsl.train.stochastic` for the losses):

* ``transition_likelihood``: every transition of every observed path is a term of the Euler-Maruyama
  likelihood; a batch is ``batch`` whole trajectories, every state must be observed;
* ``distribution(metric = energy | mmd, samples = k)``: each batch simulates ``k`` paths from each
  observed initial state (the trajectories of a batch share one time grid) and compares the simulated
  and observed ensembles of outputs at every observation time; gradients by backprop through the
  solver or, with ``gradient = adjoint``, torchsde's stochastic adjoint.

Constraints work as in ODE training: their augmented-Lagrangian term is evaluated at the batch's
observed (or simulated) states. Every random choice draws from one generator seeded by ``seed``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..io.checkpoint import FORMAT, check_compatible, check_training_state, param_shapes, save_checkpoint
from .constraints import AugmentedLagrangian
from .rollout import initial_states, observation_map, observe, time_groups
from .setup import TrainResult, clone_state, make_optimizer, schedule_factor
from .stochastic import em_transition_nll, ensemble_loss

__all__ = ["Objective", "fit_sde", "transition_data"]


@dataclass(frozen=True)
class Objective:
    """What an SDE model is trained on (``kind``: ``transition_likelihood`` or ``distribution``)."""

    kind: str = "transition_likelihood"
    metric: str = "energy"  # distribution: energy | mmd
    samples: int = 1  # distribution: simulated paths per observed trajectory
    obs_noise: float | None = None  # transition likelihood: std of the observation noise
    gradient: str = "backprop"  # distribution: backprop | adjoint


def _error(message: str, *notes: str) -> NodeDslError:
    return NodeDslError([Diagnostic("bad-value", message, Span("<training data>", 0, 0), notes)])


def transition_data(model: Any, traj: Any) -> dict[str, torch.Tensor]:
    """Per trajectory the transitions ``t [N, T-1]``, ``dt``, ``x``, ``u``, ``dx`` and a validity mask
    (padding past ``lengths`` masked out); every state must be observed."""
    obs = observation_map(model)
    seen = {i for i in obs if i is not None}
    if len(seen) != len(model.state_names):
        missing = [s for i, s in enumerate(model.state_names) if i not in seen]
        raise _error(
            f"objective = transition_likelihood needs every state of '{model.name}' observed; the data lack "
            f"{', '.join(missing[:5])}",
            "use objective = distribution(...)",
        )
    dtype = model.x0_default.dtype
    N, T, _ = traj.y.shape
    x = initial_states(model, traj.y.to(dtype).reshape(N * T, -1), obs).reshape(N, T, -1)
    t, u = traj.t.to(dtype), traj.u.to(dtype)
    steps = torch.arange(T - 1)
    mask = steps[None, :] < (traj.lengths[:, None] - 1)
    return {
        "t": t[:, :-1],
        "dt": (t[:, 1:] - t[:, :-1]).unsqueeze(-1),
        "x": x[:, :-1],
        "u": u[:, :-1],
        "dx": x[:, 1:] - x[:, :-1],
        "mask": mask,
    }


class _SDETrainer:
    def __init__(self, model, train, val, cfg, objective: Objective, solver, progress):
        self.model, self.cfg, self.obj, self.solver, self.progress = model, cfg, objective, solver, progress
        self.train, self.val = train, val if val is not None and len(val) else None
        self.obs_map = observation_map(model)
        if objective.kind == "transition_likelihood":
            self.data = transition_data(model, train)
            self.val_data = transition_data(model, self.val) if self.val is not None else None
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = make_optimizer(cfg.optimizer, self.params) if self.params else None
        infos = tuple(getattr(model, "constraints", ()) or ())
        cons = getattr(cfg, "constraints", None)
        self.al = (
            AugmentedLagrangian(infos, cons, model.x0_default.dtype, auto_update="epochs")
            if infos and cons is not None
            else None
        )
        self.gen = torch.Generator().manual_seed(int(cfg.seed))
        self.history: list[dict] = []
        self.done, self.rollbacks, self.wall = 0, 0, 0.0  # completed epochs, non-finite steps, seconds
        self.checkpoint_path, self.source_hash, self.run_id = None, "", ""

    # ------------------------------------------------------------------ losses
    def transition_loss(self, data: dict, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = data["mask"][rows]
        pick = {k: v[rows][m] for k, v in data.items() if k != "mask"}
        t, x, u = pick["t"], pick["x"], pick["u"]
        drift = self.model.field(t, x, u)
        g = self.model.diffusion(t, x, u)
        noise = self.model.noise
        if noise.sde_type == "stratonovich" and not noise.additive:  # the likelihood reads the Ito drift
            from ..solvers.sde import stratonovich_correction

            drift = drift + stratonovich_correction(noise, lambda tt, xx: self.model.diffusion(tt, xx, u), t, x)
        loss = em_transition_nll(drift, g, x, pick["dx"], pick["dt"], self.obj.obs_noise)
        return loss, x, t

    def distribution_loss(self, traj, rows: torch.Tensor, grid: torch.Tensor, seed: int):
        from ..solvers.sde import sdeint

        dtype = self.model.x0_default.dtype
        L = grid.shape[0]
        y = traj.y[rows, :L].to(dtype)  # [B, L, k]
        x0 = initial_states(self.model, y[:, 0], self.obs_map)
        k = self.obj.samples
        x0 = x0.repeat_interleave(k, dim=0)
        u0 = traj.u[rows, 0].to(dtype).repeat_interleave(k, dim=0)
        t0 = float(traj.t[rows[0], 0])
        drift, diffusion = self.model.sde_functions(lambda t, b: u0)
        ts = (grid + t0).to(dtype)
        xs = sdeint(drift, diffusion, x0, ts, solver=self.solver, noise=self.model.noise, seed=seed,
                    gradient=self.obj.gradient).ys  # fmt: skip
        uu = u0.unsqueeze(0).expand(L, -1, -1)
        tt = ts[:, None].expand(L, x0.shape[0])
        sim = observe(self.model, xs, tt, uu, self.obs_map)  # [L, B k, k_out]
        obs = y.transpose(0, 1)  # [L, B, k_out]
        # each sample is (its observed initial outputs, its outputs at t_i): the simulated paths start
        # where the observed ones do, so matching these pairs matches the transition from the initial
        # state (a flexible drift cannot trade spread against noise, as it can in the marginals)
        sim = torch.cat([obs[:1].repeat_interleave(k, dim=1).expand(L, -1, -1), sim], dim=-1)
        obs = torch.cat([obs[:1].expand(L, -1, -1), obs], dim=-1)
        loss = ensemble_loss(sim[1:], obs[1:], self.obj.metric) / max(L - 1, 1)
        return loss, xs.reshape(-1, xs.shape[-1]), tt.reshape(-1)

    def batch_loss(self, traj, data, rows, grid, seed):
        if self.obj.kind == "transition_likelihood":
            return self.transition_loss(data, rows)
        return self.distribution_loss(traj, rows, grid, seed)

    # ------------------------------------------------------------------ the loop
    def batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for rows, grid in time_groups(self.train.t, self.train.lengths):
            perm = rows[torch.randperm(len(rows), generator=self.gen)]
            out.extend((perm[i : i + self.cfg.batch], grid) for i in range(0, len(perm), self.cfg.batch))
        return [out[i] for i in torch.randperm(len(out), generator=self.gen).tolist()]

    def step(self, rows, grid) -> float | None:
        seed = int(torch.randint(0, 2**62, (), generator=self.gen))
        data = getattr(self, "data", None)

        def closure():
            self.opt.zero_grad(set_to_none=True)
            loss, x, t = self.batch_loss(self.train, data, rows, grid, seed)
            total = loss
            if self.al:
                u = self.model.default_inputs(x)
                total = total + self.al.penalty(self.model, x.detach(), t.reshape(-1), u, self.gen)
            if torch.isfinite(total):
                total.backward()
                if getattr(self.cfg, "clip", None):
                    torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip)
            closure.loss = loss.detach()
            return total

        if self.opt is None:
            return None
        self.opt.step(closure)
        loss = float(closure.loss)
        if not math.isfinite(loss) or not all(bool(torch.isfinite(p).all()) for p in self.params):
            return None
        if self.al:
            self.al.commit()
        return loss

    def validate(self) -> float | None:
        if self.val is None:
            return None
        data = getattr(self, "val_data", None)
        with torch.no_grad():
            total, count = 0.0, 0
            for rows, grid in time_groups(self.val.t, self.val.lengths):
                loss, _, _ = self.batch_loss(self.val, data, rows, grid, seed=int(self.cfg.seed))
                total += float(loss) * len(rows)
                count += len(rows)
        return total / max(count, 1)

    def epoch(self, rollbacks: int) -> tuple[float, int]:
        """One pass over the batches; returns the mean loss and the updated rollback count."""
        cfg = self.cfg
        if self.opt is not None:
            lr = cfg.optimizer.lr * schedule_factor(cfg.schedule, self.done, cfg.epochs, cfg.optimizer.lr)
            for group in self.opt.param_groups:
                group["lr"] = lr * 0.5**rollbacks
        if self.al:
            self.al.reset_epoch()
        total, count = 0.0, 0
        for rows, grid in self.batches():
            loss = self.step(rows, grid)
            if loss is None:  # a non-finite step: back to the last good parameters, half the rate
                rollbacks += 1
                self.model.load_state_dict(self.good)
                continue
            total, count = total + loss * len(rows), count + len(rows)
        return (total / count if count else float("nan")), rollbacks

    def run(self) -> TrainResult:
        cfg, status = self.cfg, "completed"
        self.good = clone_state(self.model.state_dict())
        snapshot = self.capture()
        try:
            while self.done < cfg.epochs:
                started = time.perf_counter()
                train_loss, self.rollbacks = self.epoch(self.rollbacks)
                if self.rollbacks >= 20:
                    status = "diverged"
                    break
                self.good = clone_state(self.model.state_dict())
                violations = self.al.epoch_violations() if self.al else {}
                if self.al and (self.done + 1) % cfg.constraints.update_every == 0:
                    self.al.update()
                val = self.validate()
                self.done += 1
                self.wall += time.perf_counter() - started
                self.history.append(
                    {
                        "epoch": self.done,
                        "train_loss": train_loss,
                        "val_loss": val,
                        "violations": violations,
                        "lr": self.opt.param_groups[0]["lr"] if self.opt else 0.0,
                        "mu": self.al.mu if self.al else None,
                        "wall_time": self.wall,
                        "parameters": self.model.parameter_values(),
                    }
                )
                snapshot = self.capture()
                if self.done % cfg.checkpoint_every == 0 or self.done == cfg.epochs:
                    self.save(snapshot)
                if self.progress is not None:
                    worst = max(violations.values()) if violations else None
                    self.progress(self.done, cfg.epochs, train_loss, val, worst)
        except KeyboardInterrupt:
            self.save(snapshot)  # the last completed epoch: --resume continues from there
            raise
        return self.result(status)

    # ------------------------------------------------------------------ checkpoints (--resume)
    def capture(self) -> dict:
        """Everything a resumed run needs (at the end of the last completed epoch)."""
        return {
            "format": FORMAT,
            "model": getattr(self.model, "name", ""),
            "source_hash": self.source_hash,
            "run_id": self.run_id,
            "param_shapes": param_shapes(self.model),
            "model_state": clone_state(self.model.state_dict()),
            "epoch": self.done,
            "optimizer": clone_state(self.opt.state_dict()) if self.opt else None,
            "al": self.al.state_dict() if self.al else None,
            "rng": self.gen.get_state(),
            "rollbacks": self.rollbacks,
            "history": [dict(h) for h in self.history],
            "wall_time": self.wall,
            "objective": self.obj.kind,
        }

    def save(self, snap: dict) -> None:
        if self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, snap)

    def restore(self, snap: dict) -> None:
        check_compatible(snap, self.model, self.checkpoint_path or "checkpoint")
        check_training_state(snap, self.checkpoint_path or "checkpoint")
        if snap.get("objective", self.obj.kind) != self.obj.kind:
            raise _mismatch(f"the checkpoint was trained with objective {snap.get('objective')}")
        try:
            self.model.load_state_dict(snap["model_state"])
            if self.opt is not None and snap.get("optimizer") is not None:
                self.opt.load_state_dict(clone_state(snap["optimizer"]))
            if self.al and snap.get("al"):
                self.al.load_state_dict(snap["al"])
        except (ValueError, KeyError, RuntimeError, TypeError) as err:
            raise _mismatch(f"the checkpoint's training state does not fit this training setup ({err})") from None
        self.done = int(snap["epoch"])
        self.gen.set_state(snap["rng"])
        self.rollbacks = int(snap.get("rollbacks", 0))
        self.history = list(snap.get("history", []))
        self.wall = float(snap.get("wall_time", 0.0))

    def result(self, status: str) -> TrainResult:
        last = self.history[-1] if self.history else {}
        return TrainResult(
            status=status,
            epochs_run=len(self.history),
            history=self.history,
            train_loss=last.get("train_loss", float("nan")),
            val_loss=last.get("val_loss"),
            best_epoch=None,
            best_val_loss=None,
            parameters=self.model.parameter_values(),
            violations=last.get("violations", {}),
            multipliers=self.al.multipliers() if self.al else {},
            mu=self.al.mu if self.al else None,
            rollbacks=self.rollbacks,
            wall_time=self.wall,
            fully_observed=all(i is not None for i in self.obs_map),
            extra={"objective": self.obj.kind},
        )


def _mismatch(message: str) -> NodeDslError:
    return NodeDslError([Diagnostic("checkpoint-mismatch", message + "; train without --resume")])


def fit_sde(
    model,
    train,
    val,
    config,
    objective: Objective,
    solver=None,
    *,
    progress=None,
    checkpoint_path=None,
    resume_from: dict | None = None,
    source_hash: str = "",
    run_id: str = "",
) -> TrainResult:
    """Train the SDE ``model`` in place on ``train`` (:class:`~nodedsl.data.loading.Trajectories`).

    ``config`` is the train block's config (epochs, batch, optimizer, schedule, clip, constraints,
    seed); ``solver`` an SDE solver (distribution matching only). ``val`` (may be None) is scored
    with the same objective after every epoch. ``checkpoint_path``: where the full training state is
    saved (every ``checkpoint_every`` epochs, at the end and on Ctrl-C); ``resume_from``: such a state
    (a loaded checkpoint) to continue from, so that the resumed run equals an uninterrupted one.
    """
    if model.noise is None:
        raise _error(f"objective = {objective.kind} needs a model with noise; '{model.name}' is an ODE")
    if objective.kind == "distribution" and solver is None:
        raise _error("objective = distribution needs an SDE solver (solver = euler_maruyama(step = h))")
    if getattr(config.optimizer, "kind", None) in ("gauss_newton", "kfac"):
        raise _error(
            f"optimizer {config.optimizer.kind} is for ODE models; SDE objectives train with adam, adamw or lbfgs"
        )
    trainer = _SDETrainer(model, train, val, config, objective, solver, progress)
    trainer.checkpoint_path, trainer.source_hash, trainer.run_id = checkpoint_path, source_hash, run_id
    if resume_from is not None:
        trainer.restore(resume_from)
    return trainer.run()


def objective_of(cfg) -> Objective:
    """The :class:`Objective` of a train block (``transition_likelihood`` when it names none)."""
    spec = getattr(cfg, "objective", None)
    if spec is None or spec.kind == "transition_likelihood":
        noise = getattr(spec, "observation_noise", 0.0) or None
        return Objective("transition_likelihood", obs_noise=noise)
    gradient = cfg.gradient if cfg.gradient in ("backprop", "adjoint") else "backprop"
    return Objective("distribution", metric=spec.metric, samples=spec.samples, gradient=gradient)


def train_sde(
    model, train, val, cfg, *, progress=None, resume: bool = False, checkpoint_path=None, source_hash="", run_id=""
) -> TrainResult:
    """``fit_sde`` from a train block's config: its objective, and its solver when that is an SDE
    solver (else ``euler_maruyama`` with the solver's step, or the data's sampling interval).
    ``resume``: continue from ``checkpoint_path``."""
    from ..io.checkpoint import load_checkpoint
    from ..solvers import make_solver
    from ..solvers.sde import METHODS

    state = None
    if resume and checkpoint_path is not None:
        state = load_checkpoint(checkpoint_path, source_hash=source_hash or None, model_name=model.name)
    objective = objective_of(cfg)
    solver = None
    if objective.kind == "distribution":
        spec = cfg.solver
        dt = float((train.t[:, 1:] - train.t[:, :-1]).min()) if train.t.shape[1] > 1 else 1.0
        step = dict(spec.options).get("step", dt)
        if spec.kind in METHODS:
            solver = make_solver(spec.kind, **{"step": step, **dict(spec.options)})
        else:
            solver = make_solver("euler_maruyama", step=step)
    ck = {"checkpoint_path": checkpoint_path, "resume_from": state, "source_hash": source_hash, "run_id": run_id}
    return fit_sde(model, train, val, cfg, objective, solver, progress=progress, **ck)
