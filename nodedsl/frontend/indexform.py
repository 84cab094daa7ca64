"""Index forms, written once and expanded before checking: comprehensions and per-element equations.

* ``[expr for i in a..b]`` (bounds inclusive, constant expressions of numbers and parameters) becomes
  the vector literal ``[expr(a), ..., expr(b)]``, ``i`` replaced by each integer;
* ``der(u[i]) = expr for i in a..b`` and single rows ``der(u[k]) = expr`` of one vector state become
  one ``der(u) = [row 0, ..., row n-1]``, every row given exactly once.

The expansion is a rewrite of the AST (every stage after the checker sees plain literals), so sizes,
lowering, compiling, Taylor coefficients and derivatives need nothing new; a model of N cells has N
rows in its graph. Bounds use the model's own parameter values (a sub-model's overrides do not
resize it: state sizes are literal numbers anyway).

Example:
    >>> from nodedsl.core.diagnostics import Collector
    >>> from nodedsl.frontend.parse import parse_source
    >>> m = parse_source('''model M {
    ...   param N = 3
    ...   state u[3] = [1, 2, 3]
    ...   der(u[0]) = 0
    ...   der(u[i]) = u[i - 1] - u[i] for i in 1..N-1
    ... }''').models[0]
    >>> out = expand_model(m, {"N": 3.0}, Collector())
    >>> [type(d).__name__ for d in out.body], len(out.body[-1].expr.items)
    (['Param', 'State', 'Der'], 3)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..core.diagnostics import Collector, Span
from . import ast
from .shapes import constant_value

__all__ = ["MAX_ROWS", "expand_model", "needs_expansion"]

MAX_ROWS = 100_000  # rows one comprehension or index form may expand to


def _int_bound(e: ast.Expr, env: dict, d: Collector, what: str) -> int | None:
    v = constant_value(e, env)
    if not isinstance(v, (int, float)) or v != v or float(v) != int(v):
        d.error("not-constant", f"{what} must be a constant integer (numbers and parameters)", e.span)
        return None
    return int(v)


def _range(low: ast.Expr, high: ast.Expr, env: dict, d: Collector, span: Span) -> range | None:
    a, b = _int_bound(low, env, d, "a range bound"), _int_bound(high, env, d, "a range bound")
    if a is None or b is None:
        return None
    if b < a:
        d.error("bad-index-form", f"the range {a}..{b} is empty (bounds are inclusive: low <= high)", span)
        return None
    if b - a + 1 > MAX_ROWS:
        d.error("too-large", f"the range {a}..{b} has {b - a + 1} rows, more than {MAX_ROWS}", span)
        return None
    return range(a, b + 1)


def _substitute(node: Any, var: str, k: int) -> Any:
    """``node`` with the name ``var`` replaced by the number ``k`` (an inner loop on ``var`` shadows)."""
    if isinstance(node, ast.Name) and node.parts == (var,):
        return ast.Num(float(k), str(k), node.span)
    if isinstance(node, ast.Comprehension) and node.var == var:
        return dataclasses.replace(node, low=_substitute(node.low, var, k), high=_substitute(node.high, var, k))
    return _map_children(node, lambda c: _substitute(c, var, k))


def _map_children(node: Any, fn: Callable[[Any], Any]) -> Any:
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return node
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            new = tuple(fn(v) for v in value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, Span):
            new = fn(value)
        else:
            continue
        if new is not value and new != value:
            changes[f.name] = new
    return dataclasses.replace(node, **changes) if changes else node


def _expand(node: Any, env: dict, d: Collector) -> Any:
    """Every comprehension inside ``node`` (innermost first) made a vector literal."""
    node = _map_children(node, lambda c: _expand(c, env, d))
    if isinstance(node, ast.Comprehension):
        rows = _range(node.low, node.high, env, d, node.span)
        if rows is None:  # reported: a scalar stands in (it broadcasts, so no size error follows)
            return ast.Num(0.0, "0", node.span)
        return ast.Array(tuple(_expand(_substitute(node.expr, node.var, k), env, d) for k in rows), node.span)
    return node


def _state_size(model: ast.Model, name: str) -> int | None:
    from .model_info import value_shape

    for st in model.decls(ast.State):
        if st.name == name:
            shape = value_shape(st)
            return shape[0] if len(shape) == 1 else None
    return None


def _rows_of(decl: ast.Der, env: dict, d: Collector) -> list[tuple[int, ast.Expr]]:
    if decl.element is not None:
        return [(decl.element, decl.expr)]
    assert decl.index is not None and decl.low is not None and decl.high is not None
    rows = _range(decl.low, decl.high, env, d, decl.span)
    return [] if rows is None else [(k, _substitute(decl.expr, decl.index, k)) for k in rows]


def needs_expansion(model: ast.Model, text: str | None) -> bool:
    """Whether :func:`expand_model` has anything to do: a row-wise ``der``, or a ``..`` range in the
    model's source text (every comprehension and index form has one). The walk of every node costs
    more than the check of a 1,000-sub-model file, so it runs only then."""
    if any(isinstance(d, ast.Der) and (d.index is not None or d.element is not None) for d in model.body):
        return True
    span = model.span
    if text is None or not span.line or not span.end_line:
        return True
    lines = text.split("\n")[span.line - 1 : span.end_line]
    return any(".." in line for line in lines)


def expand_model(model: ast.Model, env: dict, d: Collector) -> ast.Model:
    """``model`` with its comprehensions and per-element ``der`` equations expanded (see the module)."""
    body: list[Any] = []
    rows: dict[str, dict[int, ast.Expr]] = {}
    first: dict[str, ast.Der] = {}
    for decl in model.body:
        decl = _expand(decl, env, d)
        if not isinstance(decl, ast.Der) or (decl.index is None and decl.element is None):
            body.append(decl)
            continue
        if decl.state not in first:
            first[decl.state] = decl
            body.append(decl)  # replaced below, in source position
        got = rows.setdefault(decl.state, {})
        for k, expr in _rows_of(decl, env, d):
            if k in got:
                d.error("duplicate-der", f"der({decl.state}[{k}]) is given twice", decl.span)
            got[k] = expr
    for state, head in first.items():
        n = _state_size(model, state)
        got = rows[state]
        if n is None:
            if any(st.name == state for st in model.decls(ast.State)):  # else: the checker says it is unknown
                d.error("bad-index-form", f"der({state}[...]) needs '{state}' to be a vector state", head.span)
            body[body.index(head)] = ast.Der(state, ast.Num(0.0, "0", head.span), head.span)
            continue
        outside = sorted(k for k in got if not 0 <= k < n)
        missing = [k for k in range(n) if k not in got]
        whole = ast.Der(state, ast.Array(tuple(got.get(k, ast.Num(0.0)) for k in range(n)), head.span), head.span)
        if outside:
            d.error("index-out-of-range", f"der({state}[{outside[0]}]): '{state}' has rows 0..{n - 1}", head.span)
        elif missing:
            shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
            d.error("bad-index-form", f"der({state}[k]) is not given for k = {shown}", head.span)
        if outside or missing:  # reported: a scalar zero stands in (no size error follows)
            whole = ast.Der(state, ast.Num(0.0, "0", head.span), head.span)
        body[body.index(head)] = whole
    return dataclasses.replace(model, body=tuple(body))
