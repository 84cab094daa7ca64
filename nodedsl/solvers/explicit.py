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
from .base import Field, FixedStepSolver, step_grid, step_plan, time_eps
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
        params = [p for p in field.parameters() if p.requires_grad]  # solve() checks field is a Module
        ys = _Adjoint.apply(self, field, t, x0, *params)
        self.account(stats, len(step_grid(t.tolist(), self.step_size, time_eps(t.dtype))) - 1)
        return ys

    def march(
        self, func: Any, state: tuple[torch.Tensor, ...], a: float, b: float, eps: float = 0.0
    ) -> tuple[torch.Tensor, ...]:
        """Integrate a tuple-valued ``func`` from ``a`` to ``b`` (either direction) with this tableau,
        subdividing like the forward loop (:func:`step_plan`), so the adjoint pass uses the same steps."""
        ((n, h),) = step_plan([a, b], self.step_size, eps)
        for m in range(n):
            t0 = a + m * h
            ks: list[tuple[torch.Tensor, ...]] = []
            for (_node, row), ci in zip(self._stages, self.tableau.c):
                y = state
                for j, aij in row:
                    y = tuple(torch.add(yv, kv, alpha=aij * h) for yv, kv in zip(y, ks[j]))
                ks.append(func(t0 + ci * h, y))
            for j, bj in self._b:
                state = tuple(torch.add(sv, kv, alpha=bj * h) for sv, kv in zip(state, ks[j]))
        return state


class _Adjoint(torch.autograd.Function):
    """The continuous adjoint for a fixed-step tableau, by our own loop (no entry in torchdiffeq's tables).

    Forward: the ordinary fixed-step solve without a graph. Backward: from the last output time to the
    first, the augmented system ``x' = f``, ``a' = -a^T df/dx``, ``g' = -a^T df/dp`` runs backwards with
    the same tableau and step grid (what ``torchdiffeq.odeint_adjoint`` computes with a fixed grid), and
    each output's cotangent is added to ``a`` at its time."""

    @staticmethod
    def forward(ctx: Any, method: ExplicitRK, field: Any, t: torch.Tensor, x0: torch.Tensor, *params: torch.Tensor):
        with torch.no_grad():
            ys = FixedStepSolver.integrate(method, field, x0, t, SolveStats())
        ctx.method, ctx.field = method, field
        ctx.save_for_backward(t, ys, *params)
        return ys

    @staticmethod
    def backward(ctx: Any, grad_ys: torch.Tensor):  # type: ignore[override]
        t, ys, *params = ctx.saved_tensors
        field, times = ctx.field, t.tolist()

        def augmented(tt: float, s: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            with torch.enable_grad():
                x = s[0].detach().requires_grad_(True)
                f = field(torch.as_tensor(tt, dtype=x.dtype, device=x.device), x)
                vjp = torch.autograd.grad(f, (x, *params), -s[1], allow_unused=True)
            rest = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, vjp[1:]))
            return (f.detach(), vjp[0] if vjp[0] is not None else torch.zeros_like(x), *rest)

        adj = grad_ys[-1].clone()
        adj_p = tuple(torch.zeros_like(p) for p in params)
        for i in range(len(times) - 1, 0, -1):
            state = ctx.method.march(augmented, (ys[i], adj, *adj_p), times[i], times[i - 1], time_eps(t.dtype))
            adj, adj_p = state[1] + grad_ys[i - 1], state[2:]
        return (None, None, None, adj, *adj_p)
