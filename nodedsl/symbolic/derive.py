"""Symbolic derivatives of a lowered :class:`~nodedsl.symbolic.lower.System`: Jacobians and Taylor coefficients.

Both are built with ``sympy.diff`` on the lowered right-hand sides (never from strings), so the
compiler (:func:`nodedsl.compiler.graph.build_function`) turns them into one fused torch.fx graph, with common
subexpressions shared across all entries and levels. The solvers use them through
``CompiledModel.jacobian`` / ``CompiledModel.taylor_coefficients`` (see docs/solvers.md, "Symbolic
derivatives"); when a derivative cannot be formed here they fall back to automatic differentiation.

* :func:`jacobian_exprs`: ``d rhs_i / d x_j``. Nets' first derivatives are fine (the compiler
  evaluates them with autograd).
* :func:`taylor_exprs`: the total time derivatives ``x^(1), ..., x^(order)`` along the flow (Lie
  derivatives ``d_k = sum_j d d_{k-1}/d x_j * f_j + d d_{k-1}/d t``, inputs held constant over a
  step). ``None`` when a net's second derivative would be needed (nets only have first derivatives
  symbolically) or when the expressions grow past :data:`MAX_OPS` operations.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model M { state x = 1\\n state v = 0\\n der(x) = v\\n der(v) = -x^3 }")
    >>> sys = prog.system("M")
    >>> jacobian_exprs(sys)
    [[0, 1], [-3*x**2, 0]]
    >>> taylor_exprs(sys, 2)
    [[v, -x**3], [-x**3, -3*v*x**2]]
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import ArgumentIndexError

from .functions import NetCall
from .lower import System

__all__ = ["MAX_OPS", "jacobian_exprs", "taylor_exprs"]

MAX_OPS = 20000
"""Above this many operations (``sympy.count_ops``) :func:`taylor_exprs` gives up and returns None."""

# Results of differentiation that the compiler cannot evaluate: unevaluated derivatives (a net's
# second derivative, an unknown function), or complex parts (never produced for real symbols).
_UNEVALUATED = (sp.Derivative, sp.Subs, sp.re, sp.im, sp.arg)


def _clean(e: sp.Expr) -> sp.Expr | None:
    """``e`` in the compiler's vocabulary, with autograd's conventions at kinks; None if impossible.

    ``d sign/dx`` is ``DiracDelta``, zero wherever the derivative exists (autograd's value too);
    ``d Max/dx`` gives ``Heaviside(a - b)``, rewritten as ``(sign(a - b) + 1) / 2`` (1/2 at a tie,
    like ``torch.maximum``'s gradient).
    """
    if e.has(*_UNEVALUATED):
        return None
    if e.has(sp.DiracDelta):
        e = e.replace(lambda a: isinstance(a, sp.DiracDelta), lambda a: sp.Integer(0))
    if e.has(sp.Heaviside):
        e = e.replace(lambda a: isinstance(a, sp.Heaviside), lambda a: (sp.sign(a.args[0]) + 1) / 2)
    return e


def _second_net_derivative(e: sp.Expr, s: sp.Symbol) -> bool:
    """True if differentiating ``e`` by ``s`` needs a net's second derivative (not available)."""
    return any(call.arg >= 0 and call.has(s) for call in e.atoms(NetCall))


def _diff(e: sp.Expr, s: sp.Symbol) -> sp.Expr | None:
    if _second_net_derivative(e, s):
        return None
    try:
        d = sp.diff(e, s)
    except (ArgumentIndexError, TypeError, NotImplementedError):
        return None
    return _clean(d)


def _time_symbols(system: System) -> list[sp.Symbol]:
    """The symbols that stand for time in ``system.rhs`` (the compiler treats any symbol named ``t``
    that is not a state, input or parameter as time)."""
    taken = set(system.states) | set(system.inputs) | {s for p in system.params for s in p.symbols}
    found = set()
    for e in system.rhs:
        found |= {s for s in e.free_symbols if isinstance(s, sp.Symbol) and s.name == "t" and s not in taken}
    return sorted(found, key=sp.default_sort_key)


def jacobian_exprs(system: System) -> list[list[sp.Expr]] | None:
    """``J[i][j] = d rhs_i / d x_j`` (rows are outputs), or None if some entry cannot be formed.

    Example:
        >>> import nodedsl
        >>> s = nodedsl.loads("model M { state x = 1\\n der(x) = sin(x) }").system("M")
        >>> jacobian_exprs(s)
        [[cos(x)]]
    """
    rows = []
    for f in system.rhs:
        row = []
        for x in system.states:
            d = _diff(f, x)
            if d is None:
                return None
            row.append(d)
        rows.append(row)
    return rows


def taylor_exprs(system: System, order: int) -> list[list[sp.Expr]] | None:
    """``[x', x'', ..., x^(order)]`` as expressions of the state (and inputs, parameters, time).

    Level ``k`` is the Lie derivative of level ``k - 1`` along ``(dt, dx) = (1, f)``; inputs are
    constants (what a solver step assumes). None when a needed derivative cannot be formed (a net's
    second derivative) or when the total size exceeds :data:`MAX_OPS`.

    Example:
        >>> import nodedsl
        >>> s = nodedsl.loads("model M { state x = 1\\n param k = 2\\n der(x) = -k*x }").system("M")
        >>> taylor_exprs(s, 3)
        [[-k*x], [k**2*x], [-k**3*x]]
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    cleaned = [_clean(f) for f in system.rhs]
    level = [e for e in cleaned if e is not None]
    if len(level) != len(cleaned):
        return None
    levels = [level]
    total = sum(sp.count_ops(e) for e in level)
    if total > MAX_OPS:
        return None
    times = _time_symbols(system)
    flow = list(zip(system.states, level))
    for _ in range(order - 1):
        nxt = []
        for e in level:
            acc = sp.Integer(0)
            for x, f in flow:
                if not e.has(x):
                    continue
                d = _diff(e, x)
                if d is None:
                    return None
                acc += d * f
            for t in times:
                if not e.has(t):
                    continue
                d = _diff(e, t)
                if d is None:
                    return None
                acc += d
            nxt.append(acc)
        total += sum(sp.count_ops(e) for e in nxt)
        if total > MAX_OPS:
            return None
        levels.append(nxt)
        level = nxt
    return levels
