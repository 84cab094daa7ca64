"""Störmer-Verlet (leapfrog) for separable Hamiltonian fields ``x = [q, p]``.

Kick-drift-kick: ``p' = p + h/2 F(q)``, ``q1 = q + h G(p')``, ``p1 = p' + h/2 F(q1)``
with ``G = dq/dt`` (depends on p only) and ``F = dp/dt`` (depends on q only).
The closing force ``F(q1)`` is the next step's opening force, so it is carried
over and a step costs 2 field evaluations (plus 1 at the start).

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> class Oscillator(torch.nn.Module):
    ...     symplectic_split = 1
    ...     def forward(self, t, x):
    ...         return torch.cat([x[:, 1:], -x[:, :1]], dim=1)
    >>> res = solve(Oscillator(), torch.tensor([[1.0, 0.0]]), torch.tensor([0.0, 1.0]),
    ...             solver=make_solver("leapfrog", step=0.1))
    >>> res.stats.nfe, res.stats.steps
    (21, 10)
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field, FixedStepSolver
from .result import SolveStats


class Leapfrog(FixedStepSolver):
    """Second-order, symplectic, time-reversible; needs ``field.symplectic_split``."""

    name = "leapfrog"
    order = 2
    nodes = (0.0, 0.5, 1.0)
    nfe_per_step = 2

    def __init__(self, step: float) -> None:
        super().__init__(step)
        self.options = {"step": step}

    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        nq = getattr(field, "symplectic_split", None)
        if not isinstance(nq, int) or isinstance(nq, bool) or not 0 < nq < x0.shape[-1]:
            raise SolverError(
                "leapfrog needs a separable model: an even number of states, the first half positions q "
                "and the second half momenta p, with der(q) depending only on p and der(p) only on q "
                "(known parameters are substituted first); this model is not separable, use "
                "implicit_midpoint (symplectic for any Hamiltonian) instead",
                option="solver",
            )
        return super().integrate(field, x0, t, stats)

    def account(self, stats: SolveStats, n_steps: int) -> None:
        super().account(stats, n_steps)
        stats.nfe += 1 if n_steps else 0  # the opening force of the first step

    def step(
        self, field: Field, ts: tuple[torch.Tensor, ...], x: torch.Tensor, h: float, carry: Any
    ) -> tuple[torch.Tensor, Any]:
        nq = field.symplectic_split  # type: ignore[attr-defined]
        if carry is None:
            q, p = x[:, :nq], x[:, nq:]
            force = field(ts[0], x)[:, nq:]
        else:
            # The loop hands back the x we returned, so its halves and force are still valid.
            q, p, force = carry
        p = torch.add(p, force, alpha=0.5 * h)
        q = torch.add(q, field(ts[1], torch.cat((q, p), 1))[:, :nq], alpha=h)
        force = field(ts[2], torch.cat((q, p), 1))[:, nq:]
        p = torch.add(p, force, alpha=0.5 * h)
        return torch.cat((q, p), 1), (q, p, force)
