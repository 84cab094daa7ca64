"""Renaming a lowered template instance under a prefix: symbols and net calls, without re-lowering.

Example:
    >>> import sympy as sp
    >>> p, q = sp.symbols("p q", real=True)
    >>> Renamer("m1.")(p**2 / 2 + 3 * q)
    m1.p**2/2 + 3*m1.q
"""

from __future__ import annotations

import sympy as sp

from .functions import NetCall, net_function
from .system import T

__all__ = ["Renamer"]


class Renamer:
    """Prefixes every symbol and net call of template expressions (``ren``) and matrices (``matrix``)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.symbols: dict = {}
        self.done: dict = {}  # the same expression recurs (rhs and rhs_open, grad H in ports): renamed once

    def sym(self, s: sp.Symbol) -> sp.Symbol:
        if s not in self.symbols:
            self.symbols[s] = s if s == T else sp.Symbol(self.prefix + s.name, real=True)
        return self.symbols[s]

    def __call__(self, e):
        if isinstance(e, sp.Symbol):
            return self.sym(e)
        if not isinstance(e, sp.Basic) or e.is_Number:
            return e
        if e not in self.done:
            mapping = {s: self.sym(s) for s in e.free_symbols}
            for call in e.atoms(NetCall):
                mapping[call] = net_function(self.prefix + call.net, call.out, call.arg, call.multi)(
                    *[self(a) for a in call.args]
                )
            self.done[e] = e.xreplace(mapping) if T in mapping else _rebuild(e, mapping)
        return self.done[e]

    def matrix(self, m: sp.Matrix) -> sp.Matrix:
        # a numeric matrix (most G, J, R, C) is shared with the template: applyfunc rebuilds a Matrix
        return m.applyfunc(self) if m.free_symbols else m


def _rebuild(e: sp.Basic, mapping: dict) -> sp.Basic:
    """``e.xreplace(mapping)`` for a renaming of every symbol under one common prefix, without
    re-canonicalizing sums, products and powers.

    A common prefix keeps the names' order, so the template's canonical argument order is the renamed
    expression's too, and no two symbols merge: ``Add``/``Mul``/``Pow`` are rebuilt unevaluated (their
    ``flatten`` was 60 % of lowering a 1000-mass chain), giving the same tree as ``xreplace`` (a test
    compares them). The caller keeps ``xreplace`` where the unrenamed time ``t`` appears."""
    if e in mapping:
        return mapping[e]
    if not e.args:
        return e
    args = tuple(_rebuild(a, mapping) for a in e.args)
    if args == e.args:
        return e
    if isinstance(e, (sp.Add, sp.Mul, sp.Pow)):
        return e.func(*args, evaluate=False)
    return e.func(*args)
