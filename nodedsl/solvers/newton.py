"""Newton's method for one implicit stage ``z = ha f(t, r + z)`` of the fixed-step DIRK methods.

What stiff codes do, scaled down: convergence is judged on the Newton update in the weighted RMS
norm with weights ``atol + tol |y|`` per component, and at least one Newton step is always taken,
so a component of size 1e-16 is solved to ``atol`` instead of being accepted at its first guess.
The start is the caller's guess (the same stage of the previous step) or zero. Each update is
damped by backtracking (halving until the residual norm decreases), which keeps Newton from
jumping out of the region where the linearization holds. A failure raises ``SolverError`` saying
where and why; it never returns NaN.

Example:
    >>> import torch
    >>> class Opts: name, tol, atol, max_iter = "demo", 1e-10, 1e-30, 20
    >>> from nodedsl.solvers import SolveStats
    >>> r = torch.tensor([[1.0, 1e-20]], dtype=torch.float64)
    >>> z = newton_stage(lambda t, x: -x, torch.tensor(0.0), r, 0.5, None, Opts, SolveStats())
    >>> torch.allclose(r + z, r / 1.5, rtol=1e-12, atol=0)   # the 1e-20 component is solved too
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field
from .derivatives import jacobian
from .result import SolveStats

MAX_HALVINGS = 8


def _norm(x: torch.Tensor, w: torch.Tensor) -> float:
    return float(torch.sqrt(torch.mean((x / w) ** 2)))


def newton_stage(
    field: Field, t: torch.Tensor, r: torch.Tensor, ha: float, guess: torch.Tensor | None, opts: Any,
    stats: SolveStats,
) -> torch.Tensor:  # fmt: skip
    """Solve ``z - ha f(t, r + z) = 0`` for ``z``; ``opts`` has ``name, tol, atol, max_iter``."""
    z = torch.zeros_like(r) if guess is None else guess.clone()
    eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
    g = z - ha * field(t, r + z)
    stats.nfe += 1
    res = math.inf
    # Below a few ulps (of y or of the increment) the update is round-off and cannot shrink further.
    tol = max(opts.tol, 16 * torch.finfo(r.dtype).eps)
    for _ in range(opts.max_iter):
        if not bool(torch.isfinite(g).all()):
            break
        w = opts.atol + tol * torch.maximum(torch.maximum(r.abs(), (r + z).abs()), z.abs())
        res = _norm(g, w)
        jac = jacobian(field, t, r + z)
        stats.njev += 1
        stats.nlu += 1
        dz = -torch.linalg.solve(eye - ha * jac, g)
        stats.newton_iters += 1
        lam = 1.0
        for _ in range(MAX_HALVINGS):
            z_try = z + lam * dz
            g_try = z_try - ha * field(t, r + z_try)
            stats.nfe += 1
            res_try = _norm(g_try, w)
            if math.isfinite(res_try) and (res_try < res or res_try <= 1.0):
                break
            lam *= 0.5
        z, g = z_try, g_try
        if lam == 1.0 and _norm(dz, w) <= 1.0:
            return z
    else:
        raise SolverError(
            f"{opts.name}: Newton did not converge at t={float(t):.6g} after {opts.max_iter} iterations "
            f"(weighted residual {res:.3g}); reduce step, raise max_iter, or use an adaptive stiff solver "
            "('radau' or 'rodas4')",
            option="max_iter",
        )
    raise SolverError(
        f"{opts.name}: Newton diverged to non-finite values at t={float(t):.6g}; reduce step or use an "
        "adaptive stiff solver ('radau' or 'rodas4')",
        option="step",
    )
