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

import math

from ..core.builtins import BUILTINS, Builtin, Shape, fmt_shape, triangular_side
from . import ast

__all__ = ["BUILTINS", "CONSTANTS", "Builtin", "Shape", "constant_value", "fmt_shape", "triangular_side"]


CONSTANTS = {"pi": 3.141592653589793}


def constant_value(expr: ast.Expr, env: dict | None = None):
    """The value of a constant expression or None if not constant: numbers, ``pi``, literals,
    ``+ - * / ^``, the element-wise builtins, and names in ``env`` (parameters already evaluated).

    >>> from nodedsl.frontend.parse import parse_source
    >>> constant_value(parse_source("model M { param a = -2 * [1, 2] }").models[0].body[0].value)
    [-2.0, -4.0]
    >>> constant_value(parse_source("model M { param c = 2 * sin(k) }").models[0].body[0].value, {"k": 0.0})
    0.0
    """
    if isinstance(expr, ast.Num):
        return expr.value
    if isinstance(expr, ast.Name) and expr.parts == ("pi",):
        return CONSTANTS["pi"]
    if isinstance(expr, ast.Name) and env is not None and len(expr.parts) == 1:
        return env.get(expr.parts[0])
    if isinstance(expr, ast.Call) and expr.func.dotted in _MATH and len(expr.args) == 1:
        v = constant_value(expr.args[0], env)
        return None if v is None else _map(_safe(_MATH[expr.func.dotted]), v)
    if isinstance(expr, ast.Neg):
        v = constant_value(expr.operand, env)
        return None if v is None else _map(lambda a: -a, v)
    if isinstance(expr, ast.Array):
        items = [constant_value(i, env) for i in expr.items]
        return None if any(i is None for i in items) else items
    if isinstance(expr, ast.BinOp) and expr.op in "+-*/^":
        a, b = constant_value(expr.left, env), constant_value(expr.right, env)
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


_MATH = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "tanh": math.tanh,
    "abs": abs,
    "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
    "softplus": lambda x: math.log1p(math.exp(x)) if x < 30 else x,
    "sign": lambda x: float((x > 0) - (x < 0)),
}


def _safe(fn):
    def value(x: float) -> float:
        try:
            return float(fn(x))
        except (ValueError, OverflowError, ZeroDivisionError):
            return float("nan")

    return value


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
