"""The augmented Lagrangian for a model's constraints (Djeumou et al., 2022), scale-aware.

Residuals are normalized (``scale = auto``, the default): constraint ``c``'s residual ``g`` is divided by
``s_c``, the largest root-mean-square *term magnitude* seen so far in a batch (``|a| + |b|`` for
``a == b``; the model's ``constraint_residuals(..., magnitude=True)``), and the whole term is multiplied
by ``D``, the mean data loss over the first ``update_every`` steps (the first batch's before that). So
``mu`` and the multipliers are dimensionless: ``mu = 1`` weighs a 100 % violation like the early data
loss, whatever the units of the data and of the constraint. With ``g~ = g / s_c`` at the points ``i`` a
batch evaluates, the penalty is

* equality (``g == 0``):    ``D mean_i sum_j ( lam_ij g~_ij + mu/2 g~_ij^2 )``
* inequality (``g <= 0``):  ``D mean_i sum_j ( max(0, lam_ij + mu g~_ij)^2 - lam_ij^2 ) / (2 mu)``

``lam_i`` is one multiplier vector per collocation point for ``for`` constraints (a fixed set of
``points`` samples of the domain, of which each batch visits ``samples``, as the reference code does),
and one vector shared by all visited states otherwise. Every ``update_every`` OPTIMIZER STEPS, with the
statistics of the steps since the last update: ``lam <- lam + mu * mean g~`` (equality; per point),
``lam <- mean max(0, lam + mu g~)`` (inequality), ``s_c`` is re-measured, and ``mu <- min(mu * growth,
mu_max)`` when the worst normalized violation exceeds ``tolerance`` and did not fall to a quarter of its
value at the previous update. Reported violations stay absolute: ``max |g|`` / ``max max(0, g)``.

Example:
    >>> import torch
    >>> psi(torch.tensor([-1.0, 0.5]), torch.tensor(0.0), 2.0).tolist()
    [0.0, 0.25]
"""

from __future__ import annotations

import torch

__all__ = ["AugmentedLagrangian", "psi", "residuals"]

POINTS_SEED = 104729  # the collocation set's own generator: the batch stream is unchanged by its size


def psi(g: torch.Tensor, lam: torch.Tensor, mu: float) -> torch.Tensor:
    """The inequality term ``(max(0, lam + mu g)^2 - lam^2) / (2 mu)``."""
    return (torch.relu(lam + mu * g).pow(2) - lam.pow(2)) / (2.0 * mu)


def _domain_samples(
    info, count: int, g: torch.Generator, dtype, grid: bool = False, device=None
) -> dict[str, torch.Tensor]:
    sizes = tuple(getattr(info, "domain_sizes", ()) or ()) or (1,) * len(info.domains)
    out = {}
    for (var, lo, hi), size in zip(info.domains, sizes):
        if grid and len(info.domains) == 1 and size == 1:
            out[var] = torch.linspace(lo, hi, count, dtype=dtype, device=device)
        else:  # drawn on the CPU generator (the same numbers on every device), then moved
            draw = torch.rand(count * size, generator=g, dtype=torch.float64)
            out[var] = (lo + (hi - lo) * draw).to(device=device, dtype=dtype)
    return out


def _call(model, info, t, x, u, draws, magnitude: bool) -> torch.Tensor:
    if not magnitude:
        return model.constraint_residuals(info.name, t, x, u, draws)
    try:
        return model.constraint_residuals(info.name, t, x, u, draws, magnitude=True)
    except TypeError:  # a model without term magnitudes: the residual's own size
        return model.constraint_residuals(info.name, t, x, u, draws).abs()


