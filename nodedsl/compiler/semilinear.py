"""The semilinear split ``x' = A x + N(t, x, u)`` of a compiled field, for exponential integrators.

``A[i, j]`` is ``d rhs_i / d x_j`` at ``x = 0`` when that is an expression of the parameters only (no
time, input or net; a finite value); ``N = rhs - A x`` with the linear terms cancelled symbolically
where the row is a polynomial in the states (``D (L u)_i + u_i - u_i^3`` leaves ``-u_i^3``). Unlike the
compiler's affine layout (:mod:`nodedsl.compiler.affine`) there is no density threshold: a sparse
stiff operator (a tridiagonal Laplacian) is exactly what an ETD scheme wants to solve exactly.

``A`` is assembled from the current parameter values on each call (so a learned ``A`` carries its
gradient): numeric entries are constants, entries that are one parameter are gathered from the
parameter vector in one index, other expressions come from one compiled function.

Example:
    >>> import nodedsl, torch
    >>> src = "model M { state a = 1\\n state b = 0\\n param k = 3\\n der(a) = -k*a + b^2\\n der(b) = a - b }"
    >>> A, N = semilinear_parts(nodedsl.loads(src).model("M"))
    >>> A.tolist(), N(torch.tensor(0.0), torch.tensor([[1.0, 2.0]])).tolist()
    ([[-3.0, 0.0], [1.0, -1.0]], [[4.0, 0.0]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp
import torch
from torch import fx

from ..symbolic.functions import NetCall
from .graph import build_function


@dataclass
class _Parts:
    n: int
    base: torch.Tensor  # [n * n] numeric entries
    sym_pos: torch.Tensor  # positions in A of single-parameter entries ...
    sym_src: list  # ... and their layout entries ("k", i) / ("l", k, j)
    expr_pos: torch.Tensor  # positions in A of other parameter expressions ...
    expr_fn: fx.GraphModule | None  # ... computed by this function
    rest_fn: fx.GraphModule


def split_rows(exprs: list, xs: list, params: dict) -> tuple[list, list]:
    """``(entries, rest)``: ``exprs[i] = sum M[i, j] xs[j] + rest[i]`` with the entries ``(i, j, M[i, j])``
    whose coefficients are finite parameter expressions (see the module docstring).

    Example:
        >>> a, b, k = sp.symbols("a b k")
        >>> split_rows([k * a + sp.sin(b), a - b**3], [a, b], {k: ("k", 0)})
        ([(0, 0, k), (0, 1, 1), (1, 0, 1)], [-b + sin(b), -b**3])
    """
    index = {s: j for j, s in enumerate(xs)}
    zero = {s: sp.Integer(0) for s in xs}
    allowed = set(params)
    entries, rest = [], []
    for i, e in enumerate(exprs):
        linear = sp.Integer(0)
        for s in sorted(e.free_symbols & index.keys(), key=index.__getitem__):
            d = sp.diff(e, s)
            if d.has(NetCall, sp.Derivative, sp.Subs):
                continue
            c = d.xreplace(zero)
            if c == 0 or c.free_symbols - allowed or c.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
                continue
            entries.append((i, index[s], c))
            linear += c * s
        r = e - linear
        if linear != 0 and r.is_polynomial(*xs):
            r = sp.expand(r)
        rest.append(r)
    return entries, rest


def _parts(model) -> _Parts | None:
    system = model.system
    xs, params = list(system.states), model._layout
    entries, rest = split_rows(list(system.rhs), xs, params)
    if not entries:
        return None
    n = len(xs)
    base = torch.zeros(n * n, dtype=torch.float64)
    sym_pos, sym_src, expr_pos, exprs = [], [], [], []
    for r, c, v in entries:
        if v.is_Number:
            base[r * n + c] = float(v)
        elif v in params:
            sym_pos.append(r * n + c)
            sym_src.append(params[v])
        else:
            expr_pos.append(r * n + c)
            exprs.append(v)
    groups = dict(model._groups, z=[])
    expr_fn = build_function(exprs, groups, params, model._net_order) if exprs else None
    rest_fn = build_function(rest, groups, params, model._net_order)
    long = torch.long
    return _Parts(
        n, base, torch.tensor(sym_pos, dtype=long), sym_src, torch.tensor(expr_pos, dtype=long), expr_fn, rest_fn
    )


def _matrix(model, parts: _Parts) -> torch.Tensor:
    """``A`` from the model's current parameter values (differentiable in the learned ones)."""
    known, learned = model._pargs()
    flat = parts.base.to(dtype=known.dtype, device=known.device)
    if parts.sym_src:
        vals = torch.stack([known[s[1]] if s[0] == "k" else learned[s[1]].reshape(-1)[s[2]] for s in parts.sym_src])
        flat = flat.index_put((parts.sym_pos.to(flat.device),), vals)
    if parts.expr_fn is not None:
        x = flat.new_zeros(1, parts.n)
        vals = model._call(parts.expr_fn, 0.0, x, model.default_inputs(x)).reshape(-1)
        flat = flat.index_put((parts.expr_pos.to(flat.device),), vals)
    return flat.reshape(parts.n, parts.n)


def semilinear_parts(
    model, inputs: Callable | None = None, time: Callable | None = None
) -> tuple[torch.Tensor, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """``(A, N)`` of a compiled model: ``field(t, x, u) = x @ A^T + N(t, x)``, with the inputs
    ``inputs(t, x)`` (default: the model's defaults) at absolute time ``time(t)`` (default: ``t``).

    Raises ``NotImplementedError`` when no entry of ``A`` has constant coefficients (the ETD solver then
    names other solvers). The symbolic split and its compiled functions are cached on the model.
    """
    if "semilinear" not in model._derived:
        model._derived["semilinear"] = _parts(model)
    parts = model._derived["semilinear"]
    if parts is None:
        raise NotImplementedError(f"model '{model.name}' has no linear part with constant coefficients")

    def nonlinear(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u = model.default_inputs(x) if inputs is None else inputs(t, x)
        return model._call(parts.rest_fn, t if time is None else time(t), x, u)

    return _matrix(model, parts), nonlinear
