"""``solve``: the entry point, with argument checks and the three gradient modes.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver
    >>> t = torch.linspace(0, 1, 5)
    >>> res = solve(lambda t, x: -x, torch.ones(2, 3), t, solver=make_solver("midpoint", step=0.1),
    ...             gradient=("checkpoint", 2))
    >>> res.ys.shape, res.stats.steps
    (torch.Size([5, 2, 3]), 12)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from ..core.errors import SolverError
from .base import Field, Solver
from .base import check_inputs as _check_inputs
from .result import SolveResult, SolveStats


@dataclass(frozen=True, slots=True)
class Gradient:
    """How gradients flow: ``backprop`` (through every op), ``adjoint`` or ``checkpoint`` over ``segments``."""

    mode: str = "backprop"
    segments: int = 1

    @staticmethod
    def parse(spec: Any) -> Gradient:
        """Accept ``"backprop"``, ``"adjoint"``, ``("checkpoint", k)`` or a ``Gradient``.

        Example:
            >>> Gradient.parse(("checkpoint", 4))
            Gradient(mode='checkpoint', segments=4)
        """
        if isinstance(spec, Gradient):
            grad = spec
        elif spec in ("backprop", "adjoint"):
            grad = Gradient(spec)
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and spec[0] == "checkpoint":
            grad = Gradient("checkpoint", spec[1])
        else:
            raise SolverError(
                f"gradient must be 'backprop', 'adjoint' or ('checkpoint', k), got {spec!r}", option="gradient"
            )
        if grad.mode not in ("backprop", "adjoint", "checkpoint"):
            raise SolverError(f"unknown gradient mode {grad.mode!r}", option="gradient")
        if not isinstance(grad.segments, int) or isinstance(grad.segments, bool) or grad.segments < 1:
            raise SolverError(f"checkpoint segments must be an int >= 1, got {grad.segments!r}", option="gradient")
        return grad


def solve(
    field: Field, x0: torch.Tensor, t: torch.Tensor, *, solver: Solver | str, gradient: Any = "backprop"
) -> SolveResult:
    """Integrate ``dx/dt = field(t, x)`` from ``x0`` at ``t[0]``; ``ys[i]`` is the state at ``t[i]``.

    ``gradient``: ``"backprop"`` differentiates through the solver's operations;
    ``"adjoint"`` solves the adjoint ODE backwards (torchdiffeq; explicit RK
    and adaptive methods; field must be an ``nn.Module``);
    ``("checkpoint", k)`` splits the outputs into ``k`` segments and recomputes
    each during backward (memory ~ one segment).

    A field with a non-empty ``events`` attribute (a model with ``when`` blocks) is integrated by
    :func:`~nodedsl.solvers.events.solve_events`; the result lists the events that fired.

    Example:
        >>> import torch
        >>> from nodedsl.solvers import make_solver
        >>> res = solve(lambda t, x: -x, torch.ones(1, 1), torch.tensor([0.0, 0.5, 1.0]),
        ...             solver=make_solver("rk4", step=0.1))
        >>> res.ys.shape, res.stats.steps, res.stats.nfe
        (torch.Size([3, 1, 1]), 10, 40)
    """
    if isinstance(solver, str):
        from .registry import make_solver

        solver = make_solver(solver)
    t = _check_inputs(x0, t)
    grad = Gradient.parse(gradient)
    events = getattr(field, "events", None)
    if events:
        return _with_events(field, x0, t, solver, grad, events)
    stats = SolveStats()
    name = getattr(solver, "name", type(solver).__name__)
    if len(t) == 1:
        return SolveResult(x0.unsqueeze(0), t, stats, name)
    if grad.mode == "adjoint":
        if not solver.supports_adjoint:
            raise SolverError(
                f"gradient='adjoint' is available for explicit Runge-Kutta and adaptive solvers, "
                f"not '{name}'; use 'backprop' or ('checkpoint', k)",
                option="gradient",
            )
        if not isinstance(field, torch.nn.Module):
            raise SolverError(
                "gradient='adjoint' needs the field to be a torch.nn.Module (its parameters are "
                "what the adjoint differentiates)",
                option="gradient",
            )
        ys = solver.integrate_adjoint(field, x0, t, stats)
    elif grad.mode == "checkpoint" and torch.is_grad_enabled():
        ys = _checkpointed(solver, field, x0, t, grad.segments, stats)
    else:
        ys = solver.integrate(field, x0, t, stats)
    return SolveResult(ys, t, stats, name)


def _with_events(
    field: Field, x0: torch.Tensor, t: torch.Tensor, solver: Solver, grad: Gradient, events
) -> SolveResult:
    """A field with ``when`` blocks: :func:`~nodedsl.solvers.events.solve_events`, gradients by backprop."""
    from .events import solve_events

    if grad.mode == "adjoint":
        raise SolverError(
            "gradient='adjoint' is not available for a model with events (when blocks); use 'backprop'",
            option="gradient",
        )
    res = solve_events(field, x0, t, events=list(events), solver=solver)
    return SolveResult(res.ys, t, res.stats, res.solver, res.events)


def _checkpointed(
    solver: Solver, field: Field, x0: torch.Tensor, t: torch.Tensor, segments: int, stats: SolveStats
) -> torch.Tensor:
    intervals = len(t) - 1
    k = min(segments, intervals)
    bounds = [round(i * intervals / k) for i in range(k + 1)]
    parts = [x0.unsqueeze(0)]
    x = x0
    for a, b in zip(bounds, bounds[1:]):
        # Fresh counters per segment, merged right away: the recomputation in
        # backward runs the segment again and must not count twice.
        seg_stats = SolveStats()
        ys = checkpoint(solver.integrate, field, x, t[a : b + 1], seg_stats, use_reentrant=False)
        stats.add(seg_stats)
        parts.append(ys[1:])
        x = ys[-1]
    return torch.cat(parts)
