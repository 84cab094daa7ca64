"""Radau IIA of order 5 with error control: the stiff workhorse (after Hairer-Wanner's RADAU5).

Each step solves the 3-stage collocation system for the stage increments ``Z`` by simplified
Newton on the transformed system ``W = T^-1 Z``: one real and one complex ``n x n`` LU of
``mu/h I - J`` per factorization instead of a ``3n x 3n`` one. The Jacobian ``J`` is exact (the
field's symbolic ``jacobian`` or AD, :func:`~nodedsl.solvers.derivatives.jacobian`) and reused
across steps while Newton converges fast; the LUs are reused while ``h`` stays put. Newton that
diverges first gets a fresh Jacobian, then a halved step. The embedded error estimate (filtered
through the real LU, as RADAU5 does) drives the step size with Gustafsson's predictive control.
Dense output is the collocation polynomial (stage order 3), which also predicts the next step's
Newton start. Gradients: the implicit-function theorem on the collocation system, per accepted
step (see :func:`_reattach`).

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> k = torch.tensor([1e4, 1.0], dtype=torch.float64)
    >>> res = solve(lambda t, x: -k * x, torch.ones(1, 2, dtype=torch.float64),
    ...             torch.tensor([0.0, 1.0], dtype=torch.float64), solver=make_solver("radau", rtol=1e-8, atol=1e-12))
    >>> abs(float(res.ys[-1, 0, 1]) - 0.36787944117144233) < 1e-7, res.stats.steps < 500
    (True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..core.tableaus import RADAU5
from .base import Field
from .control import Step, StiffSolver, initial_step, min_step, rms, scale
from .derivatives import jacobian
from .linsolve import choose, factor
from .result import SolveStats

NEWTON_MAXITER = 6
MIN_FACTOR, MAX_FACTOR = 0.2, 10.0


@dataclass
class _Ctx:
    """What carries from one step to the next: f(t, y), J, the LUs and the step-size history."""

    f: torch.Tensor
    jac: torch.Tensor
    h: float
    newton_tol: float
    kind: str = "dense"
    fresh_jac: bool = True
    lu_real: Any = None
    lu_complex: Any = None
    lu_h: float = 0.0
    h_old: float | None = None
    err_old: float | None = None
    prev: Step | None = None


class Radau5(StiffSolver):
    """``radau``: 3-stage Radau IIA, order 5, L-stable, adaptive; for stiff problems."""

    name = "radau"
    order = 5

    def begin(self, field: Field, t0: float, y0: torch.Tensor, span: float, stats: SolveStats) -> _Ctx:
        tt = y0.new_tensor(t0)
        f0 = field(tt, y0)
        stats.nfe += 1
        h = self.first_step or initial_step(field, t0, y0, f0, span, 3, self.rtol, self.atol)
        stats.nfe += 0 if self.first_step else 1
        stats.njev += 1
        eps = torch.finfo(y0.dtype).eps
        tol = max(10 * eps / self.rtol, min(0.03, self.rtol**0.5))
        jac = jacobian(field, tt, y0)
        stats.linear_solver = kind = choose(jac, self.linear_solver)
        return _Ctx(f=f0, jac=jac, h=h, newton_tol=tol, kind=kind)

    def advance(self, field: Field, t: float, y: torch.Tensor, t_end: float, ctx: _Ctx, stats: SolveStats) -> Step:
        h, rejected = ctx.h, False
        h_old, err_old = ctx.h_old, ctx.err_old
        while True:
            if h < min_step(t):
                raise self.too_small(t, h)
            t_new = t + h if t + h < t_end else t_end
            h = t_new - t
            z0 = _predict(ctx.prev, t, h, y)
            z, n_iter, rate = self._solve_stages(field, t, y, h, z0, ctx, stats)
            if z is None:
                h *= 0.5
                ctx.lu_real = ctx.lu_complex = None
                continue
            y_new = y + z[2]
            err = self._error(field, t, y, y_new, h, z, ctx, rejected, stats)
            safety = 0.9 * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + n_iter)
            if err > 1 or not math.isfinite(err):
                factor = _predict_factor(h, h_old, err, err_old) if math.isfinite(err) else MIN_FACTOR
                h *= max(MIN_FACTOR, safety * factor)
                ctx.lu_real = ctx.lu_complex = None
                rejected = True
                stats.rejected += 1
                continue
            break
        return self._accept(field, t, h, t_new, y, y_new, z, err, n_iter, rate, safety, ctx, stats)

    def _accept(
        self, field: Field, t: float, h: float, t_new: float, y: torch.Tensor, y_new: torch.Tensor,
        z: torch.Tensor, err: float, n_iter: int, rate: float | None, safety: float, ctx: _Ctx, stats: SolveStats,
    ) -> Step:  # fmt: skip
        recompute_jac = n_iter > 2 and rate is not None and rate > 1e-3
        factor = min(MAX_FACTOR, safety * _predict_factor(h, ctx.h_old, err, ctx.err_old))
        if not recompute_jac and factor < 1.2:
            factor = 1.0  # keep h, and with it the LU factors
        else:
            ctx.lu_real = ctx.lu_complex = None
        tn = y.new_tensor(t_new)
        ctx.f = field(tn, y_new)
        stats.nfe += 1
        if recompute_jac:
            ctx.jac = jacobian(field, tn, y_new)
            stats.njev += 1
        ctx.fresh_jac = recompute_jac
        ctx.h_old, ctx.err_old, ctx.h = h, err, h * factor
        step = Step(t, h, t_new, y_new, _dense(t, h, y, z), aux=z)
        ctx.prev = step
        return step

    def _factor(self, h: float, ctx: _Ctx, stats: SolveStats) -> None:
        eye = torch.eye(ctx.jac.shape[-1], dtype=ctx.jac.dtype, device=ctx.jac.device)
        ctx.lu_real = factor(RADAU5.mu_real / h * eye - ctx.jac, ctx.kind)
        mu_c = complex(RADAU5.alpha, -RADAU5.beta) / h
        cdtype = torch.complex64 if ctx.jac.dtype == torch.float32 else torch.complex128
        ctx.lu_complex = factor(mu_c * eye.to(cdtype) - ctx.jac.to(cdtype), ctx.kind)
        ctx.lu_h = h
        stats.nlu += 2

    def _solve_stages(
        self, field: Field, t: float, y: torch.Tensor, h: float, z0: torch.Tensor, ctx: _Ctx, stats: SolveStats
    ) -> tuple[torch.Tensor | None, int, float | None]:
        """Newton with a fresh Jacobian on failure; ``(None, iterations, rate)`` when even that fails."""
        while True:
            if ctx.lu_real is None or ctx.lu_h != h:
                self._factor(h, ctx, stats)
            z, n_iter, rate = _newton(field, t, y, h, z0, self.rtol, self.atol, ctx, stats)
            if z is not None or ctx.fresh_jac:
                return z, n_iter, rate
            ctx.jac = jacobian(field, y.new_tensor(t), y)
            stats.njev += 1
            ctx.fresh_jac = True
            ctx.lu_real = ctx.lu_complex = None

    def _error(
        self, field: Field, t: float, y: torch.Tensor, y_new: torch.Tensor, h: float, z: torch.Tensor,
        ctx: _Ctx, rejected: bool, stats: SolveStats,
    ) -> float:  # fmt: skip
        e = RADAU5.e
        ze = (e[0] * z[0] + e[1] * z[1] + e[2] * z[2]) / h
        err = ctx.lu_real.solve(ctx.f + ze)
        w = scale(y, y_new, self.rtol, self.atol)
        norm = rms(err, w)
        if rejected and norm > 1:
            # After a rejection, one more filtering pass removes the stiff components' overshoot.
            err = ctx.lu_real.solve(field(y.new_tensor(t), y + err) + ze)
            stats.nfe += 1
            norm = rms(err, w)
        return norm

    def replay(self, field: Field, step: Step, y: torch.Tensor, stats: SolveStats) -> Step:
        z = _reattach(field, step.t, step.h, y, step.aux, stats)
        return Step(step.t, step.h, step.t_new, y + z[2], _dense(step.t, step.h, y, z), aux=z)


def _matrices(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(RADAU5.t, dtype=dtype, device=device),
        torch.tensor(RADAU5.ti, dtype=dtype, device=device),
    )


def _mix(m: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``sum_j m_ij z_j`` over the stage axis (one small matmul; einsum costs more on tiny tensors)."""
    return (m @ z.reshape(z.shape[0], -1)).reshape(m.shape[0], *z.shape[1:])


