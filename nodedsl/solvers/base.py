"""Solver base classes and the one shared fixed-step integration loop.

A solver is data (its validated options plus precomputed coefficients) and a
``step`` method; :meth:`FixedStepSolver.integrate` is the only loop that
drives fixed-step methods, so the time-grid rules (hit every output time
exactly, at most ``step`` per step) live in one place.

Example:
    >>> plan = step_plan([0.0, 0.25, 1.0], 0.1)
    >>> [(n, round(h, 6)) for n, h in plan]
    [(3, 0.083333), (8, 0.09375)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..core.errors import SolverError
from .result import SolveStats

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def step_plan(times: list[float], step: float, eps: float = 0.0) -> list[tuple[int, float]]:
    """``(n_steps, h)`` for each interval: ``ceil(|dt|/step)`` equal steps of size ``dt/n``.

    The ``1e-9`` slack keeps an interval that is a multiple of ``step`` up to
    round-off (``0.3 / 0.1 = 3.0000000000000004``) from getting an extra step.
    ``eps``: the relative precision the times were stored in (:func:`time_eps`); float32 times
    (``9.95`` is ``9.94999980926...``) need a slack of their round-off, ``eps * |t| / step``, or an
    interval of exactly one step becomes two. Works for decreasing times too (torchdiffeq's adjoint
    integrates backwards).

    Example:
        >>> import torch
        >>> t = torch.linspace(0, 10, 201, dtype=torch.float32).tolist()
        >>> sum(n for n, _ in step_plan(t, 0.05)), sum(n for n, _ in step_plan(t, 0.05, time_eps(torch.float32)))
        (310, 200)
    """
    plan = []
    for a, b in zip(times, times[1:]):
        dt = b - a
        slack = 1e-9 + min(0.01, 4 * eps * max(abs(a), abs(b)) / step)
        n = max(1, math.ceil(abs(dt) / step - slack))
        plan.append((n, dt / n))
    return plan


def time_eps(dtype: torch.dtype) -> float:
    """The relative round-off of times stored in ``dtype`` (0 for float64: the planner's own precision)."""
    return 0.0 if dtype == torch.float64 else float(torch.finfo(dtype).eps)


def step_grid(times: list[float], step: float, eps: float = 0.0) -> list[float]:
    """Every step boundary of :func:`step_plan`, with the output times copied exactly."""
    grid = [times[0]]
    for (n, h), a, b in zip(step_plan(times, step, eps), times, times[1:]):
        grid.extend(a + m * h for m in range(1, n))
        grid.append(b)
    return grid


def check_inputs(x0: Any, t: Any) -> torch.Tensor:
    """``t`` as a floating tensor after checking ``x0`` (``[batch, n]``) and ``t`` (1-D, increasing)."""
    if not isinstance(x0, torch.Tensor) or x0.dim() != 2 or not x0.is_floating_point():
        raise SolverError(
            f"x0 must be a floating [batch, n] tensor, got "
            f"{tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__}"
        )
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or len(t) == 0:
        raise SolverError("t must be a non-empty 1-D tensor of output times")
    if not t.is_floating_point():
        t = t.to(x0.dtype)
    if not bool(torch.isfinite(t).all()) or (len(t) > 1 and not bool((t[1:] > t[:-1]).all())):
        raise SolverError(f"t must be finite and strictly increasing, got {t.tolist()}")
    return t


class Solver:
    """Common interface: ``integrate(field, x0, t, stats) -> ys`` with ``ys[0] is x0``.

    ``order`` is the classical convergence order (``None`` if not fixed).
    Solvers own no trainable state unless stated (see :class:`TaylorLagrange`);
    ``parameters()`` exists on every solver so a trainer can treat them alike.
    """

    name: str = "solver"
    order: int | None = None
    supports_adjoint: bool = False

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        return iter(())

    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        raise NotImplementedError

    def integrate_adjoint(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        raise NotImplementedError  # solve() checks supports_adjoint first

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in getattr(self, "options", {}).items())
        return f"{self.name}({opts})"


class FixedStepSolver(Solver):
    """A method that advances by ``step(field, ts, x, h, carry) -> (x, carry)``.

    ``nodes`` are the stage-time fractions ``c`` the step needs; the loop
    precomputes ``t + c*h`` for every step as 0-dim tensors in one batch,
    because building them inside the loop would cost a tensor op per stage.
    ``carry`` lets a method pass data to the next step (leapfrog reuses its
    last force evaluation); it starts as :meth:`start`'s value.
    """

    nodes: tuple[float, ...] = (0.0,)
    nfe_per_step: int = 1

    def __init__(self, step: float) -> None:
        self.step_size = step

    def step(
        self, field: Field, ts: tuple[torch.Tensor, ...], x: torch.Tensor, h: float, carry: Any
    ) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def start(self, field: Field, x0: torch.Tensor, stats: SolveStats) -> Any:
        """The initial ``carry``; implicit methods put ``stats`` there to count Newton work."""
        return None

    def account(self, stats: SolveStats, n_steps: int) -> None:
        """Add this method's static cost; implicit methods count Newton work as they go."""
        stats.steps += n_steps
        stats.nfe += n_steps * self.nfe_per_step

    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        times = t.tolist()  # Python floats: the plan is made in float64 whatever t's dtype
        plan = step_plan(times, self.step_size, time_eps(t.dtype))
        nodes = self.nodes
        m = len(nodes)
        flat = [a + (j + c) * h for a, (n, h) in zip(times, plan) for j in range(n) for c in nodes]
        tt = torch.tensor(flat, dtype=x0.dtype, device=x0.device).unbind(0) if flat else ()
        step = self.step
        x, carry, k = x0, self.start(field, x0, stats), 0
        ys = [x0]
        for n, h in plan:
            for _ in range(n):
                x, carry = step(field, tt[k : k + m], x, h, carry)
                k += m
            ys.append(x)
        self.account(stats, sum(n for n, _ in plan))
        return torch.stack(ys)
