"""The SymPy side of the builtins: each name declared in ``nodedsl.core.builtins`` gets its constructor here.

A constructor maps the argument values (:class:`Val`, already shape-checked) to the result value.
Element-wise builtins also name their SymPy head (``sp.sin``, ``sigmoid``), which the compiler maps
to a torch op; ``HEADLESS`` says why the others have none (they lower to arithmetic, ``Min``/``Max``
or a ``Pow``).

Example:
    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> SYMPY["clip"]([Val.scalar(x), Val.scalar(0), Val.scalar(1)]).expr
    Min(1, Max(0, x))
    >>> HEADS["sigmoid"] is sigmoid
    True
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

from .functions import Val, psd_matrix, skew_matrix, zip_vals

Constructor = Callable[[list[Val]], Val]


class sigmoid(sp.Function):
    """Logistic function (kept whole so the compiler can call torch.sigmoid)."""

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_evalf(self, prec):  # sigmoid(0) is a number: the compiler folds it
        return (1 / (1 + sp.exp(-self.args[0])))._eval_evalf(prec)


class softplus(sp.Function):
    """log(1 + exp(x)), kept whole for a numerically stable torch call."""

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_evalf(self, prec):
        return sp.log(1 + sp.exp(self.args[0]))._eval_evalf(prec)


SYMPY: dict[str, Constructor] = {}
HEADS: dict[str, type] = {}  # element-wise builtin -> the SymPy function class its results have
HEADLESS: dict[str, str] = {}  # builtin -> why its results have no head of their own


def register_sympy(name: str, constructor: Constructor, head: type | None = None, why: str = "") -> None:
    """Attach the SymPy constructor of builtin ``name`` (and the head class its results carry)."""
    SYMPY[name] = constructor
    if head is not None:
        HEADS[name] = head
    else:
        HEADLESS[name] = why


def _elementwise(fn: Callable) -> Constructor:
    return lambda args: args[0].map(fn)


for _name, _fn in {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "exp": sp.exp,
    "log": sp.log,
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "abs": sp.Abs,
    "sign": sp.sign,
}.items():
    register_sympy(_name, _elementwise(_fn), _fn)

register_sympy("sqrt", _elementwise(sp.sqrt), why="a power x^(1/2)")
register_sympy("min", lambda a: zip_vals(sp.Min, *a), why="sympy Min")
register_sympy("max", lambda a: zip_vals(sp.Max, *a), why="sympy Max")
register_sympy("clip", lambda a: zip_vals(lambda x, lo, hi: sp.Min(sp.Max(x, lo), hi), *a), why="Min of Max")
register_sympy(
    "dot", lambda a: Val.scalar(sp.Add(*[x * y for x, y in zip(a[0].items, a[1].items)])), why="a sum of products"
)
register_sympy("norm", lambda a: Val.scalar(sp.sqrt(sp.Add(*[x**2 for x in a[0].items]))), why="a root of squares")
register_sympy("sum", lambda a: Val.scalar(sp.Add(*a[0].items)), why="a sum")
register_sympy("prod", lambda a: Val.scalar(sp.Mul(*a[0].items)), why="a product")
register_sympy("transpose", lambda a: Val.from_matrix(a[0].matrix().T), why="a rearrangement")


def _solve(args: list[Val]) -> Val:
    sol = args[0].matrix().LUsolve(args[1].matrix())
    return Val.from_matrix(sol, vector=len(args[1].shape) == 1)


register_sympy("solve", _solve, why="rational expressions from the LU solve")
register_sympy("skew", lambda a: Val.from_matrix(skew_matrix(list(a[0].items))), why="entries +-v")
register_sympy("psd", lambda a: Val.from_matrix(psd_matrix(list(a[0].items))), why="sums of products")
register_sympy("diag", lambda a: Val.from_matrix(sp.diag(*a[0].items)), why="entries v and 0")
