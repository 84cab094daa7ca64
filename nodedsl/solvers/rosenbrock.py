"""Rosenbrock methods with error control: ``rodas4`` (Hairer-Wanner's RODAS, order 4(3), L-stable).

A Rosenbrock step needs no Newton iteration: each of the six stages is one linear solve with the
same matrix ``I/(h gamma) - J`` (one LU per step), ``J`` the exact Jacobian at the step's start
(symbolic or AD, :func:`~nodedsl.solvers.derivatives.jacobian`). Non-autonomous fields get the
``h d_i f_t`` terms, ``f_t`` by a forward difference in ``t``. The method is stiffly accurate and
its last stage is the embedded error estimate; the step size follows the standard controller
``h * min(6, max(0.2, 0.9 err^(-1/4)))`` (no growth right after a rejection). Dense output is the
cubic Hermite interpolant of the step (order 3). Gradients: the accepted steps are replayed with
autograd on (the Jacobian too, so the method differentiated is the method run).

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> k = torch.tensor([1e4, 1.0], dtype=torch.float64)
    >>> res = solve(lambda t, x: -k * x, torch.ones(1, 2, dtype=torch.float64),
    ...             torch.tensor([0.0, 1.0], dtype=torch.float64), solver=make_solver("rodas4", rtol=1e-8, atol=1e-12))
    >>> abs(float(res.ys[-1, 0, 1]) - 0.36787944117144233) < 1e-7
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.tableaus import RODAS4, RosenbrockTableau
from .base import Field
from .control import Step, StiffSolver, hermite, initial_step, min_step, rms, scale
from .derivatives import jacobian
from .linsolve import choose, factor
from .result import SolveStats


@dataclass
class _Ctx:
    f: torch.Tensor
    h: float
    autonomous: bool
    kind: str | None = None  # the LU path, chosen from the first step's Jacobian


class Rosenbrock(StiffSolver):
    """An embedded Rosenbrock method from its :class:`~nodedsl.core.tableaus.RosenbrockTableau`."""

    def __init__(self, tableau: RosenbrockTableau = RODAS4, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.tableau = tableau
        self.name = tableau.name
        self.order = tableau.order

    def begin(self, field: Field, t0: float, y0: torch.Tensor, span: float, stats: SolveStats) -> _Ctx:
        f0 = field(y0.new_tensor(t0), y0)
        stats.nfe += 1
        h = self.first_step or initial_step(field, t0, y0, f0, span, self.tableau.order - 1, self.rtol, self.atol)
        stats.nfe += 0 if self.first_step else 1
        # A field that ignores t skips the f_t evaluation in every step: probed at two times, where
        # its t-derivative must vanish exactly and its values must not change.
        t1 = t0 + 0.377 * span + 1.0
        ft0, ft1 = _time_derivative(field, t0, y0), _time_derivative(field, t1, y0)
        same = torch.equal(field(y0.new_tensor(t1), y0), f0)
        stats.nfe += 5
        return _Ctx(f=f0, h=h, autonomous=same and bool((ft0 == 0).all() and (ft1 == 0).all()))

    def advance(self, field: Field, t: float, y: torch.Tensor, t_end: float, ctx: _Ctx, stats: SolveStats) -> Step:
        tt = y.new_tensor(t)
        jac = jacobian(field, tt, y)
        stats.njev += 1
        if ctx.kind is None:
            stats.linear_solver = ctx.kind = choose(jac, self.linear_solver)
        ft = None
        if not ctx.autonomous:
            ft = _time_derivative(field, t, y)
            stats.nfe += 2
        h, rejected = ctx.h, False
        while True:
            if h < min_step(t):
                raise self.too_small(t, h)
            t_new = t + h if t + h < t_end else t_end
            h = t_new - t
            y_new, err_vec = self.stages(field, t, y, h, ctx.f, jac, ft, stats, ctx.kind)
            err = rms(err_vec, scale(y, y_new, self.rtol, self.atol))
            if not math.isfinite(err):
                h *= 0.2
            elif err > 1:
                h *= max(0.2, 0.9 * err**-0.25)
            else:
                break
            rejected = True
            stats.rejected += 1
        grow = 1.0 if rejected else 6.0
        ctx.h = h * (grow if err == 0 else min(grow, max(0.2, 0.9 * err**-0.25)))
        f_new = field(y.new_tensor(t_new), y_new)
        stats.nfe += 1
        step = Step(t, h, t_new, y_new, hermite(t, h, y, y_new, ctx.f, f_new), aux=ft)
        ctx.f = f_new
        return step

    def stages(
        self, field: Field, t: float, y: torch.Tensor, h: float, f0: torch.Tensor, jac: torch.Tensor,
        ft: torch.Tensor | None, stats: SolveStats, kind: str = "dense",
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """One step of size ``h``: ``(y_new, error estimate)``; differentiable when its inputs are and
        ``kind`` is ``"dense"`` (the sparse LU runs outside autograd; the replay is always dense)."""
        tab = self.tableau
        eye = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
        lu = factor(eye / (h * tab.gamma) - jac, kind)
        stats.nlu += 1
        us: list[torch.Tensor] = []
        for i, (ci, di, ai, gi) in enumerate(zip(tab.c, tab.d, tab.a, tab.g)):
            if i == 0:
                rhs = f0
            else:
                yi = y + sum(a * u for a, u in zip(ai, us))
                rhs = field(y.new_tensor(t + ci * h), yi)
                stats.nfe += 1
            if gi:
                rhs = rhs + sum(g * u for g, u in zip(gi, us)) / h
            if ft is not None and di != 0.0:
                rhs = rhs + (h * di) * ft
            us.append(lu.solve(rhs))
        y_new = y + sum(m * u for m, u in zip(tab.m, us))
        return y_new, us[-1]

    def replay(self, field: Field, step: Step, y: torch.Tensor, stats: SolveStats) -> Step:
        tt = y.new_tensor(step.t)
        f0 = field(tt, y)
        jac = jacobian(field, tt, y)
        stats.nfe += 1
        stats.njev += 1
        y_new, _ = self.stages(field, step.t, y, step.h, f0, jac, step.aux, stats)
        f_new = field(y.new_tensor(step.t_new), y_new)
        stats.nfe += 1
        return Step(step.t, step.h, step.t_new, y_new, hermite(step.t, step.h, y, y_new, f0, f_new))


def _time_derivative(field: Field, t: float, y: torch.Tensor) -> torch.Tensor:
    """``df/dt`` at fixed ``y``: forward-mode AD in ``t``, or a central difference when the field
    cannot run under ``torch.func`` (the stiff limit needs it accurate: a forward difference's
    round-off error turns into an O(h) error of the step)."""
    tt = y.new_tensor(t)
    try:
        return torch.func.jvp(lambda s: field(s, y), (tt,), (torch.ones_like(tt),))[1]
    except (RuntimeError, NotImplementedError):
        delta = torch.finfo(y.dtype).eps ** (1 / 3) * max(1.0, abs(t))
        return (field(y.new_tensor(t + delta), y) - field(y.new_tensor(t - delta), y)) / (2 * delta)
