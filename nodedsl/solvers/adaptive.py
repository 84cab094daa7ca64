"""Adaptive-step methods delegated to ``torchdiffeq.odeint`` by name.

We do not reimplement error control; we wrap the field in a counting module
so ``stats`` reports real work (accepted/rejected steps come from
torchdiffeq's step callbacks).

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> res = solve(lambda t, x: -x, torch.ones(1, 1, dtype=torch.float64),
    ...             torch.tensor([0.0, 1.0], dtype=torch.float64), solver=make_solver("dopri5", rtol=1e-8, atol=1e-10))
    >>> abs(res.ys[-1].item() - 0.36787944117144233) < 1e-8, res.stats.steps > 0
    (True, True)
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field, Solver
from .result import SolveStats
from .stiffness import StiffnessMonitor


class _Counting(torch.nn.Module):
    """Counts calls and steps; a Module so odeint_adjoint finds the field's parameters through it."""

    def __init__(self, field: Field, monitor: StiffnessMonitor | None = None) -> None:
        super().__init__()
        self.field = field  # registered as a submodule when it is an nn.Module
        self.nfe = 0
        self.accepted = 0
        self.rejected = 0
        self.monitor = monitor

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.nfe += 1
        return self.field(t, x)

    def callback_accept_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.accepted += 1
        if self.monitor is not None:
            self.monitor.check(self.field, self.accepted, t0, y0, dt)

    def callback_reject_step(self, t0: Any, y0: Any, dt: Any) -> None:
        self.rejected += 1


class Adaptive(Solver):
    """``dopri5``, ``bosh3``, ``adaptive_heun``, ``dopri8``: torchdiffeq's error-controlled RK pairs."""

    supports_adjoint = True

    def __init__(
        self,
        method: str,
        order: int,
        *,
        rtol: float,
        atol: float,
        max_steps: int,
        first_step: float | None,
        stiff_check: bool = True,
    ) -> None:
        self.name = method
        self.order = order
        self.options = {
            "rtol": rtol,
            "atol": atol,
            "max_steps": max_steps,
            "first_step": first_step,
            "stiff_check": stiff_check,
        }

    def _run(self, odeint: Any, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        monitor = StiffnessMonitor(self.name, float(t[0]), float(t[-1])) if self.options["stiff_check"] else None
        counting = _Counting(field, monitor)
        opts: dict[str, Any] = {"max_num_steps": self.options["max_steps"]}
        if self.options["first_step"] is not None:
            opts["first_step"] = self.options["first_step"]
        try:
            ys = odeint(
                counting, x0, t, rtol=self.options["rtol"], atol=self.options["atol"], method=self.name, options=opts
            )
        except AssertionError as exc:
            # torchdiffeq signals its step limit and step-size underflow with assert.
            if "max_num_steps" in str(exc):
                raise SolverError(
                    f"{self.name}: {exc}; loosen rtol/atol or raise max_steps", option="max_steps"
                ) from exc
            raise SolverError(
                f"{self.name}: {exc} (the solution is probably diverging or the problem stiff; try an implicit solver)"
            ) from exc
        # Snapshot now: an adjoint backward pass calls the counter again later.
        stats.nfe += counting.nfe
        stats.steps += counting.accepted
        stats.rejected += counting.rejected
        return ys

    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        from torchdiffeq import odeint

        return self._run(odeint, field, x0, t, stats)

    def integrate_adjoint(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        from torchdiffeq import odeint_adjoint

        return self._run(odeint_adjoint, field, x0, t, stats)
