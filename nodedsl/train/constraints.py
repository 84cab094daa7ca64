"""The augmented Lagrangian for a model's constraints (Djeumou et al., 2022).

Each constraint ``c`` of size ``k`` has a multiplier vector ``lam_c`` (``k`` entries); one penalty ``mu``
is shared. At the points ``i`` a batch evaluates (visited states, or collocation samples for ``for``
domains) with residuals ``g_i`` the penalty added to the loss is, per constraint and times its weight,

* equality (``g == 0``):    ``mean_i sum_j ( lam_j g_ij + mu/2 g_ij^2 )``
* inequality (``g <= 0``):  ``mean_i sum_j ( max(0, lam_j + mu g_ij)^2 - lam_j^2 ) / (2 mu)``

Every ``update_every`` epochs, with the statistics of the epoch just finished:
``lam <- lam + mu * mean_i g_i`` (equality), ``lam <- mean_i max(0, lam + mu g_i)`` (inequality: the
pointwise update, averaged), and ``mu <- min(mu * growth, mu_max)`` when the worst violation exceeds
``tolerance`` and has not fallen to a quarter of its value at the previous update (the classical rule:
the penalty grows only while the multipliers alone do not make enough progress).
Violations: ``max |g|`` (equality), ``max max(0, g)`` (inequality).

Example:
    >>> import torch
    >>> psi(torch.tensor([-1.0, 0.5]), torch.tensor(0.0), 2.0).tolist()
    [0.0, 0.25]
"""

from __future__ import annotations

import torch

__all__ = ["AugmentedLagrangian", "psi", "residuals"]


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


def residuals(
    model,
    info,
    states: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    g: torch.Generator,
    samples: int,
    grid: bool = False,
) -> torch.Tensor:
    """Residuals ``[P, size]`` of one constraint at the visited ``states [R, n]`` (times ``t [R]``, inputs
    ``u [R, m]``) or at ``samples`` collocation points for ``for`` domains."""
    if not info.domains:
        if not info.uses_state:
            return model.constraint_residuals(info.name, t[:1], states[:1], u[:1], {})
        return model.constraint_residuals(info.name, t, states, u, {})
    draws = _domain_samples(info, samples, g, states.dtype, grid, states.device)
    if info.uses_state:
        rows = torch.randint(states.shape[0], (samples,), generator=g)
        return model.constraint_residuals(info.name, t[rows], states[rows], u[rows], draws)
    x = model.x0_default.detach().to(states).reshape(1, -1).expand(samples, -1)
    uu = u[:1].expand(samples, -1)
    return model.constraint_residuals(info.name, t[:1].expand(samples), x, uu, draws)


class AugmentedLagrangian:
    """Multipliers, penalty and per-epoch statistics for the constraints of one model."""

    def __init__(self, infos, cfg, dtype=torch.float32, device=None):
        self.infos = tuple(infos)
        self.cfg = cfg
        self.mu = float(cfg.mu)
        self.previous: float | None = None  # worst violation at the last update
        self.lam = {c.name: torch.zeros(c.size, dtype=dtype, device=device) for c in self.infos}
        self.reset_epoch()

    def __bool__(self) -> bool:
        return bool(self.infos)

    def reset_epoch(self) -> None:
        self._sum = {c.name: torch.zeros_like(self.lam[c.name], dtype=torch.float64) for c in self.infos}
        self._count = {c.name: 0 for c in self.infos}
        self._viol = {c.name: torch.zeros((), dtype=torch.float64) for c in self.infos}

    def penalty(
        self,
        model,
        states: torch.Tensor,
        t: torch.Tensor,
        u: torch.Tensor,
        g: torch.Generator,
        weights: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """The augmented-Lagrangian term at these visited states (and fresh collocation samples).

        ``weights = (share, replicated)`` under data parallelism: a term over the visited states of this
        rank's windows counts with the rank's ``share`` of the minibatch; a term every rank evaluates
        alike (no state, or collocation samples) with ``replicated`` (1 / the number of ranks)."""
        total = states.new_zeros(())
        self._pending = []
        for c in self.infos:
            r = residuals(model, c, states, t, u, g, self.cfg.samples)
            lam = self.lam[c.name].to(device=r.device, dtype=r.dtype)
            if c.kind == "eq":
                term = (r * lam).sum(-1).mean() + 0.5 * self.mu * r.pow(2).sum(-1).mean()
            else:
                term = psi(r, lam, self.mu).sum(-1).mean()
            if weights is not None:
                term = term * (weights[0] if c.uses_state and not c.domains else weights[1])
            total = total + c.weight * term
            self._pending.append((c, r.detach(), lam.detach()))
        return total

    def commit(self) -> None:
        """Add the statistics of the last :meth:`penalty` call (a batch whose step succeeded)."""
        with torch.no_grad():
            for c, r, lam in getattr(self, "_pending", ()):
                rd = r.double()
                if c.kind == "eq":
                    self._sum[c.name] += rd.sum(0)
                    self._viol[c.name] = torch.maximum(self._viol[c.name], rd.abs().max())
                else:
                    self._sum[c.name] += torch.relu(lam.double() + self.mu * rd).sum(0)
                    self._viol[c.name] = torch.maximum(self._viol[c.name], torch.relu(rd).max())
                self._count[c.name] += rd.shape[0]
        self._pending = []

    def epoch_violations(self) -> dict[str, float]:
        """Worst violation per constraint over the points evaluated this epoch."""
        return {name: float(v) for name, v in self._viol.items()}

    def update(self) -> None:
        """The multiplier and penalty update, from this epoch's statistics."""
        worst = 0.0
        for c in self.infos:
            count = self._count[c.name]
            if count == 0:
                continue
            mean = (self._sum[c.name] / count).to(self.lam[c.name].dtype)
            if c.kind == "eq":
                self.lam[c.name] = self.lam[c.name] + self.mu * mean
            else:
                self.lam[c.name] = mean.clamp_min(0.0)
            worst = max(worst, float(self._viol[c.name]))
        stalled = self.previous is None or worst > 0.25 * self.previous
        if worst > self.cfg.tolerance and stalled:
            self.mu = min(self.mu * self.cfg.growth, self.cfg.mu_max)
        self.previous = worst

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
        return {"mu": self.mu, "previous": self.previous, "lam": {k: v.clone() for k, v in self.lam.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.mu = float(state["mu"])
        self.previous = state.get("previous")
        for k, v in state["lam"].items():
            if k in self.lam and self.lam[k].shape == v.shape:
                self.lam[k] = v.clone().to(self.lam[k])
        self.reset_epoch()

    def multipliers(self) -> dict[str, list[float]]:
        return {k: v.tolist() for k, v in self.lam.items()}
