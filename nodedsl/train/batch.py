"""One optimizer step on a minibatch of windows: the shooting prediction, the loss (data, continuity,
constraints), the step with its rollback signal, and the learned solver remainder's own step (a mixin of
the trainer in :mod:`nodedsl.train.loop`; its attributes are set there)."""

from __future__ import annotations

import torch

from .irregular import irregular_rollout
from .latent import nudged_predict
from .rollout import WindowField, initial_states, observe
from .second_order import KFAC, GaussNewton, second_order_step
from .setup import CONFIG_ERRORS, REMAINDER_EVERY, REMAINDER_ROWS, REMAINDER_SUBSTEPS, Shooting, schedule_factor

__all__ = ["BatchSteps"]


class BatchSteps:
    """Prediction, loss and the optimizer step of one batch."""

    def horizon(self, shoot: Shooting, grid: torch.Tensor) -> int:
        """Steps per shooting segment this epoch: the horizon curriculum of the ``horizon`` key.

        Long windows from a poor initial guess make a rugged loss; starting with short segments from
        observed states and lengthening them to the full window is the usual multiple-shooting remedy.
        Only for fully observed windows that start from data, on a uniform grid."""
        k = grid.numel() - 1
        spec = self.cfg.horizon
        if (
            spec.kind == "full"
            or shoot is not self.train
            or (shoot.learned and not self.held())
            or getattr(shoot, "estimated", False)
            or k <= spec.start
        ):
            return k
        steps = grid[1:] - grid[:-1]
        if not bool(torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-6, atol=1e-12)):
            return k
        progress = self.epoch / max(1.0, spec.until * self.cfg.epochs)
        if progress >= 1:
            return k
        target = spec.start + (k - spec.start) * progress
        return max(d for d in range(1, k + 1) if k % d == 0 and d <= max(target, 1))

    def predict(self, shoot: Shooting, idx: torch.Tensor, grid: torch.Tensor):
        from ..solvers import solve

        if self.cfg.assimilate is not None:  # nudged head, free tail: see latent.py
            states, yhat, self._target, tb, ub = nudged_predict(self, shoot, idx, grid)
            self._observed = None  # nudging needs every observation: training refuses gaps with it
            return states, yhat, tb, ub
        w = shoot.w
        tb, ub, y = w.t[idx], w.u[idx], w.y[idx]
        x0 = shoot.initial(idx)
        if shoot.irregular:  # each window on its own times (train/irregular.py)
            states = irregular_rollout(self.model, x0, tb, ub, self.solver, self.autonomous)
            self._target = y
            self._observed = None if w.missing is None else ~w.missing[idx]
            return states, observe(self.model, states, tb, ub, self.obs_map), tb, ub
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
        self._observed = None if w.missing is None else ~w.missing[idx]
        if self._observed is not None and h < k:
            self._observed = torch.cat([self._observed[:, j : j + h + 1] for j in range(0, k, h)])
        return states, yhat, tb, ub

    def data_loss(self, yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        err = yhat - y
        err = err.abs() if self.cfg.loss == "mae" else err.pow(2)
        observed = getattr(self, "_observed", None)
        if observed is None or observed.shape != err.shape:
            return err.mean()
        # gaps in the data (missing values) carry no error: the mean over what was observed
        return (err * observed).sum() / observed.sum().clamp_min(1)

    def held(self) -> bool:
        """True while the window initial-state estimates are held at their initial values."""
        return self.epoch < self.hold

    def continuity(self, shoot: Shooting, idx: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        nxt = shoot.w.next[idx]
        has = nxt >= 0
        if not shoot.learned or self.held() or not bool(has.any()):
            return states.new_zeros(())
        return (states[has, -1] - shoot.x0[nxt[has]]).pow(2).mean()

    def objective(self, idx, grid, full=None):
        """The batch loss; with ``full`` (the whole minibatch of which ``idx`` is this rank's share) each
        term is weighted by the rank's share, so the sum over ranks is the single-process loss."""
        states, yhat, tb, ub = self.predict(self.train, idx, grid)
        data = self.data_loss(yhat, self._target)
        share, windows, rep, cont = 1.0, 1.0, 1.0, 1.0
        if full is not None:  # shares: of the observed values (data), of the windows (visited states)
            share, windows = self.observed_share(idx, full, grid, yhat), len(idx) / len(full)
            rep, self._share = 1.0 / self.shard.active(len(full)), share
            nxt = self.train.w.next
            cont = float((nxt[idx] >= 0).sum()) / max(float((nxt[full] >= 0).sum()), 1.0)
        loss = share * data + cont * self.continuity(self.train, idx, states)
        if self.dtargets is not None:  # derivative supervision (derivsup.py): a mean over this rank's windows
            self.dterm = self.dtargets.loss(self.model, self.train.w, idx, states, self.obs_map)
            loss = loss + windows * self.dterm
        if self.al:
            n, m = states.shape[-1], ub.shape[-1]
            loss = loss + self.al.penalty(
                self.model,
                states.reshape(-1, n),
                tb.reshape(-1),
                ub.reshape(tb.numel(), m),
                self.gen,
                float(data.detach()),
                weights=(windows, rep) if full is not None else None,
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
            if isinstance(self.opt, (GaussNewton, KFAC)):
                out = second_order_step(self, idx, grid)
                if out is None:
                    return None
                data, states, tb, ub = out
            elif isinstance(self.opt, torch.optim.LBFGS):
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
            elif self.shard is not None and self.shard.world > 1:  # data parallel: see parallel.py
                if self.opt is not None:
                    self.opt.zero_grad(set_to_none=True)
                out = self.shard_step(idx, grid)
                if out is None:
                    return None
                data, states, tb, ub = out
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
        return float(data.detach()) if isinstance(data, torch.Tensor) else data

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
