"""The deterministic baseline: a Lipschitz/Gronwall tube from a bound on the Jacobian's norm.

Between output times ``t_k`` and ``t_{k+1}`` a deviation ``delta`` from the centre trajectory obeys
``||delta'|| <= L ||delta||`` while ``L`` bounds ``||J||`` (the induced norm) on the segment between the
centre and the perturbed state, so ``R_{k+1} = R_k exp(L (t_{k+1} - t_k))``. ``L`` must hold on the
region the tube itself sweeps, so it is found as an a-priori enclosure (as in validated integration):
guess a radius ``R*``, take ``L`` as the largest ``||J||`` over the balls ``B(c(s), R*)`` along the
centre on the solver grid of the interval, and enlarge ``R*`` until ``R_k e^{L h} <= R*``. The Jacobian
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
    >>> [round(v, 4) for v in r.tolist()], L.tolist()   # ||A|| = 2: 0.1 e^{2t}
    ([0.1, 0.2718, 0.7389], [2.0, 2.0, 2.0])
"""

from __future__ import annotations

import math
import time

import torch

from ..solvers import jacobian, solve
from .sampling import boundary_samples, interior_samples

__all__ = ["gronwall_tube"]

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


def _norm_bound(field, ts, centers, radius: float, cloud: torch.Tensor, norm: str) -> float:
    """The largest ``||J||`` over ``centers[j] + radius * cloud`` at times ``ts[j]``."""
    ord_ = 2 if norm == "2" else math.inf
    best = 0.0
    for tj, cj in zip(ts, centers):
        jac = jacobian(field, tj, cj + radius * cloud)
        best = max(best, float(torch.linalg.matrix_norm(jac, ord=ord_).max()))
    return best


def gronwall_tube(field, x0, t, radius: float, norm: str, solver, gen, points: int = 64):
    """Radii ``[K]``, Jacobian norm bounds ``[K]`` (per interval, the first repeated) and stats."""
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
            lip, r_next = _enclose(field, ts, cs, r, h, cloud, norm)
            evaluations += 1
            bounds.append(lip)
            r = r_next
            radii.append(r)
    bounds = [bounds[0] if bounds else 0.0, *bounds]
    stats = {"cloud_points": len(cloud), "seconds": time.perf_counter() - start, "intervals": evaluations}
    return torch.tensor(radii, dtype=x0.dtype), torch.tensor(bounds, dtype=x0.dtype), stats


def _enclose(field, ts, cs, r: float, h: float, cloud, norm: str) -> tuple[float, float]:
    """(L, R_next) with L bounding ||J|| on the balls of radius >= R_next along the interval."""
    if not math.isfinite(r):
        return math.inf, math.inf
    guess = r * 1.5
    for _ in range(40):
        lip = _norm_bound(field, ts, cs, guess, cloud, norm)
        r_next = r * math.exp(min(lip * h, 700.0))
        if r_next <= guess:
            return lip, r_next
        if r_next > _MAX_RADIUS:
            return lip, math.inf
        guess = r_next * 1.5
    return lip, math.inf
