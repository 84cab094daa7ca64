"""Checks of the v2 constructs: ``when`` blocks, matrix indexing ``A[i, j]`` and slices ``u[a:b]``.

Functions take the model checker (``chk``: its ``shape``, ``d`` collector and ``info``) so the
checker's dispatch stays one line per construct.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> text = "model B { state h = 1\\n state v = 0\\n der(h) = v\\n der(v) = -9.81\\n when h { reset w = 0 } }"
    >>> _, diags = check_source(source_from_text(text, "b.node"))
    >>> [d.code for d in diags]
    ['when-not-comparison', 'reset-unknown-state']
"""

from __future__ import annotations

from typing import Any

from ..core.diagnostics import suggest
from . import ast
from .shapes import Shape, constant_value, fmt_shape

STRICT = {"<": True, ">": True, "<=": False, ">=": False}


def check_when(chk: Any, decl: ast.When) -> None:
    """Conditions are comparisons of scalars; resets name states once each, with values of their size."""
    for cmp in comparisons(decl.cond):
        if cmp.op not in STRICT:
            what = "an equality is crossed only by chance" if cmp.op == "==" else "this is an expression"
            chk.d.error(
                "when-not-comparison",
                f"a when condition must be comparisons with <=, >=, <, > joined by and/or; {what}",
                cmp.span,
                "e.g. when h <= 0 and v < 0 { ... }",
            )
            continue
        for side in (cmp.lhs, cmp.rhs):
            if side is None:
                continue
            shp = chk.shape(side, {})
            if shp not in (None, ()):
                chk.d.error(
                    "size-mismatch", f"a when condition compares scalars, this side is {fmt_shape(shp)}", side.span
                )
    seen: dict[str, ast.Reset] = {}
    members = chk.info.members
    for reset in decl.resets:
        member = members.get(reset.state)
        if member is None:
            states = [n for n, m in members.items() if m.kind == "state"]
            chk.d.error(
                "reset-unknown-state",
                f"reset of unknown state '{reset.state}'",
                reset.span,
                suggest(reset.state, states),
            )
            chk.shape(reset.expr, {})
            continue
        if member.kind != "state":
            article = "an" if member.kind[0] in "aeiou" else "a"
            what = f"'{reset.state}' is {article} {member.kind}; only states can be reset"
            chk.d.error("reset-not-state", what, reset.span)
            continue
        if reset.state in seen:
            chk.d.error(
                "duplicate-reset",
                f"state '{reset.state}' is reset twice in one when block",
                reset.span,
                f"first reset at {seen[reset.state].span}",
            )
        seen[reset.state] = reset
        chk.expect(reset.expr, member.shape, f"state '{reset.state}'", allow_scalar=True)


def comparisons(cond: ast.Cond) -> list[ast.Compare]:
    """The comparisons of a condition in source order."""
    if isinstance(cond, ast.Compare):
        return [cond]
    return [c for p in cond.parts for c in comparisons(p)]


def _int_index(chk: Any, e: ast.Expr, size: int, what: str, allow_end: bool = False) -> int | None:
    idx = constant_value(e)
    if not isinstance(idx, float) or idx != int(idx):
        chk.d.error("bad-index", f"{what} must be an integer constant", e.span)
        return None
    hi = size if allow_end else size - 1
    if not 0 <= idx <= hi:
        chk.d.error(
            "index-out-of-range",
            f"{what} {int(idx)} is out of range for size {size}",
            e.span,
            f"valid values are 0 to {hi}",
        )
        return None
    return int(idx)


def index_shape(chk: Any, e: ast.Index, target: Shape) -> Shape | None:
    """``v[i]`` (a component), ``A[i]`` (row i) and ``A[i, j]`` (an entry)."""
    if target == ():
        chk.d.error("not-indexable", "a scalar cannot be indexed", e.span)
        return None
    if _int_index(chk, e.index, target[0], "index") is None:
        return None
    if e.col is None:
        return target[1:]
    if len(target) < 2:
        chk.d.error("bad-index", f"two indices need a matrix, got {fmt_shape(target)}", e.span)
        return None
    if _int_index(chk, e.col, target[1], "column index") is None:
        return None
    return ()


def slice_shape(chk: Any, e: ast.Slice, target: Shape) -> Shape | None:
    """``u[a:b]``: components (or rows) ``a`` to ``b - 1``; bounds constant, ``a < b``."""
    if target == ():
        chk.d.error("not-indexable", "a scalar cannot be sliced", e.span)
        return None
    n = target[0]
    lo = 0 if e.low is None else _int_index(chk, e.low, n, "slice start", allow_end=True)
    hi = n if e.high is None else _int_index(chk, e.high, n, "slice end", allow_end=True)
    if lo is None or hi is None:
        return None
    if hi <= lo:
        chk.d.error("bad-index", f"empty slice [{lo}:{hi}]", e.span, "the end is exclusive and must exceed the start")
        return None
    return (hi - lo, *target[1:])


def slice_bounds(e: ast.Slice, n: int) -> tuple[int, int]:
    """The checked ``(start, end)`` of a slice of a length-``n`` axis (for the lowering)."""
    lo = 0 if e.low is None else int(constant_value(e.low))
    hi = n if e.high is None else int(constant_value(e.high))
    return lo, hi
