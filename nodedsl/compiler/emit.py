"""SymPy expressions to torch.fx nodes: a dispatch table from SymPy classes to torch ops.

The emitter memoizes every expression it emits (common subexpressions become one node), evaluates
each distinct net call once and takes a net's derivatives by autograd. Parameters are read from the
``params`` placeholder: ``(known vector, learned values)``.
"""

from __future__ import annotations

import operator

import sympy as sp
import torch
from torch import fx

from ..symbolic.builtins import HEADS
from ..symbolic.functions import NetCall
from ..symbolic.system import T
from . import ops


class UncompilableError(Exception):
    """An expression with no real value (``1/0``, ``sqrt(-1)``) or a construct with no torch counterpart."""


# SymPy head -> torch op, for the element-wise builtins (their heads are declared by the symbolic stage)
_FUNCS = {head: ops.TORCH_BY_BUILTIN[name] for name, head in HEADS.items()}


class Emitter:
    """Emits SymPy expressions into ``graph``; ``x_node`` is the state placeholder (the batch reference),
    ``columns`` maps a symbol to ``(node, column)`` where it is read, ``p_node`` and ``nets_node`` are the
    parameter and net placeholders."""

    def __init__(
        self,
        graph: fx.Graph,
        symbols: dict,
        nets: list[str],
        params: dict,
        *,
        x_node: fx.Node,
        p_node: fx.Node,
        nets_node: fx.Node,
        columns: dict,
    ):
        self.g = graph
        self.symbols = symbols  # Symbol -> fx node
        self.net_index = {name: i for i, name in enumerate(nets)}
        self.params = params  # Symbol -> ("k", index in the known vector) or ("l", param, component)
        self.memo: dict = {}
        self.net_calls: dict = {}
        self.net_grads: dict = {}
        self.x_node, self.p_node, self.nets_node = x_node, p_node, nets_node
        self.columns = columns  # Symbol -> (node, column); the block compiler adds coupled inputs later
        self.known_node: fx.Node | None = None

    def call(self, fn, *args):
        if getattr(fn, "__module__", None) in ("operator", "_operator") and not any(
            isinstance(a, fx.Node) for a in args
        ):
            return fn(*args)  # numbers only (a cse'd constant times 0.5): a number, so torch ops get _tensor
        return self.g.call_function(fn, tuple(args))

    def emit(self, e: sp.Expr):
        if e in self.memo:
            return self.memo[e]
        node = self._emit(e)
        self.memo[e] = node
        return node

    def _emit(self, e):
        if e.has(sp.zoo, sp.nan, sp.I, sp.oo, -sp.oo):
            raise UncompilableError(
                "an expression has no finite real value (a division by zero, or a root or "
                f"logarithm of a negative number): {sp.sstr(e)[:80]}"
            )
        if e.is_Number or e in (sp.pi, sp.E):
            return float(e)
        if not e.free_symbols and not e.has(NetCall, sp.DiracDelta):  # sqrt(2), exp(1/3): torch ops need tensors
            return float(e.evalf())
        if isinstance(e, sp.Symbol):
            if e in self.symbols:
                return self.symbols[e]
            if e in self.params:
                return self.param(e)
            if e == T or e.name == "t":
                return self.symbols["t"]
            raise KeyError(f"symbol {e} has no value")
        for cls in type(e).__mro__:  # NetCall classes are made per net: look up their base too
            rule = _RULES.get(cls)
            if rule is not None:
                return rule(self, e)
        fn = _FUNCS.get(type(e))
        if fn is not None:
            return self.call(fn, self.tensor(self.emit(e.args[0])))
        raise UncompilableError(f"cannot compile {type(e).__name__}")

    def _add(self, e: sp.Add):
        terms = list(e.args)
        out = self.emit(terms[0])
        for term in terms[1:]:
            if isinstance(term, sp.Mul) and term.args[0] == -1:
                out = self.call(operator.sub, out, self.emit(sp.Mul(*term.args[1:])))
            else:
                out = self.call(operator.add, out, self.emit(term))
        return out

    def _mul(self, e: sp.Mul):
        args = e.args
        if 2 < len(args) <= 6:  # reuse a product of two of the factors computed before (p/m of a velocity)
            for i in range(len(args)):
                for j in range(i + 1, len(args)):
                    pair = sp.Mul(args[i], args[j])
                    if pair in self.memo and isinstance(self.memo[pair], fx.Node):
                        rest = sp.Mul(*[a for k, a in enumerate(args) if k not in (i, j)])
                        return self.call(operator.mul, self.memo[pair], self.emit(rest))
        num, den = [], []
        for f in e.args:
            if isinstance(f, sp.Pow) and f.exp.is_Number and f.exp < 0:
                den.append(sp.Pow(f.base, -f.exp))
            else:
                num.append(f)
        sign = 1
        if num and num[0] == -1:
            sign, num = -1, num[1:]
        out = self.emit(num[0]) if num else 1.0
        for f in num[1:]:
            out = self.call(operator.mul, out, self.emit(f))
        for f in den:
            out = self.call(operator.truediv, out, self.emit(f))
        return self.call(operator.neg, out) if sign < 0 else out

    def _pow(self, e: sp.Pow):
        base, exp = e.args
        b = self.emit(base)
        if exp == 2:
            return self.call(operator.mul, b, b)
        if exp == sp.Rational(1, 2):
            return self.call(torch.sqrt, self.tensor(b))
        if exp == -1:
            return self.call(operator.truediv, 1.0, b)
        if exp == sp.Rational(-1, 2):
            return self.call(torch.rsqrt, self.tensor(b))
        if exp.is_Integer:
            return self.call(operator.pow, b, int(exp))
        return self.call(operator.pow, b, self.emit(exp))

    def _minmax(self, e):
        return self.call(ops.minimum if isinstance(e, sp.Min) else ops.maximum, *[self.emit(a) for a in e.args])

    def _heaviside(self, e):  # from d/dx of max, min, clip, abs
        return self.call(ops.heaviside, self.tensor(self.emit(e.args[0])))

    def _delta(self, e):
        return 0.0

    def known(self):
        if self.known_node is None:
            self.known_node = self.call(operator.getitem, self.p_node, 0)
        return self.known_node

    def param(self, s: sp.Symbol):
        where = self.params[s]
        if where[0] == "k":
            return self.call(operator.getitem, self.known(), where[1])
        learned = self.call(operator.getitem, self.p_node, 1)
        return self.call(operator.getitem, self.call(operator.getitem, learned, where[1]), where[2])

    def tensor(self, node):
        """A number as a tensor node (batch dtype and device); a node as it is."""
        return node if isinstance(node, fx.Node) else self.call(ops.const, self.x_node, node)

    def _net_input(self, e: NetCall, args):
        """The net's input ``[batch, k]``: a view of x or u when the arguments are consecutive columns."""
        cols = [self.columns.get(a) for a in e.args]
        if (
            all(c is not None for c in cols)
            and len({c[0] for c in cols}) == 1
            and [c[1] for c in cols] == list(range(cols[0][1], cols[0][1] + len(cols)))
        ):
            return self.call(operator.getitem, cols[0][0], (Ellipsis, slice(cols[0][1], cols[0][1] + len(cols))))
        if all(c is not None for c in cols):
            return self.g.call_function(torch.stack, (list(args),), {"dim": -1})
        return self.call(ops.stack_args, self.x_node, *args)

    def _net(self, e: NetCall):
        args = tuple(self.emit(a) for a in e.args)
        key = (e.net, args)
        if key not in self.net_calls:
            inp = self._net_input(e, args)
            net = self.call(operator.getitem, self.nets_node, self.net_index[e.net])
            self.net_calls[key] = (inp, net, self.call(ops.apply, net, inp))
        inp, net, out = self.net_calls[key]
        if e.arg < 0:
            return self.call(operator.getitem, out, (Ellipsis, e.out))
        gkey = (key, e.out)
        if gkey not in self.net_grads:
            self.net_grads[gkey] = self.call(ops.mlp_grad, net, inp, e.out)
        return self.call(operator.getitem, self.net_grads[gkey], (Ellipsis, e.arg))


_RULES = {
    sp.Add: Emitter._add,
    sp.Mul: Emitter._mul,
    sp.Pow: Emitter._pow,
    NetCall: Emitter._net,
    sp.Min: Emitter._minmax,
    sp.Max: Emitter._minmax,
    sp.Heaviside: Emitter._heaviside,
    sp.DiracDelta: Emitter._delta,
}
