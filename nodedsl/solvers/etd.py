"""Exponential time differencing (ETD): ``x' = A x + N(t, x)`` with the linear part solved exactly.

For a semilinear field the stiffness usually sits in ``A`` (a diffusion operator, fast linear decay);
an explicit method must resolve it, an ETD scheme integrates ``e^{hA}`` exactly and only ``N``
numerically, so the step follows the accuracy of ``N`` (Cox & Matthews 2002; the same idea as
DPM-Solver). The schemes, in the phi functions ``phi_0(z) = e^z``, ``phi_{k+1}(z) = (phi_k(z) -
1/k!) / z``:

- order 1 (exponential Euler): ``x1 = e^{hA} x + h phi_1(hA) N(t, x)``;
- order 2 (ETD2RK): ``a = e^{hA} x + h phi_1 N_x``, ``x1 = a + h phi_2 (N(t + h, a) - N_x)``;
- order 4 (ETDRK4 of Cox and Matthews, with Kassam and Trefethen's coefficients written in phi
  functions: ``f1 = phi_1 - 3 phi_2 + 4 phi_3``, ``f2 = phi_2 - 2 phi_3``, ``f3 = 4 phi_3 - phi_2``).

The phi functions of a matrix come from one exponential of an augmented matrix (Al-Mohy and
Higham): ``exp([[M, I, 0, 0], [0, 0, I, 0], [0, 0, 0, I], [0, 0, 0, 0]])`` has ``phi_0(M) ... phi_3(M)``
in its first block row. This is stable where the scalar formulas cancel (``z -> 0``), works for any
``A`` (not only diagonal ones, which contour integrals assume) and ``torch.linalg.matrix_exp`` is
differentiable, so a learned ``A`` gets its gradient. They are computed once per step size and value
of ``A``: within a solve, and across solves while ``A`` (not requiring grad) keeps its values.

A field provides its split by ``semilinear() -> (A, N)``: compiled models do (the compiler's
semilinear split, :mod:`nodedsl.compiler.semilinear`), and :class:`Semilinear` wraps a matrix and a
callable.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> field = Semilinear(torch.tensor([[-50.0, 0.0], [0.0, -1.0]]), lambda t, x: torch.sin(t) + 0 * x)
    >>> res = solve(field, torch.ones(1, 2), torch.tensor([0.0, 1.0]), solver=make_solver("etd", order=4, step=0.1))
    >>> res.ys.shape, res.stats.nfe
    (torch.Size([2, 1, 2]), 40)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field, FixedStepSolver

_ALTERNATIVES = "use 'rk4' or 'dopri5' (non-stiff) or 'radau' / 'rodas4' (stiff) instead"


def phi_functions(m: torch.Tensor, k: int) -> list[torch.Tensor]:
    """``[phi_0(M), ..., phi_k(M)]`` of a square matrix by one exponential of an augmented matrix.

    Example:
        >>> import torch
        >>> z = torch.tensor([[-2.0]], dtype=torch.float64)
        >>> [round(p.item(), 6) for p in phi_functions(z, 2)]
        [0.135335, 0.432332, 0.283834]
    """
    n = m.shape[0]
    big = m.new_zeros(n * (k + 1), n * (k + 1))
    big[:n, :n] = m
    eye = torch.eye(n, dtype=m.dtype, device=m.device)
    for i in range(k):
        big[i * n : (i + 1) * n, (i + 1) * n : (i + 2) * n] = eye
    top = torch.linalg.matrix_exp(big)[:n]
    return [top[:, j * n : (j + 1) * n] for j in range(k + 1)]


class Semilinear(torch.nn.Module):
    """``field(t, x) = x @ A^T + N(t, x)`` with its split exposed for :class:`ETD` (``A`` may be learned).

    ``A`` is ``[n, n]`` (a tensor or ``nn.Parameter``); ``N(t, x)`` maps ``[batch, n]`` to ``[batch, n]``.

    Example:
        >>> import torch
        >>> f = Semilinear(torch.eye(2), lambda t, x: x**2)
        >>> f(torch.tensor(0.0), torch.tensor([[1.0, 2.0]])).tolist()
        [[2.0, 6.0]]
    """

    def __init__(self, A: torch.Tensor, N: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        if isinstance(A, torch.nn.Parameter):
            self.A = A
        else:
            self.register_buffer("A", A)
        self.N = N

    def semilinear(self) -> tuple[torch.Tensor, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
        """``(A, N)``: what :class:`ETD` integrates."""
        return self.A, self.N

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x @ self.A.T + self.N(t, x)


def _split(field: Field) -> tuple[torch.Tensor, Callable]:
    """The field's ``(A, N)``, or ``SolverError`` naming other solvers when it has no usable linear part."""
    get = getattr(field, "semilinear", None)
    split = None
    if get is not None:
        try:
            split = get()
        except NotImplementedError:
            split = None
    if split is None:
        raise SolverError(
            "solver 'etd' needs a semilinear field x' = A x + N(x, t) with a linear part A of constant "
            f"(parameter-only) coefficients; this field has none; {_ALTERNATIVES}",
            option="solver",
        )
    A, N = split
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise SolverError(f"solver 'etd': A must be a square matrix, got shape {list(A.shape)}", option="solver")
    if not bool((A != 0).any()):
        raise SolverError(
            f"solver 'etd': the field's linear part is zero (A == 0), so there is nothing to solve exactly; "
            f"{_ALTERNATIVES}",
            option="solver",
        )
    return A, N


