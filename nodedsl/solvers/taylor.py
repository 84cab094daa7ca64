"""Taylor and Taylor-Lagrange steps (Djeumou et al., 2022, "TL-NODE").

Order-``p`` Taylor step with a learned Lagrange remainder::

    x1 = x + sum_{i=1}^{p-1} h^i/i! x^(i)(x) + h^p/p! x^(p)(xi),   xi = x + Gamma(x, h) (h f(x))

The exact remainder evaluates ``x^(p)`` at an unknown point between ``x(t)``
and ``x(t+h)``; ``Gamma`` (a small MLP owned by the solver) learns where.
``gamma="vector"``: one factor in (0, 1) per state (sigmoid output),
``Gamma * (h f)`` elementwise. ``gamma="matrix"``: an n x n matrix
``I/2 + tanh(.)/2`` (diagonal in (0, 1), off-diagonal in (-1/2, 1/2)) applied
to ``h f``: it can mix states, which a system whose fast and slow modes are
combinations of the states needs (for a linear system a constant matrix makes
the step exact, a vector in general cannot). We scale by ``h f(x)`` (the
first-order displacement) so ``xi`` stays within O(h) of ``x`` and the step
keeps order ``p`` for any bounded ``Gamma``. With ``remainder=False`` this is
the plain order-``p`` Taylor step (all terms at ``x``).

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> solver = make_solver("taylor", order=3, step=0.1, remainder=True, state_dim=1)
    >>> res = solve(lambda t, x: -x, torch.ones(4, 1), torch.tensor([0.0, 1.0]), solver=solver)
    >>> abs(res.ys[-1, 0, 0].item() - 0.3679) < 1e-3, len(list(solver.parameters())) > 0
    (True, True)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..core.errors import SolverError
from ..core.tableaus import RK4
from .base import Field, FixedStepSolver
from .derivatives import taylor_coefficients
from .explicit import ExplicitRK
from .result import SolveStats


class TaylorLagrange(torch.nn.Module, FixedStepSolver):
    """Fixed-step Taylor method of order ``order``; an ``nn.Module`` so ``Gamma`` can be trained.

    ``state_dim`` builds ``Gamma`` now (so an optimizer can be created before the
    first solve); otherwise it is built on first use with the state's dtype.

    Example:
        >>> s = TaylorLagrange(order=2, step=0.1, remainder=True, hidden=8, state_dim=3)
        >>> sum(p.numel() for p in s.parameters())  # (3+1)*8+8 + 8*3+3
        67
    """

    name = "taylor"

    def __init__(
        self, *, order: int, step: float, remainder: bool, hidden: int, state_dim: int | None, gamma: str = "vector"
    ) -> None:
        torch.nn.Module.__init__(self)
        FixedStepSolver.__init__(self, step)
        self.order = order
        self.remainder = remainder
        self.hidden = hidden
        self.matrix = gamma == "matrix"
        self.options = {
            "order": order,
            "step": step,
            "remainder": remainder,
            "hidden": hidden,
            "state_dim": state_dim,
            "gamma": gamma,
        }
        self.nodes = (0.0, 0.5) if remainder else (0.0,)
        self.nfe_per_step = (max(order - 1, 1) + order) if remainder else order
        self.gamma: torch.nn.Module | None = None
        if remainder and state_dim is not None:
            self.build(state_dim)

    def build(self, state_dim: int, dtype: torch.dtype | None = None, device: Any = None) -> None:
        """Create ``Gamma``: ``[x, h] -> (0, 1)^n`` (or an n x n matrix), initialised to 1/2 (to I/2):
        the plain midpoint."""
        out = state_dim * state_dim if self.matrix else state_dim
        net = torch.nn.Sequential(
            torch.nn.Linear(state_dim + 1, self.hidden), torch.nn.Tanh(), torch.nn.Linear(self.hidden, out)
        )
        torch.nn.init.zeros_(net[2].weight)
        torch.nn.init.zeros_(net[2].bias)
        self.gamma = net.to(dtype=dtype, device=device)
        self._state_dim = state_dim

    def _ready(self, x: torch.Tensor) -> None:
        if not self.remainder:
            return
        if self.gamma is None:
            self.build(x.shape[-1], x.dtype, x.device)
        elif self._state_dim != x.shape[-1]:
            raise SolverError(
                f"taylor: Gamma was built for state_dim={self._state_dim}, the state has {x.shape[-1]} components",
                option="state_dim",
            )
        first = next(self.gamma.parameters())
        if first.dtype != x.dtype or first.device != x.device:
            self.gamma.to(dtype=x.dtype, device=x.device)  # in place: optimizers keep their references

    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        self._ready(x0)
        return FixedStepSolver.integrate(self, field, x0, t, stats)

    def step(
        self, field: Field, ts: tuple[torch.Tensor, ...], x: torch.Tensor, h: float, carry: Any
    ) -> tuple[torch.Tensor, Any]:
        p = self.order
        x0 = x
        if not self.remainder:
            for i, c in enumerate(taylor_coefficients(field, ts[0], x0, p), 1):
                x = torch.add(x, c, alpha=h**i / math.factorial(i))
            return x, None
        lower = taylor_coefficients(field, ts[0], x0, max(p - 1, 1))
        for i, c in enumerate(lower[: p - 1], 1):
            x = torch.add(x, c, alpha=h**i / math.factorial(i))
        raw = self.gamma(torch.cat((x0, torch.full_like(x0[:, :1], h)), 1))
        if self.matrix:
            n = x0.shape[-1]
            gamma = 0.5 * torch.tanh(raw.reshape(-1, n, n)) + 0.5 * torch.eye(n, dtype=x0.dtype, device=x0.device)
            xi = x0 + h * (gamma @ lower[0].unsqueeze(-1)).squeeze(-1)
        else:
            xi = torch.addcmul(x0, torch.sigmoid(raw), lower[0], value=h)
        top = taylor_coefficients(field, ts[1], xi, p)[-1]
        return torch.add(x, top, alpha=h**p / math.factorial(p)), None

    def remainder_loss(
        self, field: Field, x: torch.Tensor, h: float | None = None, t: float = 0.0, *, substeps: int = 16
    ) -> torch.Tensor:
        """Mean squared error of one Taylor(-Lagrange) step of size ``h`` against a reference step.

        ``h`` defaults to the solver's step, which is the one to fit: ``Gamma`` takes ``h`` as an
        input, and one fitted at a data interval four times the step (the TL-NODE benchmark's earlier
        mistake) left the stiff system's one-step solver error at 6e-6 instead of 1e-8 (relative,
        squared) after 3000 training steps.

        The reference is RK4 with ``substeps`` substeps under ``no_grad`` (local error
        ``O((h/substeps)^5)``, far below the Taylor step's). ``x`` is detached, so
        only ``Gamma`` and the field receive gradients; step only ``Gamma``'s
        optimizer with it (see docs/solvers.md for the schedule).

        Example:
            >>> import torch
            >>> s = TaylorLagrange(order=2, step=0.5, remainder=True, hidden=8, state_dim=1)
            >>> s.remainder_loss(lambda t, x: -x, torch.ones(3, 1)).item() < 1e-2   # h = the step, 0.5
            True
        """
        x = x.detach()
        self._ready(x)
        h = self.step_size if h is None else float(h)
        ts = torch.tensor([t, t + 0.5 * h], dtype=x.dtype, device=x.device).unbind(0)
        pred, _ = self.step(field, ts, x, h, None)
        with torch.no_grad():
            span = torch.tensor([t, t + h], dtype=x.dtype, device=x.device)
            ref = ExplicitRK(RK4, h / substeps).integrate(field, x, span, SolveStats())[-1]
        return (pred - ref).pow(2).sum(-1).mean()