def residuals(
    model,
    info,
    states: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    g: torch.Generator,
    samples: int,
    grid: bool = False,
    draws: dict[str, torch.Tensor] | None = None,
    magnitude: bool = False,
) -> torch.Tensor:
    """Residuals ``[P, size]`` of one constraint at the visited ``states [R, n]`` (times ``t [R]``, inputs
    ``u [R, m]``) or at ``samples`` collocation points for ``for`` domains (``draws``: given points;
    ``magnitude``: the terms' absolute sum instead of the residual)."""
    if not info.domains:
        if not info.uses_state:
            return _call(model, info, t[:1], states[:1], u[:1], {}, magnitude)
        return _call(model, info, t, states, u, {}, magnitude)
    if draws is None:
        draws = _domain_samples(info, samples, g, states.dtype, grid, states.device)
    count = samples
    if info.uses_state:
        rows = torch.randint(states.shape[0], (count,), generator=g)
        return _call(model, info, t[rows], states[rows], u[rows], draws, magnitude)
    x = model.x0_default.detach().to(states).reshape(1, -1).expand(count, -1)
    return _call(model, info, t[:1].expand(count), x, u[:1].expand(count, -1), draws, magnitude)


class AugmentedLagrangian:
    """Multipliers, penalty, scales and statistics for the constraints of one model.

    ``data_scale`` fixes ``D`` (else the data losses given to :meth:`penalty` set it; 1 with
    ``scale = none``). ``update()`` runs by itself every
    ``update_every`` committed steps (``auto_update``), or when the caller sees :meth:`due` (``steps``: the
    training loop updates at the end of an epoch, after data-parallel ranks reduced the statistics), or
    once per ``update_every`` epochs (``epochs``: statistics per epoch)."""

    def __init__(
        self,
        infos,
        cfg,
        dtype=torch.float32,
        device=None,
        data_scale: float | None = None,
        auto_update: bool | str = True,
    ):
        self.infos = tuple(infos)
        self.cfg = cfg
        self.normalize = getattr(cfg, "scale", "auto") == "auto"
        self.fixed = data_scale is not None or not self.normalize
        self.data_scale = float(data_scale or 1.0) if self.normalize else 1.0
        self._first = not self.fixed
        self.auto_update = auto_update
        self.mu = float(cfg.mu)
        self.previous: float | None = None  # worst normalized violation at the last update
        self.updates = 0
        npts = int(getattr(cfg, "points", 0) or 0)
        gen = torch.Generator().manual_seed(POINTS_SEED)
        self.points = {
            c.name: _domain_samples(c, npts, gen, dtype, device=device) for c in self.infos if c.domains and npts > 0
        }  # fixed collocation sets: per-point multipliers
        self.lam = {c.name: torch.zeros(self._lam_shape(c), dtype=dtype, device=device) for c in self.infos}
        self.scale = {c.name: 0.0 for c in self.infos}  # s_c: 0 until measured
        self.reset_period()
        self.reset_epoch()

    def _lam_shape(self, c) -> tuple[int, ...]:
        return (int(self.cfg.points), c.size) if c.name in self.points else (c.size,)

    def __bool__(self) -> bool:
        return bool(self.infos)

    def reset_epoch(self) -> None:
        """Start an epoch's violation record (the multiplier statistics are per period, not per epoch)."""
        self._viol = {c.name: torch.zeros((), dtype=torch.float64) for c in self.infos}
        self._pen = [0.0, 0]
        if self.auto_update == "epochs":
            self.reset_period()

    def reset_period(self) -> None:
        self._sum = {c.name: torch.zeros_like(self.lam[c.name], dtype=torch.float64) for c in self.infos}
        self._count = {
            c.name: torch.zeros(self.lam[c.name].shape[:-1], dtype=torch.float64, device=self.lam[c.name].device)
            for c in self.infos
        }
        self._rel = {c.name: 0.0 for c in self.infos}
        self._data = [0.0, 0]
        self._steps = 0

    def _batch(self, model, c, states, t, u, g):
        """Residuals, term magnitudes and the multipliers' rows for one constraint at this batch."""
        if c.name in self.points:
            idx = torch.randint(int(self.cfg.points), (int(self.cfg.samples),), generator=g)
            pts = self.points[c.name]
            draws = {v: p.reshape(int(self.cfg.points), -1)[idx].reshape(-1) for v, p in pts.items()}
            state = g.get_state()  # the residual and its magnitude pair the SAME visited states
            r = residuals(model, c, states, t, u, g, len(idx), draws=draws)
            mag = None
            if self.normalize:
                g.set_state(state)
                mag = residuals(model, c, states, t, u, g, len(idx), draws=draws, magnitude=True)
            return r, mag, idx
        state = g.get_state()
        r = residuals(model, c, states, t, u, g, self.cfg.samples)
        mag = None
        if self.normalize:
            g.set_state(state)
            mag = residuals(model, c, states, t, u, g, self.cfg.samples, magnitude=True)
        return r, mag, None

    def penalty(
        self,
        model,
        states: torch.Tensor,
        t: torch.Tensor,
        u: torch.Tensor,
        g: torch.Generator,
        data: float | None = None,
        weights: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """The augmented-Lagrangian term at these visited states (and collocation points); ``data``: this
        batch's data loss (sets ``D``). ``weights = (share, replicated)`` under data parallelism: a term
        over the visited states of this rank's windows counts with the rank's ``share`` of the minibatch; a
        term every rank evaluates alike (no state, or collocation samples) with ``replicated``."""
        total = states.new_zeros(())
        self._pending_data = data if data is not None and data == data else None
        if self._first and self._pending_data is not None:
            self.data_scale, self._first = max(float(self._pending_data), 1e-12), False
        self._pending = []
        for c in self.infos:
            r, mag, idx = self._batch(model, c, states, t, u, g)
            rms = float(mag.detach().double().pow(2).mean().sqrt()) if mag is not None else 1.0
            if self.normalize:  # the largest scale seen, before use: g~ of a single term stays <= 1
                self.scale[c.name] = max(self.scale[c.name], rms, 1e-12)
            s = self.scale[c.name] if self.normalize else 1.0
            rn = r / s
            lam = self.lam[c.name].to(device=r.device, dtype=r.dtype)
            lam = lam[idx.to(lam.device)] if idx is not None else lam
            if c.kind == "eq":
                term = (rn * lam).sum(-1).mean() + 0.5 * self.mu * rn.pow(2).sum(-1).mean()
            else:
                term = psi(rn, lam, self.mu).sum(-1).mean()
            if weights is not None:
                term = term * (weights[0] if c.uses_state and not c.domains else weights[1])
            total = total + c.weight * self.data_scale * term
            self._pending.append((c, rn.detach(), r.detach(), lam.detach(), idx))
        self._pending_total = float(total.detach())
        return total

    def commit(self) -> None:
        """Add the statistics of the last :meth:`penalty` call (a batch whose step succeeded)."""
        with torch.no_grad():
            for c, rn, r, lam, idx in getattr(self, "_pending", ()):
                rd, raw = rn.double(), r.double()
                if c.kind == "eq":
                    stat, viol, rel = rd, raw.abs().max(), float(rd.abs().max())
                else:
                    stat, viol = torch.relu(lam.double() + self.mu * rd), torch.relu(raw).max()
                    rel = float(torch.relu(rd).max())  # the normalized violation drives mu
                if idx is None:
                    self._sum[c.name] += stat.sum(0)
                    self._count[c.name] += stat.shape[0]
                else:
                    at = idx.to(self._sum[c.name].device)
                    self._sum[c.name].index_add_(0, at, stat.to(self._sum[c.name].device))
                    self._count[c.name].index_add_(0, at, torch.ones(len(at), dtype=torch.float64, device=at.device))
                self._viol[c.name] = torch.maximum(self._viol[c.name], viol)
                self._rel[c.name] = max(self._rel[c.name], rel)
            if getattr(self, "_pending", None):
                if getattr(self, "_pending_data", None) is not None:
                    self._data[0] += float(self._pending_data)
                    self._data[1] += 1
                self._pen[0] += self._pending_total
                self._pen[1] += 1
                self._steps += 1
        self._pending = []
        if self.auto_update is True and self.due():
            self.update()

    def due(self) -> bool:
        """Whether ``update_every`` steps were committed since the last update."""
        return self._steps >= int(self.cfg.update_every)

    def epoch_violations(self) -> dict[str, float]:
        """Worst (absolute) violation per constraint over the points evaluated this epoch."""
        return {name: float(v) for name, v in self._viol.items()}

    def epoch_penalty(self) -> float:
        """The mean augmented-Lagrangian term over this epoch's steps."""
        return self._pen[0] / self._pen[1] if self._pen[1] else 0.0

    def update(self) -> None:
        """The multiplier, scale and penalty update, from the statistics since the last update."""
        worst = 0.0
        for c in self.infos:
            count = self._count[c.name]
            if not bool((count > 0).any()):
                continue
            seen = count > 0
            mean = (self._sum[c.name] / count.clamp_min(1.0).unsqueeze(-1)).to(self.lam[c.name].dtype)
            lam = self.lam[c.name]
            new = lam + self.mu * mean if c.kind == "eq" else mean.clamp_min(0.0)
            self.lam[c.name] = torch.where(seen.unsqueeze(-1), new, lam) if lam.dim() > 1 else new
            worst = max(worst, self._rel[c.name])
        if not self.fixed and self._data[1]:  # D: the data loss over the first period, then fixed
            self.data_scale = max(self._data[0] / self._data[1], 1e-12)
            self.fixed = True
        stalled = self.previous is None or worst > 0.25 * self.previous
        if worst > self.cfg.tolerance and stalled:
            self.mu = min(self.mu * self.cfg.growth, self.cfg.mu_max)
        self.previous = worst
        self.updates += 1
        self.reset_period()

    def evaluate(
        self, model, states: torch.Tensor, t: torch.Tensor, u: torch.Tensor, g: torch.Generator, samples: int = 2001
    ) -> dict[str, float]:
        """Violations at these states and at ``samples`` collocation points (a grid for 1-D domains)."""
        out = {}
        with torch.no_grad():
            for c in self.infos:
                r = residuals(model, c, states, t, u, g, samples, grid=True).double()
                out[c.name] = float(r.abs().max() if c.kind == "eq" else torch.relu(r).max())
        return out

    def state_dict(self) -> dict:
        return {
            "mu": self.mu,
            "previous": self.previous,
            "updates": self.updates,
            "lam": {k: v.clone() for k, v in self.lam.items()},
            "scale": dict(self.scale),
            "data_scale": self.data_scale,
            "first": self._first,
            "fixed": self.fixed,
            "period": {
                "sum": {k: v.clone() for k, v in self._sum.items()},
                "count": {k: v.clone() for k, v in self._count.items()},
                "rel": dict(self._rel),
                "data": list(self._data),
                "steps": self._steps,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.mu = float(state["mu"])
        self.previous = state.get("previous")
        self.updates = int(state.get("updates", 0))
        self.data_scale = float(state.get("data_scale", self.data_scale))
        self._first = bool(state.get("first", self._first))
        self.fixed = bool(state.get("fixed", self.fixed))
        self.scale.update({k: float(v) for k, v in (state.get("scale") or {}).items() if k in self.scale})
        for k, v in state["lam"].items():
            if k in self.lam and self.lam[k].shape == v.shape:
                self.lam[k] = v.clone().to(self.lam[k])
        self.reset_epoch()
        self.reset_period()
        period = state.get("period")
        if period:
            for k in self.lam:
                if k in period["sum"] and period["sum"][k].shape == self._sum[k].shape:
                    self._sum[k] = period["sum"][k].clone()
                    self._count[k] = period["count"][k].clone()
                    self._rel[k] = float(period["rel"][k])
            self._steps = int(period["steps"])
            self._data = [float(period["data"][0]), int(period["data"][1])]

    def multipliers(self) -> dict[str, list[float]]:
        """Per constraint, its multiplier vector (the mean over the collocation set for ``for`` constraints;
        the full per-point multipliers are in the checkpoint)."""
        return {k: (v.mean(0) if v.dim() > 1 else v).tolist() for k, v in self.lam.items()}

    def largest(self) -> dict[str, float]:
        """Per constraint, the largest |multiplier| (per-epoch metrics and plots)."""
        return {k: float(v.abs().max()) if v.numel() else 0.0 for k, v in self.lam.items()}
