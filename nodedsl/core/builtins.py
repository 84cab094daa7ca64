"""The builtin functions of the language, declared once (pure Python: no SymPy, no torch).

Each :class:`Builtin` has its name, arity, shape rule, the line of the language reference, and the
facts the structural proofs use (``nonnegative`` output, a ``structure`` such as skew-symmetric by
construction). Later stages attach their part by name, JAX-style: the symbolic stage registers the
SymPy constructor (``nodedsl.symbolic.builtins``), the compiler the torch ops that compute it and
their Taylor rules (``nodedsl.compiler.ops.BUILTIN_OPS``); tests check that every name here has them.

A shape is ``()`` (scalar), ``(n,)`` (vector) or ``(n, m)`` (matrix).

Example:
    >>> BUILTINS["solve"].arity
    (2, 2)
    >>> BUILTINS["psd"].rule([(3,)])
    ((2, 2), '')
    >>> fmt_shape((2, 3))
    'matrix[2x3]'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

Shape = tuple[int, ...]
# A rule takes the argument shapes and returns (shape, error message or "").
Rule = Callable[[list[Shape]], tuple[Shape, str]]


def fmt_shape(shape: Shape) -> str:
    """A shape as the diagnostics write it.

    >>> fmt_shape(()), fmt_shape((3,))
    ('scalar', 'vector[3]')
    """
    if shape == ():
        return "scalar"
    if len(shape) == 1:
        return f"vector[{shape[0]}]"
    return f"matrix[{shape[0]}x{shape[1]}]"


def triangular_side(length: int, strict: bool) -> int | None:
    """n with n(n-1)/2 == length (strict, for skew) or n(n+1)/2 == length (for psd); None if none.

    >>> triangular_side(3, strict=True), triangular_side(3, strict=False), triangular_side(4, strict=True)
    (3, 2, None)
    """
    n = 1
    while True:
        count = n * (n - 1) // 2 if strict else n * (n + 1) // 2
        if count == length:
            return n
        if count > length:
            return None
        n += 1


def _elementwise(shapes: list[Shape]) -> tuple[Shape, str]:
    return shapes[0], ""


def _broadcast_all(shapes: list[Shape]) -> tuple[Shape, str]:
    out: Shape = ()
    for s in shapes:
        if s == ():
            continue
        if out == ():
            out = s
        elif s != out:
            return out, f"sizes {fmt_shape(out)} and {fmt_shape(s)} do not match"
    return out, ""


def _dot(shapes: list[Shape]) -> tuple[Shape, str]:
    a, b = shapes
    if len(a) != 1 or a != b:
        return (), f"dot needs two vectors of the same size, got {fmt_shape(a)} and {fmt_shape(b)}"
    return (), ""


def _reduce(shapes: list[Shape]) -> tuple[Shape, str]:
    return (), ""  # every component of a scalar, vector or matrix


def _norm(shapes: list[Shape]) -> tuple[Shape, str]:
    return (), "" if len(shapes[0]) == 1 else f"norm needs a vector, got {fmt_shape(shapes[0])}"


def _transpose(shapes: list[Shape]) -> tuple[Shape, str]:
    s = shapes[0]
    if len(s) == 2:
        return (s[1], s[0]), ""
    if len(s) == 1:
        return (1, s[0]), ""
    return (), ""


def _solve(shapes: list[Shape]) -> tuple[Shape, str]:
    a, b = shapes
    if len(a) != 2 or a[0] != a[1]:
        return b, f"solve needs a square matrix first, got {fmt_shape(a)}"
    if b == () or b[0] != a[0]:
        return b, f"solve({fmt_shape(a)}, {fmt_shape(b)}): the right-hand side must have {a[0]} rows"
    return b, ""


def _skew(shapes: list[Shape]) -> tuple[Shape, str]:
    s = shapes[0]
    n = triangular_side(s[0], strict=True) if len(s) == 1 else None
    if n is None:
        return (2, 2), (f"skew needs a vector of length n(n-1)/2 (1, 3, 6, 10, ...), got {fmt_shape(s)}")
    return (n, n), ""


def _psd(shapes: list[Shape]) -> tuple[Shape, str]:
    s = shapes[0]
    if s == ():
        return (1, 1), ""
    n = triangular_side(s[0], strict=False) if len(s) == 1 else None
    if n is None:
        return (1, 1), f"psd needs a vector of length n(n+1)/2 (1, 3, 6, 10, ...), got {fmt_shape(s)}"
    return (n, n), ""


def _diag(shapes: list[Shape]) -> tuple[Shape, str]:
    s = shapes[0]
    if len(s) != 1:
        return (1, 1), f"diag needs a vector, got {fmt_shape(s)}"
    return (s[0], s[0]), ""


@dataclass(frozen=True)
class Builtin:
    """One builtin function: what the checker, the lowering, the compiler, the proofs and the docs read."""

    name: str
    arity: tuple[int, int]  # min, max number of arguments
    rule: Rule
    doc: str  # the "result" column of the language reference's builtin table
    nonnegative: bool = False  # the output is >= 0 for every real argument
    structure: str | None = None  # "skew" or "psd": the matrix has that property by construction
    args: str = "x"  # the argument names shown in the signature

    @property
    def signature(self) -> str:
        """How the reference writes a call, e.g. ``clip(x, lo, hi)``."""
        return f"{self.name}({self.args})"


_UNARY = {
    "sin": ("element-wise sine", False),
    "cos": ("element-wise cosine", False),
    "tan": ("element-wise tangent", False),
    "exp": ("element-wise exponential", True),
    "log": ("element-wise natural logarithm", False),
    "sqrt": ("element-wise square root", True),
    "tanh": ("element-wise hyperbolic tangent", False),
    "sigmoid": ("element-wise `1 / (1 + exp(-x))`", True),
    "softplus": ("element-wise `log(1 + exp(x))`", True),
    "abs": ("element-wise absolute value", True),
    "sign": ("element-wise sign (-1, 0, 1)", False),
}

BUILTINS: dict[str, Builtin] = {
    name: Builtin(name, (1, 1), _elementwise, doc, nonneg) for name, (doc, nonneg) in _UNARY.items()
}
_SIGNATURE = {
    "min": "a, b",
    "max": "a, b",
    "clip": "x, lo, hi",
    "dot": "a, b",
    "norm": "v",
    "transpose": "A",
    "solve": "A, b",
    "skew": "v",
    "psd": "v",
    "diag": "v",
    "sum": "v",
    "prod": "v",
}
for _b in (
    Builtin("min", (2, 2), _broadcast_all, "element-wise minimum; a scalar broadcasts"),
    Builtin("max", (2, 2), _broadcast_all, "element-wise maximum; a scalar broadcasts"),
    Builtin("clip", (3, 3), _broadcast_all, "`x` limited to `[lo, hi]`, element-wise; scalars broadcast"),
    Builtin("dot", (2, 2), _dot, "dot product of two vectors of one size: a scalar"),
    Builtin("norm", (1, 1), _norm, "Euclidean norm of a vector: a scalar", nonnegative=True),
    Builtin("transpose", (1, 1), _transpose, "matrix transpose; a vector becomes a one-row matrix"),
    Builtin("solve", (2, 2), _solve, "`A^-1 b`, `A` square, `b` a vector or matrix with as many rows"),
    Builtin(
        "skew",
        (1, 1),
        _skew,
        "the `n x n` skew-symmetric matrix whose upper triangle (row by row) is `v`; "
        "`v` has length `n(n-1)/2` (1, 3, 6, 10, ...)",
        structure="skew",
    ),
    Builtin(
        "psd",
        (1, 1),
        _psd,
        "`L L^T` with `L` the lower-triangular `n x n` matrix filled row by row from `v`, "
        "length `n(n+1)/2` (1, 3, 6, 10, ...); a scalar gives `1 x 1`",
        structure="psd",
    ),
    Builtin("diag", (1, 1), _diag, "the diagonal matrix with the vector `v` on its diagonal"),
    Builtin("sum", (1, 1), _reduce, "the sum of every component of a vector or matrix: a scalar"),
    Builtin("prod", (1, 1), _reduce, "the product of every component of a vector or matrix: a scalar"),
):
    BUILTINS[_b.name] = replace(_b, args=_SIGNATURE[_b.name])
del _b
