"""Continuous normalizing flows (``objective = density``): densities of samples by the instantaneous
change of variables of a model ``der(z) = f(z, t)``.

A data point ``x`` is carried forward from ``t = 0`` to ``t = T`` (``time``) by the flow, ``z(0) = x``,
and ``d/dt log|det dz(t)/dx| = tr(df/dz)``, so

    log p(x) = log N(z(T); 0, I) + integral_0^T tr(df/dz)(z(t), t) dt.

Both are integrated together by classical RK4 with ``steps`` steps. The trace is exact (one backward
pass per state: the diagonal of the Jacobian) or Hutchinson's estimate ``E[e^T (df/dz) e]`` with
Rademacher probes ``e`` drawn from a seeded generator (the same probes along one integration, as in
FFJORD). Sampling runs the flow backwards: ``z(T) ~ N(0, I)``, integrated from ``T`` to 0.

Example (a linear flow ``der(z) = -z``: ``z(T) = e^-T x``, log-det ``-n T``):
    >>> import math, torch
    >>> from nodedsl.frontend.config.methods import Density
    >>> class Linear(torch.nn.Module):
    ...     input_names = ()
    ...     state_names = ("a",)
    ...     def field(self, t, z, u): return -z
    >>> x = torch.tensor([[0.5]], dtype=torch.float64)
    >>> lp = log_likelihood(Linear(), x, Density(kind="density", steps=40))
    >>> zT = 0.5 * math.exp(-1.0)
    >>> round(float(lp), 6) == round(-0.5 * zT**2 - 0.5 * math.log(2 * math.pi) - 1.0, 6)
    True
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span

__all__ = ["load_points", "log_likelihood", "sample", "trace_mode"]


def trace_mode(spec, n: int) -> str:
    """``exact`` or ``hutchinson`` for ``n`` states (``auto``: exact up to ``spec.exact_up_to``)."""
    if spec.trace != "auto":
        return spec.trace
    return "exact" if n <= spec.exact_up_to else "hutchinson"


def load_points(path: str | Path, state_names, dtype=torch.float64) -> torch.Tensor:
    """``[N, n]`` points of a CSV whose columns are named after the states (other columns: an error)."""
    from ..io.tables import read_columns, table_error

    cols = read_columns(path)
    missing = [s for s in state_names if s not in cols]
    extra = [c for c in cols if c not in state_names]
    if missing or extra:
        what = f"no column for state(s) {', '.join(missing)}" if missing else f"unknown column(s) {', '.join(extra)}"
        raise NodeDslError(
            [
                table_error(
                    path,
                    f"density data: {what}",
                    1,
                    1,
                    f"a density's data has one column per state: {', '.join(state_names)}",
                )
            ]
        )
    pts = torch.tensor([list(cols[s]) for s in state_names], dtype=dtype).T.contiguous()
    if pts.shape[0] < 2:
        raise NodeDslError([table_error(path, "density data: need at least 2 points", 0)])
    return pts


def _inputs(model, b: int, dtype) -> torch.Tensor:
    if len(getattr(model, "input_names", ())):
        raise NodeDslError(
            [Diagnostic("bad-value", "objective = density needs a model without inputs", Span("<model>", 0, 0))]
        )
    return torch.zeros(b, 0, dtype=dtype)


def _field_trace(model, t, z, u, mode: str, probes, create_graph: bool):
    """``f(z, t)`` and ``tr(df/dz)`` ``[B]`` (exact or Hutchinson with the given probes)."""
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.detach().requires_grad_(True)
        f = model.field(t, z, u)
        if mode == "exact":
            tr = z.new_zeros(z.shape[0])
            for i in range(z.shape[1]):
                (g,) = torch.autograd.grad(f[:, i].sum(), z, create_graph=create_graph, retain_graph=True)
                tr = tr + g[:, i]
        else:
            tr = z.new_zeros(z.shape[0])
            for e in probes:
                (g,) = torch.autograd.grad((f * e).sum(), z, create_graph=create_graph, retain_graph=True)
                tr = tr + (g * e).sum(-1)
            tr = tr / len(probes)
    if not create_graph:
        f, tr = f.detach(), tr.detach()
    return f, tr


def log_likelihood(model, x: torch.Tensor, spec, gen: torch.Generator | None = None, train: bool = False):
    """``log p(x)`` ``[N]`` of points ``x [N, n]`` under the flow (differentiable when ``train``)."""
    n = x.shape[1]
    mode = trace_mode(spec, n)
    u = _inputs(model, x.shape[0], x.dtype)
    probes = None
    if mode == "hutchinson":
        g = gen if gen is not None else torch.Generator().manual_seed(0)
        bits = torch.randint(0, 2, (spec.probes, *x.shape), generator=g)
        probes = (2 * bits - 1).to(x.dtype)
    h = spec.time / spec.steps
    z, logdet = x, x.new_zeros(x.shape[0])
    for k in range(spec.steps):
        t = torch.tensor(k * h, dtype=x.dtype)
        k1, l1 = _field_trace(model, t, z, u, mode, probes, train)
        k2, l2 = _field_trace(model, t + h / 2, z + h / 2 * k1, u, mode, probes, train)
        k3, l3 = _field_trace(model, t + h / 2, z + h / 2 * k2, u, mode, probes, train)
        k4, l4 = _field_trace(model, t + h, z + h * k3, u, mode, probes, train)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        logdet = logdet + h / 6 * (l1 + 2 * l2 + 2 * l3 + l4)
        if not train:
            z, logdet = z.detach(), logdet.detach()
    base = -0.5 * z.pow(2).sum(-1) - 0.5 * n * math.log(2 * math.pi)
    return base + logdet


def sample(model, count: int, spec, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """``[count, n]`` samples: ``z(T) ~ N(0, I)`` carried backwards to ``t = 0`` (RK4, ``steps`` steps)."""
    n = len(model.state_names)
    g = torch.Generator().manual_seed(int(seed))
    z = torch.randn(count, n, generator=g, dtype=torch.float64).to(dtype)
    u = _inputs(model, count, dtype)
    h = -spec.time / spec.steps
    with torch.no_grad():
        for k in range(spec.steps):
            t = torch.tensor(spec.time + k * h, dtype=dtype)
            k1 = model.field(t, z, u)
            k2 = model.field(t + h / 2, z + h / 2 * k1, u)
            k3 = model.field(t + h / 2, z + h / 2 * k2, u)
            k4 = model.field(t + h, z + h * k3, u)
            z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return z
