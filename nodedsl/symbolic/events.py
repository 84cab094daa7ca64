"""Lowering of ``when`` blocks, matrix indexing and slices.

A ``when`` block becomes an :class:`EventSym`: one *margin* per comparison (``a <= b`` gives
``b - a``, ``a >= b`` gives ``a - b``; the comparison holds where the margin is ``>= 0``, ``> 0``
for ``<`` and ``>``), the condition tree over them (``nodedsl.core.events``), and the reset map as
``state symbol -> expression`` (states not reset keep their value).

Example:
    >>> import nodedsl
    >>> text = '''model Ball { state h = 1
    ...   state v = 0
    ...   param e = 0.8
    ...   der(h) = v
    ...   der(v) = -9.81
    ...   when h <= 0 and v < 0 { reset v = -e * v } }'''
    >>> ev = nodedsl.loads(text).system("Ball").events[0]
    >>> ev.margins, ev.text, ev.resets
    ([-h, -v], 'h <= 0 and v < 0', {v: -e*v})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sympy as sp

from ..core.diagnostics import Span
from ..core.events import All, Compare, Condition, describe
from ..core.events import Any as AnyOf
from ..frontend import ast
from ..frontend.check_events import slice_bounds
from ..frontend.shapes import constant_value
from .functions import Val


@dataclass
class EventSym:
    """One lowered ``when`` block."""

    name: str
    margins: list[sp.Expr]
    condition: Condition
    resets: dict[sp.Symbol, sp.Expr]
    text: str
    span: Span


def lower_when(inst: Any, decl: ast.When, number: int) -> EventSym:
    """The event of ``decl`` in instance ``inst`` (its ``expr`` lowers expressions, ``env`` holds states)."""
    margins: list[sp.Expr] = []
    texts: list[str] = []

    def cond(c: ast.Cond) -> Condition:
        if isinstance(c, ast.CondOp):
            parts = tuple(cond(p) for p in c.parts)
            return All(parts) if c.op == "and" else AnyOf(parts)
        lhs, rhs = inst.expr(c.lhs).items[0], inst.expr(c.rhs).items[0]
        margins.append(rhs - lhs if c.op in ("<=", "<") else lhs - rhs)
        texts.append(f"{sp.sstr(lhs)} {c.op} {sp.sstr(rhs)}")
        return Compare(len(margins) - 1, strict=c.op in ("<", ">"))

    condition = cond(decl.cond)
    resets: dict[sp.Symbol, sp.Expr] = {}
    for r in decl.resets:
        target = inst.env[r.state]
        value = inst.expr(r.expr)
        items = value.items * len(target.items) if value.shape == () else value.items
        resets.update(zip(target.items, items))
    return EventSym(f"{inst.prefix}when{number}", margins, condition, resets, describe(condition, texts), decl.span)


def index_val(target: Val, e: ast.Index) -> Val:
    """``v[i]``, ``A[i]`` (row ``i``) or ``A[i, j]`` of a checked expression."""
    i = int(constant_value(e.index))
    if len(target.shape) == 1:
        return Val.scalar(target.items[i])
    width = target.shape[1]
    row = Val((width,), target.items[i * width : (i + 1) * width])
    return row if e.col is None else Val.scalar(row.items[int(constant_value(e.col))])


def slice_val(target: Val, e: ast.Slice) -> Val:
    """``u[a:b]``: components (or rows of a matrix) ``a`` to ``b - 1``."""
    lo, hi = slice_bounds(e, target.shape[0])
    width = 1 if len(target.shape) == 1 else target.shape[1]
    return Val((hi - lo, *target.shape[1:]), target.items[lo * width : hi * width])
