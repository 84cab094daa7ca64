"""Syntax-tree nodes of the v2 constructs: slices, comprehensions, ``when`` blocks and ``sde = ...``.

Re-exported by :mod:`nodedsl.frontend.ast` (import them from there).

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> parse_source("model M { state h = 1; der(h) = -1; when h <= 0 { reset h = 1 } }").models[0].body[2].resets
    (Reset(state='h', expr=Num(value=1.0, text='1')),)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.diagnostics import Span

Expr = Any  # nodedsl.frontend.ast.Expr (ast imports this module, so not imported back)


def _span() -> Span:
    return field(default=Span("<unknown>", 0, 0), repr=False, compare=False)


@dataclass(frozen=True)
class Slice:
    """``target[low:high]`` (either bound may be omitted; ``high`` is exclusive)."""

    target: Expr
    low: Expr | None
    high: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class Comprehension:
    """``[expr for var in low..high]`` (bounds inclusive, constant)."""

    expr: Expr
    var: str
    low: Expr
    high: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Compare:
    """One comparison of a ``when`` condition; ``op`` None when the condition is a bare expression."""

    lhs: Expr
    op: str | None  # <= >= < > == or None
    rhs: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class CondOp:
    """``and`` / ``or`` of conditions."""

    op: str  # "and" | "or"
    parts: tuple[Cond, ...]
    span: Span = _span()


Cond = Compare | CondOp


@dataclass(frozen=True)
class Reset:
    state: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class When:
    """``when CONDITION { reset x = expr ... }``."""

    cond: Cond
    resets: tuple[Reset, ...]
    span: Span = _span()


@dataclass(frozen=True)
class SdeKind:
    """``sde = ito | stratonovich``: how the model's ``noise`` terms are read (default: Ito)."""

    kind: str
    span: Span = _span()
