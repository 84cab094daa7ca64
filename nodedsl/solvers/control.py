"""The shared loop of the adaptive stiff solvers (``radau``, ``rodas4``): steps, outputs, gradients.

A method supplies ``begin`` (per-solve caches), ``advance`` (one accepted step, retrying rejected
ones inside) and ``replay`` (the same accepted step again, with gradients). :class:`StiffSolver`
drives them: it walks to the last output time, evaluates each step's dense output at the output
times it passes, and, when gradients are wanted, runs the recorded accepted steps a second time
with autograd on, so the backward pass never sees a rejected step, a Newton iteration or a
step-size decision (step sizes are treated as constants, as in torchdiffeq's backprop mode).

The error norm is the weighted RMS norm of stiff codes: ``sqrt(mean((e / (atol + rtol |y|))^2))``
over every component of the batch, so a component of size 1e-20 with ``atol = 1e-24`` is
controlled to its own accuracy instead of being hidden by the large ones.

Example:
    >>> import torch
    >>> y = torch.tensor([[1.0, 1e-20]], dtype=torch.float64)
    >>> rms(torch.tensor([[0.0, 1e-24]], dtype=torch.float64), scale(y, y, 1e-6, 1e-24)) > 0.5
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field, Solver
from .result import SolveStats

Interp = Callable[[float], torch.Tensor]


def scale(y: torch.Tensor, y_new: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    """Per-component weights ``atol + rtol max(|y|, |y_new|)`` of the error norm."""
    return atol + rtol * torch.maximum(y.abs(), y_new.abs())


def rms(x: torch.Tensor, weights: torch.Tensor) -> float:
    """Weighted RMS norm ``sqrt(mean((x / weights)^2))`` as a Python float (NaN stays NaN)."""
    return float(torch.sqrt(torch.mean((x / weights) ** 2)))


def initial_step(
    field: Field, t0: float, y0: torch.Tensor, f0: torch.Tensor, span: float, order: int, rtol: float, atol: float
) -> float:
    """Hairer-Wanner's starting step (Solving ODEs I, II.4): an explicit Euler probe of the scale.

    Example:
        >>> import torch
        >>> y0 = torch.ones(1, 1, dtype=torch.float64)
        >>> h = initial_step(lambda t, x: -x, 0.0, y0, -y0, 10.0, 4, 1e-6, 1e-9)
        >>> 0.0 < h < 0.1
        True
    """
    w = scale(y0, y0, rtol, atol)
    d0, d1 = rms(y0, w), rms(f0, w)
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    tt = torch.tensor(t0 + h0, dtype=y0.dtype, device=y0.device)
    d2 = rms(field(tt, y0 + h0 * f0) - f0, w) / h0
    if not math.isfinite(d2):
        return h0 * 1e-3
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
    return min(100 * h0, h1, span)


def hermite(t0: float, h: float, y0: torch.Tensor, y1: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor) -> Interp:
    """The cubic Hermite interpolant of a step (order 3; used by ``rodas4``).

    Example:
        >>> import torch
        >>> one = torch.ones(1)
        >>> float(hermite(0.0, 1.0, 0 * one, one, one, one)(0.5))
        0.5
    """

    def at(t: float) -> torch.Tensor:
        s = (t - t0) / h
        h00, h10 = (1 + 2 * s) * (1 - s) ** 2, s * (1 - s) ** 2
        h01, h11 = s * s * (3 - 2 * s), s * s * (s - 1)
        return h00 * y0 + h01 * y1 + (h10 * h) * f0 + (h11 * h) * f1

    return at


@dataclass(slots=True)
class Step:
    """One accepted step: where it starts, its size, what ``replay`` needs, and its dense output."""

    t: float
    h: float
    t_new: float
    y_new: torch.Tensor
    interp: Interp
    aux: Any = None


class StiffSolver(Solver):
    """Base of the adaptive stiff solvers: the step loop, output times, step limits and gradients."""

    def __init__(
        self,
        *,
        rtol: float,
        atol: float,
        max_steps: int,
        first_step: float | None,
        interpolate: bool = False,
        linear_solver: str = "auto",
    ) -> None:
        self.rtol = rtol
        self.atol = atol
        self.max_steps = max_steps
        self.first_step = first_step
        self.interpolate = interpolate
        self.linear_solver = linear_solver  # "auto" | "dense" | "sparse" (see linsolve.py)
        self.options: dict[str, Any] = {
            "rtol": rtol,
            "atol": atol,
            "max_steps": max_steps,
            "first_step": first_step,
            "interpolate": interpolate,
            "linear_solver": linear_solver,
        }

    # -- the method's part
    def begin(self, field: Field, t0: float, y0: torch.Tensor, span: float, stats: SolveStats) -> Any:
        raise NotImplementedError

    def advance(self, field: Field, t: float, y: torch.Tensor, t_end: float, ctx: Any, stats: SolveStats) -> Step:
        raise NotImplementedError

    def replay(self, field: Field, step: Step, y: torch.Tensor, stats: SolveStats) -> Step:
        raise NotImplementedError

    # -- the loop
    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        times = t.tolist()
        with torch.no_grad():
            steps, ys = self._march(field, x0.detach(), times, stats)
        if not torch.is_grad_enabled():
            return ys
        # Second pass along the accepted steps, with autograd (see the module docstring).
        outs, k, y = [x0], 1, x0
        for step in steps:
            step = self.replay(field, step, y, stats)
            k = _collect(times, k, step, outs)
            y = step.y_new
        return torch.stack(outs)

    def _march(
        self, field: Field, x0: torch.Tensor, times: list[float], stats: SolveStats
    ) -> tuple[list[Step], torch.Tensor]:
        t_cur, t_end, y = times[0], times[-1], x0
        ctx = self.begin(field, t_cur, x0, t_end - t_cur, stats)
        outs, k = [x0], 1
        steps: list[Step] = []
        while k < len(times):
            if len(steps) >= self.max_steps:
                raise SolverError(
                    f"{self.name}: more than max_steps={self.max_steps} steps before t={times[-1]:.6g} "
                    f"(reached t={t_cur:.6g}); loosen rtol/atol or raise max_steps",
                    option="max_steps",
                )
            # Without interpolation every output time ends a step: outputs get the method's full order.
            stop = t_end if self.interpolate else times[k]
            proposed = ctx.h
            step = self.advance(field, t_cur, y, stop, ctx, stats)
            stats.steps += 1
            if step.t_new == stop and step.h < proposed and stop != t_end:
                ctx.h = max(ctx.h, proposed)  # a step cut short by an output time says nothing about h
            if not bool(torch.isfinite(step.y_new).all()):
                raise SolverError(f"{self.name}: the solution became non-finite at t={step.t_new:.6g}")
            steps.append(step)
            k = _collect(times, k, step, outs)
            t_cur, y = step.t_new, step.y_new
        return steps, torch.stack(outs)

    def too_small(self, t: float, h: float) -> SolverError:
        """The error for a step that shrank to round-off (Newton failures or error test failures)."""
        return SolverError(
            f"{self.name}: step size {h:.3g} at t={t:.6g} is below round-off; the problem may have a "
            f"singularity there, or the tolerances (rtol={self.rtol:g}, atol={self.atol:g}) are too tight"
        )


def _collect(times: list[float], k: int, step: Step, outs: list[torch.Tensor]) -> int:
    """Append the outputs in ``(step.t, step.t_new]``; one at the step's end is its exact value."""
    while k < len(times) and times[k] <= step.t_new:
        outs.append(step.y_new if times[k] == step.t_new else step.interp(times[k]))
        k += 1
    return k


def min_step(t: float) -> float:
    """Steps below ten ulps of ``t`` cannot move time forward reliably."""
    return 10 * math.ulp(max(abs(t), 1e-300))
