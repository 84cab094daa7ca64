"""Sizes and constant values of expressions, shared by the checker and the lowering (the builtin
table itself is declared once in ``nodedsl.core.builtins`` and re-exported here).

A shape is ``()`` (scalar), ``(n,)`` (vector) or ``(n, m)`` (matrix).

Example:
    >>> fmt_shape((2, 3))
    'matrix[2x3]'
    >>> BUILTINS["solve"].arity
    (2, 2)
"""

from __future__ import annotations

from ..core.builtins import BUILTINS, Builtin, Shape, fmt_shape, triangular_side
from . import ast

__all__ = ["BUILTINS", "CONSTANTS", "Builtin", "Shape", "constant_value", "fmt_shape", "triangular_side"]


CONSTANTS = {"pi": 3.141592653589793}


def constant_value(expr: ast.Expr):
    """The value of a constant expression (numbers, + - * / ^, literals) or None if not constant.

    >>> from nodedsl.frontend.parse import parse_source
    >>> constant_value(parse_source("model M { param a = -2 * [1, 2] }").models[0].body[0].value)
    [-2.0, -4.0]
    """
    if isinstance(expr, ast.Num):
        return expr.value
    if isinstance(expr, ast.Name) and expr.parts == ("pi",):
        return CONSTANTS["pi"]
    if isinstance(expr, ast.Neg):
        v = constant_value(expr.operand)
        return None if v is None else _map(lambda a: -a, v)
    if isinstance(expr, ast.Array):
        items = [constant_value(i) for i in expr.items]
        return None if any(i is None for i in items) else items
    if isinstance(expr, ast.BinOp) and expr.op in "+-*/^":
        a, b = constant_value(expr.left), constant_value(expr.right)
        if a is None or b is None:
            return None
        fn = {
            "+": lambda x, y: x + y,
            "-": lambda x, y: x - y,
            "*": lambda x, y: x * y,
            "/": lambda x, y: x / y if y != 0 else float("nan"),
            "^": lambda x, y: _pow(x, y),
        }[expr.op]
        return _zip(fn, a, b)
    return None


def _pow(x: float, y: float) -> float:
    try:
        value = x**y
    except (OverflowError, ZeroDivisionError):
        return float("nan")
    return value if isinstance(value, (float, int)) else float("nan")


def _map(fn, v):
    return [_map(fn, i) for i in v] if isinstance(v, list) else fn(v)


def _zip(fn, a, b):
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return None
        return [_zip(fn, x, y) for x, y in zip(a, b)]
    if isinstance(a, list):
        return [_zip(fn, x, b) for x in a]
    if isinstance(b, list):
        return [_zip(fn, a, y) for y in b]
    return fn(a, b)