class _Split:
    """One solve's ``A``, ``N`` and coefficient matrices by step size (transposed: states are rows)."""

    def __init__(self, A: torch.Tensor, N: Callable, coefficients: Callable[[torch.Tensor, float], tuple]) -> None:
        self.A, self.N = A, N
        self._make = coefficients
        self._by_h: dict[float, tuple] = {}

    def at(self, h: float) -> tuple:
        key = float(f"{h:.13g}")  # the same step up to round-off of the step plan
        if key not in self._by_h:
            self._by_h[key] = self._make(self.A, h)
        return self._by_h[key]


class ETD(FixedStepSolver):
    """Exponential time differencing of order 1, 2 or 4 (fixed step), for fields with ``semilinear()``."""

    def __init__(self, order: int, step: float) -> None:
        super().__init__(step)
        self.name = "etd"
        self.order = order
        self.options = {"order": order, "step": step}
        self.nodes = {1: (0.0,), 2: (0.0, 1.0), 4: (0.0, 0.5, 1.0)}[order]
        self.nfe_per_step = {1: 1, 2: 2, 4: 4}[order]
        self._cache: tuple[torch.Tensor, dict[float, tuple]] | None = None  # (A, coefficients by h)

    def _coefficients(self, A: torch.Tensor, h: float) -> tuple:
        """The step's matrices, transposed (``x @ E`` is ``e^{hA} x`` for row states)."""
        if self.order == 4:
            p0, p1, p2, p3 = phi_functions(h * A, 3)
            q0, q1 = phi_functions((h / 2) * A, 1)
            f1, f2, f3 = p1 - 3 * p2 + 4 * p3, p2 - 2 * p3, 4 * p3 - p2
            return tuple(m.T for m in (p0, h * f1, (2 * h) * f2, h * f3, q0, (h / 2) * q1))
        phis = phi_functions(h * A, self.order)
        return tuple(m.T if j == 0 else (h * m).T for j, m in enumerate(phis))

    def _shared(self, A: torch.Tensor, h: float) -> tuple:
        """Coefficients reused across solves while ``A`` (not requiring grad) keeps its values."""
        if A.requires_grad:
            return self._coefficients(A, h)
        cache = self._cache
        if cache is None or cache[0].shape != A.shape or cache[0].dtype != A.dtype or not torch.equal(cache[0], A):
            cache = self._cache = (A.detach().clone(), {})
        if h not in cache[1]:
            cache[1][h] = self._coefficients(A, h)
        return cache[1][h]

    def start(self, field: Field, x0: torch.Tensor, stats: Any) -> _Split:
        A, N = _split(field)
        if A.shape[0] != x0.shape[-1]:
            raise SolverError(
                f"solver 'etd': the linear part is {A.shape[0]} x {A.shape[0]} but the state has "
                f"{x0.shape[-1]} components",
                option="solver",
            )
        return _Split(A.to(dtype=x0.dtype, device=x0.device), N, self._shared)

    def step(
        self, field: Field, ts: tuple[torch.Tensor, ...], x: torch.Tensor, h: float, carry: _Split
    ) -> tuple[torch.Tensor, _Split]:
        N, c = carry.N, carry.at(h)
        nx = N(ts[0], x)
        if self.order == 1:
            return x @ c[0] + nx @ c[1], carry
        if self.order == 2:
            a = x @ c[0] + nx @ c[1]
            return a + (N(ts[1], a) - nx) @ c[2], carry
        e, f1, f2, f3, e2, q = c
        xe2 = x @ e2
        a = xe2 + nx @ q
        na = N(ts[1], a)
        b = xe2 + na @ q
        nb = N(ts[1], b)
        cc = a @ e2 + (2 * nb - nx) @ q
        nc = N(ts[2], cc)
        return x @ e + nx @ f1 + (na + nb) @ f2 + nc @ f3, carry


def stiffness_ratio(A: torch.Tensor, step: float) -> float:
    """``step * max |eigenvalue of A|``: how far past an explicit method's stability limit ETD steps.

    Example:
        >>> import torch
        >>> stiffness_ratio(torch.diag(torch.tensor([-1.0, -400.0])), 0.01)
        4.0
    """
    return float(step * torch.linalg.eigvals(A.detach().double()).abs().max()) if A.numel() else math.nan
