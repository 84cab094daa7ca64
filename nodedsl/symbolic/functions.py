"""SymPy building blocks of the lowering: net calls as functions, and shaped values.

A net call ``friction(omega)`` becomes ``NetFn('friction', 0)(omega)``: a SymPy function class
made once per (net, output component). Its derivative is another class, so ``sympy.diff`` applies
the chain rule through nets and the compiler turns the result into an autograd call.

Example:
    >>> import sympy as sp
    >>> w = sp.Symbol("w")
    >>> f = net_function("friction", 0)
    >>> sp.diff(f(2 * w), w)
    2*friction'(2*w)
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.core.function import ArgumentIndexError

from ..frontend.shapes import Shape


class NetCall(sp.Function):
    """Component ``out`` of net ``net`` applied to scalar arguments (subclassed per net and output)."""

    net: str = ""
    out: int = 0
    arg: int = -1  # for derivatives: which input component is differentiated

    def fdiff(self, argindex=1):
        if self.arg >= 0:
            raise ArgumentIndexError(self, argindex)  # second derivatives go through autograd instead
        return net_function(self.net, self.out, argindex - 1)(*self.args)

    def _sympystr(self, printer):
        args = ", ".join(printer._print(a) for a in self.args)
        tick = "'" if self.arg >= 0 else ""
        sub = f"_d{self.arg}" if self.arg >= 0 and len(self.args) > 1 else ""
        idx = f"[{self.out}]" if self.multi else ""
        return f"{self.net}{tick}{sub}({args}){idx}"

    def _latex(self, printer):
        name = self.net.replace("_", r"\_")
        args = ", ".join(printer._print(a) for a in self.args)
        head = rf"\operatorname{{{name}}}"
        if self.arg >= 0:
            head = rf"\partial_{{{self.arg}}} {head}"
        idx = f"_{{{self.out}}}" if self.multi else ""
        return rf"{head}{idx}\left({args}\right)"

    multi = False


_CLASSES: dict[tuple[str, int, int, bool], type] = {}


def net_function(net: str, out: int, arg: int = -1, multi: bool = False) -> type:
    """The SymPy function class for component ``out`` of ``net`` (derivative w.r.t. input ``arg``)."""
    key = (net, out, arg, multi)
    if key not in _CLASSES:
        cls_name = f"net_{len(_CLASSES)}"
        _CLASSES[key] = type(cls_name, (NetCall,), {"net": net, "out": out, "arg": arg, "multi": multi})
    return _CLASSES[key]


def symmetric_call(net: str, out: int, multi: bool, args: list, odd=(), even=()) -> sp.Expr:
    """Component ``out`` of a net declared ``odd``/``even`` in some input components: the mean of
    ``sign(s) net(s x)`` over the reflections ``s`` (flip all ``odd`` components together, sign -1; flip
    all ``even`` ones together, sign +1), which is exactly odd/even whatever the weights.

    Example:
        >>> a, b = sp.symbols("a b")
        >>> symmetric_call("f", 0, False, [a, b], odd=(0,))
        -f(-a, b)/2 + f(a, b)/2
    """
    fn = net_function(net, out, multi=multi)
    terms = []
    for flip_odd in (False, True) if odd else (False,):
        for flip_even in (False, True) if even else (False,):
            flip = set(odd if flip_odd else ()) | set(even if flip_even else ())
            term = fn(*(-x if i in flip else x for i, x in enumerate(args)))
            terms.append(-term if flip_odd else term)
    return sp.Add(*terms) / len(terms)


@dataclass(frozen=True)
class Val:
    """A lowered value: its shape and its components in row-major order."""

    shape: Shape
    items: tuple[sp.Expr, ...]

    @staticmethod
    def scalar(e) -> Val:
        if not isinstance(e, sp.Basic):
            e = sp.Integer(e) if float(e).is_integer() else sp.Float(e)
        return Val((), (e,))

    @property
    def expr(self) -> sp.Expr:
        return self.items[0]

    def matrix(self) -> sp.Matrix:
        """As a SymPy matrix: a vector is a column."""
        if self.shape == ():
            return sp.Matrix([[self.items[0]]])
        if len(self.shape) == 1:
            return sp.Matrix(self.shape[0], 1, list(self.items))
        return sp.Matrix(self.shape[0], self.shape[1], list(self.items))

    @staticmethod
    def from_matrix(m: sp.Matrix, vector: bool = False) -> Val:
        if vector:
            return Val((m.rows * m.cols,), tuple(m))
        return Val((m.rows, m.cols), tuple(m))

    def map(self, fn) -> Val:
        return Val(self.shape, tuple(fn(i) for i in self.items))


def zip_vals(fn, *vals: Val) -> Val:
    """Element-wise ``fn`` with scalar broadcasting (shapes were checked already)."""
    shape = next((v.shape for v in vals if v.shape != ()), ())
    n = len(next((v.items for v in vals if v.shape != ()), vals[0].items))
    cols = [v.items if v.shape != () else v.items * n for v in vals]
    return Val(shape, tuple(fn(*args) for args in zip(*cols)))


def skew_matrix(v: list) -> sp.Matrix:
    """The n x n skew-symmetric matrix whose strict upper triangle (row-major) is ``v``."""
    n = 2
    while n * (n - 1) // 2 < len(v):
        n += 1
    m = sp.zeros(n, n)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            m[i, j], m[j, i] = v[k], -v[k]
            k += 1
    return m


def psd_matrix(v: list) -> sp.Matrix:
    """``L L^T`` where ``L`` is lower-triangular with the entries of ``v`` (row-major)."""
    n = 1
    while n * (n + 1) // 2 < len(v):
        n += 1
    low = sp.zeros(n, n)
    k = 0
    for i in range(n):
        for j in range(i + 1):
            low[i, j] = v[k]
            k += 1
    return low * low.T
