"""Sizes of expressions and the builtin function table, shared by the checker and the lowering.

A shape is ``()`` (scalar), ``(n,)`` (vector) or ``(n, m)`` (matrix).

Example:
    >>> fmt_shape((2, 3))
    'matrix[2x3]'
    >>> BUILTINS["solve"].arity
    (2, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import ast

Shape = tuple[int, ...]


def fmt_shape(shape: Shape) -> str:
    if shape == ():
        return "scalar"
    if len(shape) == 1:
        return f"vector[{shape[0]}]"
    return f"matrix[{shape[0]}x{shape[1]}]"


def triangular_side(length: int, strict: bool) -> int | None:
    """n with n(n-1)/2 == length (strict, for skew) or n(n+1)/2 == length (for psd); None if none."""
    n = 1
    while True:
        count = n * (n - 1) // 2 if strict else n * (n + 1) // 2
        if count == length:
            return n
        if count > length:
            return None
        n += 1


# A rule takes the argument shapes and returns (shape, error message or "").
Rule = Callable[[list[Shape]], tuple[Shape, str]]


def _elementwise(shapes):
    return shapes[0], ""


def _broadcast_all(shapes):
    out: Shape = ()
    for s in shapes:
        if s == ():
            continue
        if out == ():
            out = s
        elif s != out:
            return out, f"sizes {fmt_shape(out)} and {fmt_shape(s)} do not match"
    return out, ""


def _dot(shapes):
    a, b = shapes
    if len(a) != 1 or a != b:
        return (), f"dot needs two vectors of the same size, got {fmt_shape(a)} and {fmt_shape(b)}"
    return (), ""


def _norm(shapes):
    return (), "" if len(shapes[0]) == 1 else f"norm needs a vector, got {fmt_shape(shapes[0])}"


def _transpose(shapes):
    s = shapes[0]
    if len(s) == 2:
        return (s[1], s[0]), ""
    if len(s) == 1:
        return (1, s[0]), ""
    return (), ""


def _solve(shapes):
    a, b = shapes
    if len(a) != 2 or a[0] != a[1]:
        return b, f"solve needs a square matrix first, got {fmt_shape(a)}"
    if b == () or b[0] != a[0]:
        return b, f"solve({fmt_shape(a)}, {fmt_shape(b)}): the right-hand side must have {a[0]} rows"
    return b, ""


def _skew(shapes):
    s = shapes[0]
    n = triangular_side(s[0], strict=True) if len(s) == 1 else None
    if n is None:
        return (2, 2), (f"skew needs a vector of length n(n-1)/2 (1, 3, 6, 10, ...), got {fmt_shape(s)}")
    return (n, n), ""


def _psd(shapes):
    s = shapes[0]
    if s == ():
        return (1, 1), ""
    n = triangular_side(s[0], strict=False) if len(s) == 1 else None
    if n is None:
        return (1, 1), f"psd needs a vector of length n(n+1)/2 (1, 3, 6, 10, ...), got {fmt_shape(s)}"
    return (n, n), ""


def _diag(shapes):
    s = shapes[0]
    if len(s) != 1:
        return (1, 1), f"diag needs a vector, got {fmt_shape(s)}"
    return (s[0], s[0]), ""


@dataclass(frozen=True)
class Builtin:
    name: str
    arity: tuple[int, int]  # min, max number of arguments
    rule: Rule
    doc: str


_UNARY = {
    "sin": "sine",
    "cos": "cosine",
    "tan": "tangent",
    "exp": "exponential",
    "log": "natural logarithm",
    "sqrt": "square root",
    "tanh": "hyperbolic tangent",
    "sigmoid": "logistic sigmoid 1/(1+exp(-x))",
    "softplus": "log(1 + exp(x))",
    "abs": "absolute value",
    "sign": "sign (-1, 0, 1)",
}

BUILTINS: dict[str, Builtin] = {
    name: Builtin(name, (1, 1), _elementwise, f"element-wise {doc}") for name, doc in _UNARY.items()
}
BUILTINS.update(
    {
        "min": Builtin("min", (2, 2), _broadcast_all, "element-wise minimum of two values"),
        "max": Builtin("max", (2, 2), _broadcast_all, "element-wise maximum of two values"),
        "clip": Builtin("clip", (3, 3), _broadcast_all, "clip(x, lo, hi): x limited to [lo, hi]"),
        "dot": Builtin("dot", (2, 2), _dot, "dot product of two vectors"),
        "norm": Builtin("norm", (1, 1), _norm, "Euclidean norm of a vector"),
        "transpose": Builtin("transpose", (1, 1), _transpose, "matrix transpose (a vector becomes a row)"),
        "solve": Builtin("solve", (2, 2), _solve, "solve(A, b) = A^-1 b"),
        "skew": Builtin("skew", (1, 1), _skew, "skew-symmetric matrix from its n(n-1)/2 upper entries"),
        "psd": Builtin("psd", (1, 1), _psd, "positive semi-definite L L^T from the n(n+1)/2 entries of L"),
        "diag": Builtin("diag", (1, 1), _diag, "diagonal matrix from a vector"),
    }
)

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
