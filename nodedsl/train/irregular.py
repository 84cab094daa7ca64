"""Windows on their own time grids, integrated together: irregular data without one solve per window.

Windows cut from trajectories sampled at their own times share no time grid, so the grouping of
:func:`nodedsl.train.rollout.time_groups` would give one group, hence one batch of one, per window: a
thousand solves of batch 1 per epoch. With a fixed-step explicit Runge-Kutta method every window is
instead stepped *in its own time*, all rows at once: interval ``k`` of every window is split into the
same number of substeps ``ceil(max_r dt_rk / h)``, each row advancing by its own ``dt_rk / n`` (never
longer than the solver's step ``h``), with inputs interpolated linearly inside the interval as
:class:`~nodedsl.train.rollout.WindowField` does. Other solvers (adaptive, implicit, Taylor,
symplectic) or gradient modes keep the per-grid groups, which are exact too, only slower.

Example:
    >>> import torch
    >>> from nodedsl.core.tableaus import RK4
    >>> from nodedsl.solvers.explicit import ExplicitRK
    >>> class Decay(torch.nn.Module):
    ...     def field(self, t, x, u): return -x
    >>> tb = torch.tensor([[0.0, 0.3, 1.0], [0.0, 0.5, 0.7]], dtype=torch.float64)
    >>> xs = irregular_rollout(Decay(), torch.ones(2, 1, dtype=torch.float64), tb,
    ...                        torch.zeros(2, 3, 0, dtype=torch.float64), ExplicitRK(RK4, 0.01))
    >>> bool(torch.allclose(xs[..., 0], torch.exp(-tb), atol=1e-9))
    True
"""

from __future__ import annotations

import math

import torch

from ..solvers.explicit import ExplicitRK

__all__ = ["batched_grids", "irregular_rollout"]


def batched_grids(solver, model, groups: list, cfg) -> bool:
    """True when windows on several time grids can be stepped together: an explicit fixed-step
    tableau, gradients by backprop, no events, no nudging and no encoder reading a shared grid."""
    system = getattr(model, "system", None)
    return (
        len(groups) > 1
        and isinstance(solver, ExplicitRK)
        and cfg.gradient == "backprop"
        and cfg.assimilate is None
        and cfg.window_init.kind != "encoder"
        and not getattr(system, "events", None)
    )


def irregular_rollout(
    model, x0: torch.Tensor, tb: torch.Tensor, ub: torch.Tensor, solver: ExplicitRK, autonomous: bool = False
) -> torch.Tensor:
    """States ``[B, K+1, n]`` at each row's own times ``tb [B, K+1]`` from ``x0 [B, n]``; inputs
    ``ub [B, K+1, m]`` interpolated linearly between samples. Differentiable (plain autograd)."""
    dtype = x0.dtype
    times = tb.to(torch.float64)
    gaps = times[:, 1:] - times[:, :-1]  # [B, K], positive (the loader checks increasing times)
    h = float(solver.step_size)
    x, out = x0, [x0]
    for k in range(gaps.shape[1]):
        n = max(1, math.ceil(float(gaps[:, k].max()) / h - 1e-9))
        span = gaps[:, k : k + 1]
        dt = (span / n).to(dtype)
        start = times[:, k : k + 1].to(dtype)
        width = span.to(dtype)
        u0, du = ub[:, k], ub[:, k + 1] - ub[:, k]

        def field(ts: torch.Tensor, y: torch.Tensor, start=start, width=width, u0=u0, du=du) -> torch.Tensor:
            u = u0 + ((ts - start) / width) * du
            t = torch.zeros((), dtype=dtype) if autonomous else ts.reshape(-1)
            return model.field(t, y, u)

        for j in range(n):
            x = x + solver.increment(field, start + j * dt, dt, x)
        out.append(x)
    return torch.stack(out, dim=1)
