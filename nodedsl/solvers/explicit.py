"""Explicit fixed-step Runge-Kutta methods, all run by one tableau-driven step.

The step is written for low Python overhead: zero tableau entries are dropped
once at construction, and every ``y + (a*h)*k`` is a single ``torch.add`` with
``alpha`` (one dispatch instead of a multiply and an add).

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> res = solve(lambda t, x: -x, torch.ones(1, 1), torch.tensor([0.0, 1.0]), solver=make_solver("rk4", step=0.1))
    >>> round(res.ys[-1].item(), 4), res.stats.nfe
    (0.3679, 40)
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.tableaus import ButcherTableau
from .base import Field, FixedStepSolver, step_grid
from .result import SolveStats


class ExplicitRK(FixedStepSolver):
    """A fixed-step explicit Runge-Kutta method given by its :class:`ButcherTableau`."""

    supports_adjoint = True

    def __init__(self, tableau: ButcherTableau, step: float) -> None:
        super().__init__(step)
        self.tableau = tableau
        self.name = tableau.name
        self.order = tableau.order
        self.options = {"step": step}
        self.nfe_per_step = tableau.stages
        nodes: list[float] = []
        for ci in tableau.c:
            if ci not in nodes:
                nodes.append(ci)
        self.nodes = tuple(nodes)
        # (node index, ((j, a_ij) for nonzero a_ij)) per stage; the b row likewise.
        self._stages = tuple(
            (nodes.index(ci), tuple((j, a) for j, a in enumerate(row[:i]) if a != 0.0))
            for i, (row, ci) in enumerate(zip(tableau.a, tableau.c))
        )
        self._b = tuple((j, b) for j, b in enumerate(tableau.b) if b != 0.0)

    def step(
        self, field: Field, ts: tuple[torch.Tensor, ...], x: torch.Tensor, h: float, carry: Any
    ) -> tuple[torch.Tensor, Any]:
        ks: list[torch.Tensor] = []
        add = torch.add
        for node, row in self._stages:
            y = x
            for j, a in row:
                y = add(y, ks[j], alpha=a * h)
            ks.append(field(ts[node], y))
        for j, b in self._b:
            x = add(x, ks[j], alpha=b * h)
        return x, None

    def increment(self, func: Any, t0: torch.Tensor, dt: torch.Tensor, y0: torch.Tensor) -> torch.Tensor:
        """``x1 - x0`` with tensor ``dt`` (torchdiffeq's grid loop hands us tensors, not floats)."""
        ks: list[torch.Tensor] = []
        for (_node, row), ci in zip(self._stages, self.tableau.c):
            y = y0
            for j, a in row:
                y = y + (a * dt) * ks[j]
            ks.append(func(t0 + ci * dt, y))
        dy = torch.zeros_like(y0)
        for j, b in self._b:
            dy = dy + (b * dt) * ks[j]
        return dy

    def integrate_adjoint(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        from torchdiffeq import odeint_adjoint

        step = self.step_size

        def grid(func: Any, y0: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
            # Same subdivision as the forward loop, also for the reversed adjoint pass.
            return torch.tensor(step_grid(tt.tolist(), step), dtype=tt.dtype, device=tt.device)

        ys = odeint_adjoint(field, x0, t, method=self._register(), options={"grid_constructor": grid})
        self.account(stats, len(step_grid(t.tolist(), step)) - 1)
        return ys

    def _register(self) -> str:
        return _torchdiffeq_method(self.tableau)


_REGISTERED: dict[str, str] = {}


def _torchdiffeq_method(tableau: ButcherTableau) -> str:
    """Make ``tableau`` known to torchdiffeq under a private name (once per tableau).

    torchdiffeq only dispatches by name through its ``SOLVERS`` table; adding
    our tableau there lets ``odeint_adjoint`` run exactly our method forward
    and backward instead of a look-alike (its ``"rk4"`` is the 3/8 rule). The
    step size is not part of the entry: it travels in ``grid_constructor``.
    """
    key = _REGISTERED.get(tableau.name)
    if key is None:
        from torchdiffeq._impl.odeint import SOLVERS as TD_SOLVERS
        from torchdiffeq._impl.solvers import FixedGridODESolver

        method = ExplicitRK(tableau, 1.0)

        class _Tableau(FixedGridODESolver):
            order = tableau.order

            def _step_func(self, func, t0, dt, t1, y0):
                return method.increment(func, t0, dt, y0), None

        key = f"nodedsl_{tableau.name}"
        TD_SOLVERS[key] = _Tableau
        _REGISTERED[tableau.name] = key
    return key
