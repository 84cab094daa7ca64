"""The deterministic baseline: a Lipschitz/Gronwall tube from a bound on the Jacobian.

Between output times ``t_k`` and ``t_{k+1}`` a deviation ``delta`` from the centre trajectory obeys
``d||delta||/dt <= L ||delta||`` while ``L`` bounds the logarithmic norm ``mu(J)`` (the one-sided
Lipschitz constant; ``mu(J) <= ||J||`` in the induced norm, so this is the tighter form of the
Gronwall bound) on the segment between the centre and the perturbed state, so
``R_{k+1} = R_k exp(L (t_{k+1} - t_k))``. ``L`` must hold on the
region the tube itself sweeps, so it is found as an a-priori enclosure (as in validated integration):
guess a radius ``R*``, take ``L`` as the largest ``||J||`` over the balls ``B(c(s), R*)`` at both ends
of each solver step, and enlarge ``R*`` until ``R e^{L h} <= R*``. The Jacobian
norm over a ball is the maximum over a fixed cloud of points (boundary, interior, the axes and the
centre): exact for linear models, a dense sample otherwise (the compiler has no interval arithmetic).
Over-approximation compounds from step to step: this is the wrapping effect GoTube avoids.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver
    >>> A = torch.tensor([[-1.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    >>> r, L, _ = gronwall_tube(lambda t, x: x @ A.T, torch.tensor([1.0, 1.0], dtype=torch.float64),
    ...                         torch.linspace(0, 1, 3, dtype=torch.float64), 0.1, "2",
    ...                         make_solver("rk4", step=0.05), torch.Generator().manual_seed(0))
    >>> [round(v, 4) for v in r.tolist()], L.tolist()   # mu(A) = -1: exact, 0.1 e^{-t}
    ([0.1, 0.0607, 0.0368], [-1.0, -1.0, -1.0])
"""

from __future__ import annotations

import math
import time

import torch

from ..solvers import jacobian, solve
from .sampling import boundary_samples, interior_samples

__all__ = ["gronwall_tube", "log_norm"]

_MAX_RADIUS = 1e12  # beyond this the tube is reported as infinite


def _unit_cloud(n: int, points: int, norm: str, gen, like: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(n, dtype=like.dtype)
    cloud = [
        torch.zeros(1, n, dtype=like.dtype),
        eye,
        -eye,
        boundary_samples(n, points, 1.0, norm, gen),
        interior_samples(n, points, 1.0, norm, gen),
    ]
    return torch.cat(cloud).to(like.device)


def log_norm(jac: torch.Tensor, norm: str) -> torch.Tensor:
    """The logarithmic norm (matrix measure) ``mu(J)`` of each ``[batch, n, n]`` Jacobian: the one-sided
    Lipschitz constant, ``mu_2 = lambda_max((J + J^T) / 2)``, ``mu_inf = max_i J_ii + sum_{j != i} |J_ij|``.

    Example:
        >>> J = torch.tensor([[[-1.0, 3.0], [-3.0, -1.0]]])
        >>> log_norm(J, "2").tolist(), torch.linalg.matrix_norm(J, ord=2).tolist()
        ([-1.0], [3.1622776985168457])
    """
    if norm == "2":
        return torch.linalg.eigvalsh(0.5 * (jac + jac.transpose(1, 2)))[:, -1]
    diag = torch.diagonal(jac, dim1=1, dim2=2)
    return (diag + jac.abs().sum(dim=2) - diag.abs()).amax(dim=1)


def _norm_bound(field, ts, centers, radius: float, cloud: torch.Tensor, norm: str) -> float:
    """The largest ``mu(J)`` over ``centers[j] + radius * cloud`` at times ``ts[j]``."""
    best = -math.inf
    for tj, cj in zip(ts, centers):
        jac = jacobian(field, tj, cj + radius * cloud)
        best = max(best, float(log_norm(jac, norm).max()))
    return best


def gronwall_tube(field, x0, t, radius: float, norm: str, solver, gen, points: int = 64):
    """Radii ``[K]``, Jacobian norm bounds ``[K]`` (the largest per interval, the first repeated), stats."""
    start = time.perf_counter()
    n = x0.shape[0]
    step = float(getattr(solver, "step_size", None) or (t[1] - t[0]))
    cloud = _unit_cloud(n, points, norm, gen, x0)
    radii, bounds, evaluations = [radius], [], 0
    r = radius
    with torch.no_grad():
        for k in range(len(t) - 1):
            h = float(t[k + 1] - t[k])
            m = max(1, math.ceil(h / step - 1e-9))
            ts = torch.linspace(float(t[k]), float(t[k + 1]), m + 1, dtype=x0.dtype, device=x0.device)
            cs = solve(field, x0[None], ts, solver=solver).ys[:, 0, :]
            x0 = cs[-1]
            worst = -math.inf
            for j in range(m):  # one enclosure per solver step: short steps keep the enclosure small
                lip, r = _enclose(field, ts[j : j + 2], cs[j : j + 2], r, float(ts[j + 1] - ts[j]), cloud, norm)
                worst = max(worst, lip)
                evaluations += 1
            bounds.append(worst)
            radii.append(r)
    bounds = [bounds[0] if bounds else math.nan, *bounds]
    stats = {"cloud_points": len(cloud), "seconds": time.perf_counter() - start, "enclosures": evaluations}
    return torch.tensor(radii, dtype=x0.dtype), torch.tensor(bounds, dtype=x0.dtype), stats


def _enclose(field, ts, cs, r: float, h: float, cloud, norm: str) -> tuple[float, float]:
    """(L, R_next) with L bounding ||J|| on the balls of radius >= R_next along the interval."""
    if not math.isfinite(r):
        return math.inf, math.inf
    guess = r * 1.5
    for _ in range(40):
        lip = _norm_bound(field, ts, cs, guess, cloud, norm)
        r_next = r * math.exp(min(lip * h, 700.0))
        if max(r, r_next) <= guess:  # the deviation stays below max(r, r e^{mu h}) over the step
            return lip, r_next
        if r_next > _MAX_RADIUS:
            return lip, math.inf
        guess = r_next * 1.5
    return lip, math.inf