def _newton(
    field: Field, t: float, y: torch.Tensor, h: float, z0: torch.Tensor, rtol: float, atol: float,
    ctx: _Ctx, stats: SolveStats,
) -> tuple[torch.Tensor | None, int, float | None]:  # fmt: skip
    """Simplified Newton on ``W = T^-1 Z`` (scipy's ``solve_collocation_system``, RADAU5's loop)."""
    tm, ti = _matrices(y.dtype, y.device)
    ts = [y.new_tensor(t + c * h) for c in RADAU5.c]
    mu_r, mu_c = RADAU5.mu_real / h, complex(RADAU5.alpha, -RADAU5.beta) / h
    w = _mix(ti, z0)
    z, weights = z0, atol + rtol * y.abs()
    norm_old, rate = None, None
    for k in range(NEWTON_MAXITER):
        f = torch.stack([field(ts[i], y + z[i]) for i in range(3)])
        stats.nfe += 3
        stats.newton_iters += 1
        g = _mix(ti, f)  # rows: T^-1 F; rows 1 and 2 are the real and imaginary parts' sources
        f_real = g[0] - mu_r * w[0]
        f_cplx = torch.complex(g[1], g[2]) - mu_c * torch.complex(w[1], w[2])
        dw_c = ctx.lu_complex.solve(f_cplx)
        dw = torch.stack([ctx.lu_real.solve(f_real), dw_c.real, dw_c.imag])
        norm = rms(dw, weights)  # NaN from a non-finite field value fails the tests below
        if norm_old is not None:
            rate = norm / norm_old
        if not math.isfinite(norm) or (
            rate is not None and (rate >= 1 or rate ** (NEWTON_MAXITER - k) / (1 - rate) * norm > ctx.newton_tol)
        ):
            return None, k + 1, rate
        w = w + dw
        z = _mix(tm, w)
        if norm == 0 or (rate is not None and rate / (1 - rate) * norm < ctx.newton_tol):
            return z, k + 1, rate
        norm_old = norm
    return None, NEWTON_MAXITER, rate


