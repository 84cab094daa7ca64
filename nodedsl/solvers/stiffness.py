"""Stiffness detection for the explicit adaptive methods (dopri5, bosh3, adaptive_heun, dopri8).

An explicit method on a stiff problem does not fail: its error control keeps the step at the
edge of the stability region, ``h * rho(J) ~ boundary``, so it crawls on for hours. Every
``CHECK_EVERY`` accepted steps (after ``MIN_STEPS``), :class:`StiffnessMonitor` estimates the
spectral radius ``rho`` of the Jacobian at the current state. When ``h * rho`` is at least half the
method's stability boundary on the negative real axis (so stability, not accuracy, limits ``h``) at
two checks in a row, and more than ``MIN_REMAINING`` steps of this size would still be needed, it
stops with a ``SolverError`` that names the implicit solvers. ``stiff_check = false`` turns it off.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve, SolverError
    >>> A = torch.diag(torch.tensor([-1e6, -1.0], dtype=torch.float64))
    >>> try:
    ...     solve(lambda t, x: x @ A.T, torch.ones(1, 2, dtype=torch.float64),
    ...           torch.tensor([0.0, 100.0], dtype=torch.float64), solver=make_solver("dopri5"))
    ... except SolverError as err:
    ...     print(str(err)[:43])
    dopri5: the problem is stiff near t = 0.000
"""

from __future__ import annotations

from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field
from .derivatives import jacobian

CHECK_EVERY = 50
MIN_STEPS = 200
MIN_REMAINING = 10_000
# Stability boundary of each method on the negative real axis (|R(z)| = 1 at z = -boundary).
BOUNDARY = {"dopri5": 3.3, "bosh3": 2.5, "adaptive_heun": 2.0, "dopri8": 6.0}


def spectral_radius(jac: torch.Tensor, iters: int = 30) -> float:
    """``max |eigenvalue|`` over a batch of Jacobians ``[batch, n, n]`` (power iteration for big n).

    Example:
        >>> spectral_radius(torch.tensor([[[-3.0, 0.0], [0.0, 1.0]]]))
        3.0
    """
    if jac.shape[-1] <= 256:
        return float(torch.linalg.eigvals(jac).abs().max())
    v = torch.ones(*jac.shape[:-1], 1, dtype=jac.dtype, device=jac.device)
    est = 0.0
    for _ in range(iters):
        w = jac @ v
        est = float(w.norm(dim=(-2, -1)).max() / v.norm(dim=(-2, -1)).max())
        v = w / w.norm(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
    return est


class StiffnessMonitor:
    """Called on every accepted step of a torchdiffeq solve; raises when the problem is stiff."""

    def __init__(self, method: str, t0: float, t_end: float) -> None:
        self.method = method
        self.t_end = t_end
        self.boundary = BOUNDARY.get(method, 2.0)
        self.strikes = 0

    def check(self, field: Field, accepted: int, t: Any, y: Any, dt: Any) -> None:
        """Test every ``CHECK_EVERY`` steps; raise ``SolverError`` at the second stiff verdict in a row."""
        if accepted < MIN_STEPS or accepted % CHECK_EVERY or not isinstance(y, torch.Tensor) or y.dim() != 2:
            return
        h, tt = abs(float(dt)), float(t)
        if h == 0.0 or abs(self.t_end - tt) / h < MIN_REMAINING:
            self.strikes = 0
            return
        with torch.no_grad():
            rho = spectral_radius(jacobian(field, t.detach(), y.detach()))
        if h * rho < 0.5 * self.boundary:
            self.strikes = 0
            return
        self.strikes += 1
        if self.strikes < 2:
            return
        remaining = abs(self.t_end - tt) / h
        raise SolverError(
            f"{self.method}: the problem is stiff near t = {tt:.6g}: the step h = {h:.3g} is held at the edge of "
            f"stability (h * spectral radius of the Jacobian = {h * rho:.3g}, radius {rho:.3g}), and about "
            f"{remaining:.3g} more steps would be needed to reach t = {self.t_end:.6g}; use an implicit "
            "solver: 'radau' (or 'rodas4'), e.g. --solver radau; stiff_check = false runs on anyway",
            option="solver",
        )
