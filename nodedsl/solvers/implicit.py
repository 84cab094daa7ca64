"""Diagonally implicit Runge-Kutta methods with Newton solves and implicit gradients.

Each stage solves ``z = h a_ii f(t_i, r + z)`` for the stage increment ``z``
(``r`` collects the earlier stages). Newton runs under ``no_grad``: we never
backpropagate through its iterations. Gradients are re-attached DEQ-style:
one evaluation ``z = h a_ii f(t_i, r + z*)`` with ``z*`` detached gives the
right-hand side of the implicit-function theorem, and a backward hook on it
applies ``(I - h a_ii J)^-T``, with ``J`` the Jacobian at the solution.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> A = torch.tensor([[-1000.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    >>> field = lambda t, x: x @ A.T
    >>> res = solve(field, torch.ones(1, 2, dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64),
    ...             solver=make_solver("implicit_euler", step=0.1))
    >>> bool(res.ys.abs().max() <= 1.0), res.stats.steps
    (True, 10)
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.tableaus import ButcherTableau
from .base import Field, FixedStepSolver
from .derivatives import jacobian
from .newton import newton_stage
from .result import SolveStats


class DIRK(FixedStepSolver):
    """A diagonally implicit RK method (implicit Euler, implicit midpoint, SDIRK2/3) from its tableau."""

    nfe_per_step = 0  # Newton work varies; counted as it happens

    def __init__(self, tableau: ButcherTableau, *, step: float, tol: float, atol: float, max_iter: int) -> None:
        super().__init__(step)
        self.tableau = tableau
        self.name = tableau.name
        self.order = tableau.order
        self.tol = tol
        self.atol = atol
        self.max_iter = max_iter
        self.options = {"step": step, "tol": tol, "atol": atol, "max_iter": max_iter}
        nodes: list[float] = []
        for ci in tableau.c:
            if ci not in nodes:
                nodes.append(ci)
        self.nodes = tuple(nodes)
        diag = [row[i] for i, row in enumerate(tableau.a)]
        # With z_j = h a_jj k_j, earlier-stage sums become h-independent: a_ij / a_jj.
        self._stages = tuple(
            (nodes.index(ci), diag[i], tuple((j, a / diag[j]) for j, a in enumerate(row[:i]) if a != 0.0))
            for i, (row, ci) in enumerate(zip(tableau.a, tableau.c))
        )
        self._b = tuple((j, b / diag[j]) for j, b in enumerate(tableau.b) if b != 0.0)

    def start(self, field: Field, x0: torch.Tensor, stats: SolveStats) -> Any:
        return stats, None

    def account(self, stats: SolveStats, n_steps: int) -> None:
        stats.steps += n_steps

    def step(
        self, field: Field, ts: tuple[torch.Tensor, ...], x: torch.Tensor, h: float, carry: Any
    ) -> tuple[torch.Tensor, Any]:
        stats, previous = carry
        zs: list[torch.Tensor] = []
        for i, (node, diag, row) in enumerate(self._stages):
            r = x
            for j, c in row:
                r = torch.add(r, zs[j], alpha=c)
            t = ts[node]
            ha = h * diag
            # Start from the same stage of the last step (steps are equal, so increments change slowly).
            guess = previous[i] if previous is not None and previous[i].shape == r.shape else None
            with torch.no_grad():
                z = newton_stage(field, t, r.detach(), ha, guess, self, stats)
            if torch.is_grad_enabled():
                z = _reattach(field, t, r, z, ha, stats)
            zs.append(z)
        for j, c in self._b:
            x = torch.add(x, zs[j], alpha=c)
        return x, (stats, [z.detach() for z in zs])


def _reattach(
    field: Field, t: torch.Tensor, r: torch.Tensor, z_star: torch.Tensor, ha: float, stats: SolveStats
) -> torch.Tensor:
    """``z*`` with the implicit-function-theorem gradient attached.

    ``z = ha f(t, r + z)`` gives ``(I - ha J) dz = ha (J dr + f_theta dtheta)``.
    Evaluating the right side once (``z*`` detached) yields exactly the
    bracket's VJP; the hook first maps the incoming cotangent through
    ``(I - ha J)^-T``. Forward value: equal to ``z*`` up to the Newton residual.
    """
    z = field(t, r + z_star) * ha
    stats.nfe += 1
    if not z.requires_grad:
        return z
    with torch.no_grad():
        jac = jacobian(field, t, r.detach() + z_star)
        stats.njev += 1
        eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
        lu, piv = torch.linalg.lu_factor(eye - ha * jac)
    z.register_hook(lambda g: _solve_transposed(lu, piv, g))
    return z


def _solve_transposed(lu: torch.Tensor, piv: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor | None:
    # An output that does not depend on this stage hands the hook no gradient.
    if g is None:
        return None
    return torch.linalg.lu_solve(lu, piv, g.unsqueeze(-1), adjoint=True).squeeze(-1)