def _predict_factor(h: float, h_old: float | None, err: float, err_old: float | None) -> float:
    """Gustafsson's predictive step-size factor (RADAU5, scipy)."""
    if err == 0:
        return MAX_FACTOR
    mult = 1.0 if err_old is None or h_old is None else h / h_old * (err_old / err) ** 0.25
    return min(1.0, mult) * err**-0.25


def _dense(t: float, h: float, y: torch.Tensor, z: torch.Tensor) -> Any:
    """The collocation polynomial through ``y`` and the stages: ``y + Q [s, s^2, s^3]``."""
    p = torch.tensor(RADAU5.p, dtype=y.dtype, device=y.device)
    q = _mix(p.T, z)

    def at(tt: float) -> torch.Tensor:
        s = (tt - t) / h
        return y + s * q[0] + s**2 * q[1] + s**3 * q[2]

    return at


def _predict(prev: Step | None, t: float, h: float, y: torch.Tensor) -> torch.Tensor:
    """Newton's start: the last step's collocation polynomial extrapolated, or zero."""
    if prev is None:
        return torch.zeros((3, *y.shape), dtype=y.dtype, device=y.device)
    return torch.stack([prev.interp(t + c * h) for c in RADAU5.c]) - y


def _reattach(
    field: Field, t: float, h: float, y: torch.Tensor, z_star: torch.Tensor, stats: SolveStats
) -> torch.Tensor:
    """``Z*`` with implicit-function gradients: ``Z = h (A x I) F(y + Z)`` gives
    ``dZ = (I - h A x J)^-1 h (A x I) dF``. Evaluating the right side once at the detached ``Z*``
    gives ``dF``'s graph; a hook maps the incoming cotangent through ``(I - h A x J)^-T``. The value
    returned is exactly ``Z*``, so the replay reproduces the forward solve bit for bit."""
    a = torch.tensor(RADAU5.a, dtype=y.dtype, device=y.device)
    ts = [y.new_tensor(t + c * h) for c in RADAU5.c]
    f = torch.stack([field(ts[i], y + z_star[i]) for i in range(3)])
    stats.nfe += 3
    zr = h * _mix(a, f)
    if not zr.requires_grad:
        return z_star
    with torch.no_grad():
        jacs = torch.stack([jacobian(field, ts[i], y.detach() + z_star[i]) for i in range(3)])  # [3, B, n, n]
        stats.njev += 3
        b, n = y.shape
        blocks = h * torch.einsum("ij,jbkl->bikjl", a, jacs).reshape(b, 3 * n, 3 * n)
        lu = torch.linalg.lu_factor(torch.eye(3 * n, dtype=y.dtype, device=y.device) - blocks)
        stats.nlu += 1

    def hook(g: torch.Tensor | None) -> torch.Tensor | None:
        if g is None:  # an output that does not depend on this step
            return None
        flat = g.permute(1, 0, 2).reshape(b, 3 * n, 1)
        sol = torch.linalg.lu_solve(lu[0], lu[1], flat, adjoint=True)
        return sol.reshape(b, 3, n).permute(1, 0, 2)

    zr.register_hook(hook)
    return z_star + (zr - zr.detach())
