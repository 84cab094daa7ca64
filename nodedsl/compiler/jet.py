"""Taylor coefficients of a compiled field by Taylor-mode AD: a torch.fx graph transform.

Along the flow ``x' = f(t, x)`` the state is a power series ``x(t0 + s) = sum_k x_k s^k`` with
``x_{k+1} = f(x(s))_k / (k + 1)``. This module rewrites the field's graph so that every value
becomes a list of coefficients, emitted degree by degree (each op's rule is named in ``ops``,
``jetrules`` has the arithmetic): ops that are
linear in their tensor arguments act on each coefficient, products are Cauchy sums, elementwise
functions and the MLPs follow their recurrences. Order ``p`` costs about ``p`` field evaluations
plus ``O(p^2)`` elementwise work, where the symbolic Lie derivatives grow with every order and
nested ``jvp`` doubles. Inputs, parameters and nets are constants along the flow.

``jet_function`` returns None for a graph with an op it has no rule for (a net's derivative
inside the field, e.g. ``grad H`` of a learned Hamiltonian): the caller then uses another method.

Example:
    >>> import nodedsl, torch
    >>> m = nodedsl.loads("model M { state x = 1\\n der(x) = -x^2 }").model("M")
    >>> fn = jet_function(m._field, 3, 1, [])
    >>> x = torch.tensor([[2.0]])
    >>> fn(torch.tensor(0.), x, x[:, :0], x, m._pargs(), ()).tolist()   # x' = -x^2, x'' = 2x^3, x''' = -6x^4
    [[-4.0, 16.0, -96.0]]
"""

from __future__ import annotations

import math
import operator

import torch
from torch import fx

from . import jetrules as R
from . import ops
from .ops import CONSTANT, NO_RULE


class _Unsupported(Exception):
    pass


def _expand_like(value, ref):
    return value.expand(torch.broadcast_shapes(value.shape, ref.shape))


def _dense(out, *series):
    """A rule's coefficient, zeros when every term of it vanished (so later ops see a tensor)."""
    if out is not None:
        return out
    refs = [s[0] for s in series if isinstance(s, tuple) and s and isinstance(s[0], torch.Tensor)]
    return refs[0].new_zeros(torch.broadcast_shapes(*[r.shape for r in refs]))


def _mul(k, a, b):
    return _dense(R.mul(k, a, b), a, b)


def _div(k, a, b, c):
    return _dense(R.div(k, a, b, c), a, b)


def _unary(name, k, z, y):
    return _dense(R.unary(name, k, z, y), z)


def _power(k, z, a, y):
    return _dense(R.power(k, z, a, y), z)


def _piecewise(k, z, kind):
    return _dense(R.piecewise(k, z, kind), z)


def _minmax(kind, k, *series):
    return _dense(R.minmax(kind, k, *series), *series)


def _mlp(net, k, inp, state):
    out, new = R.mlp(net, k, inp, state)
    if out is None:
        out = inp[0].new_zeros(inp[0].shape[:-1] + (new[-1][0].shape[-1],))
    return out, new


def _is_series(v) -> bool:
    return isinstance(v, list)


class _Jet:
    def __init__(self):
        self.g = fx.Graph()
        self.env: dict = {}  # source node -> new node (constant) | list of coefficient nodes (series)
        self.aux: dict = {}  # source node -> hidden series (integer powers)
        self.batchy: set = set()  # constant source nodes that may carry the batch shape

    def call(self, fn, *args, **kwargs):
        return self.g.call_function(fn, args, kwargs)

    def coef(self, v, k: int):
        """Coefficient k of an environment value: a node, None (zero), or the constant itself at k = 0."""
        if _is_series(v):
            return v[k] if k < len(v) else None
        return v if k == 0 else None

    def arg(self, a, k: int, zero_fill: bool):
        """``a`` (source args) mapped to coefficient k; constants become zeros (or None) beyond k = 0."""

        def one(n):
            v = self.env[n]
            c = self.coef(v, k)
            if c is None and zero_fill:
                base = v[0] if _is_series(v) else v
                return self.call(torch.zeros_like, base)
            return c

        return fx.node.map_arg(a, one)

    def series(self, n, k: int) -> tuple:
        """Coefficients ``0..k`` of source node (or constant) ``n`` as a tuple of nodes/None/numbers."""
        if not isinstance(n, fx.Node):
            return (n,)
        v = self.env[n]
        return tuple(v[: k + 1]) if _is_series(v) else (v,)

    # ------------------------------------------------------------------ one node at degree k >= 1
    def degree(self, node: fx.Node, k: int):
        """Coefficient k of ``node``'s value by the Taylor rule its op declares in ``ops``."""
        if node.op == "call_method":
            op = ops.METHODS.get(node.target)
            if op is None or op.jet != "linear":
                raise _Unsupported(node.target)
            return self.g.call_method(
                node.target,
                (self.arg(node.args[0], k, True), *self.arg(node.args[1:], 0, False)),
                self.arg(node.kwargs, 0, False),
            )
        if node.op != "call_function":
            raise _Unsupported(node.op)
        op = ops.FUNCTIONS.get(node.target)
        rule = _RULES.get(op.jet) if op is not None else None
        if rule is None:
            raise _Unsupported(getattr(node.target, "__name__", str(node.target)))
        return rule(self, node, k, op)

    def add(self, node: fx.Node, k: int, op: ops.Op):
        t, args = node.target, node.args
        a, b = (self.coef(self.env[x], k) if isinstance(x, fx.Node) else None for x in args)
        if a is None and b is None:
            return None
        if a is not None and b is not None:
            return self.call(t, a, b)
        out = a if b is None else (b if t is operator.add else self.call(operator.neg, b))
        dropped = args[1] if b is None else args[0]
        if isinstance(dropped, fx.Node) and dropped in self.batchy:  # e.g. zeros + t: keep the batch shape
            out = self.call(_expand_like, out, self.env[dropped])
        return out

    def neg(self, node: fx.Node, k: int, op: ops.Op):
        a = self.coef(self.env[node.args[0]], k)
        return None if a is None else self.call(operator.neg, a)

    def mul(self, node: fx.Node, k: int, op: ops.Op):
        a, b = node.args
        if all(isinstance(x, fx.Node) and _is_series(self.env[x]) for x in (a, b)):
            return self.call(_mul, k, self.series(a, k), self.series(b, k))
        s, c = (a, b) if isinstance(a, fx.Node) and _is_series(self.env[a]) else (b, a)
        sk = self.coef(self.env[s], k)
        return None if sk is None else self.call(operator.mul, sk, self.arg(c, 0, False))

    def div(self, node: fx.Node, k: int, op: ops.Op):
        a, b = node.args
        if isinstance(b, fx.Node) and _is_series(self.env[b]):
            return self.call(_div, k, self.series(a, k), self.series(b, k), tuple(self.env[node][:k]))
        ak = self.coef(self.env[a], k)
        return None if ak is None else self.call(operator.truediv, ak, self.arg(b, 0, False))

    def unary(self, node: fx.Node, k: int, op: ops.Op):
        if node.kwargs or len(node.args) != 1:
            raise _Unsupported(node.target)
        return self.call(_unary, op.arg, k, self.series(node.args[0], k), tuple(self.env[node][:k]))

    def rsqrt(self, node: fx.Node, k: int, op: ops.Op):
        return self.call(_power, k, self.series(node.args[0], k), -0.5, tuple(self.env[node][:k]))

    def piecewise(self, node: fx.Node, k: int, op: ops.Op):
        return self.call(_piecewise, k, self.series(node.args[0], k), op.arg)

    def minmax(self, node: fx.Node, k: int, op: ops.Op):
        return self.call(_minmax, op.arg, k, *[self.series(a, k) for a in node.args])

    def mlp(self, node: fx.Node, k: int, op: ops.Op):
        net, inp = node.args
        res = self.call(_mlp, self.arg(net, 0, False), k, self.series(inp, k), self.aux[node])
        self.aux[node] = self.call(operator.getitem, res, 1)
        return self.call(operator.getitem, res, 0)

    def matmul(self, node: fx.Node, k: int, op: ops.Op):
        a, b = node.args
        moving = [_is_series(self.env[v]) if isinstance(v, fx.Node) else False for v in (a, b)]
        if all(moving):
            raise _Unsupported("product of two moving matrices")
        if moving[0]:
            return self.call(torch.matmul, self.arg(a, k, True), self.arg(b, 0, False))
        return self.call(torch.matmul, self.arg(a, 0, False), self.arg(b, k, True))

    def getitem(self, node: fx.Node, k: int, op: ops.Op):
        data = self.coef(self.env[node.args[0]], k)
        return None if data is None else self.call(operator.getitem, data, node.args[1])

    def linear(self, node: fx.Node, k: int, op: ops.Op):
        # linear in the first argument (a tensor or a list of them); the rest are sizes, dims, indices
        args = node.args
        return self.call(
            node.target, self.arg(args[0], k, True), *self.arg(args[1:], 0, False), **self.arg(node.kwargs, 0, False)
        )

    def stack_args(self, node: fx.Node, k: int, op: ops.Op):
        ref, *cols = node.args
        return self.call(
            node.target,
            self.arg(ref, 0, False),
            *[self.arg(c, k, True) if isinstance(c, fx.Node) else 0.0 for c in cols],
        )

    def scatter_cols(self, node: fx.Node, k: int, op: ops.Op):
        ref, values, index, n = node.args
        vk = self.coef(self.env[values], k)
        if vk is None:
            return None
        return self.call(node.target, self.arg(ref, 0, False), vk, self.arg(index, 0, False), n)

    def pow(self, node: fx.Node, k: int, op: ops.Op):
        return self.power(node, k)

    def power(self, node: fx.Node, k: int):
        base, exp = node.args
        if isinstance(exp, fx.Node):
            raise _Unsupported("a power with a moving exponent")
        if not (float(exp).is_integer() and exp >= 0):
            # the recurrence divides by z0: at z0 = 0 these powers are singular (1/z) or not smooth (sqrt z)
            return self.call(_power, k, self.series(base, k), float(exp), tuple(self.env[node][:k]))
        n = int(exp)
        if n == 0:
            return None
        if n == 1:
            return self.coef(self.env[base], k)
        # z^n as Cauchy products of z (no division: exact at z0 = 0, e.g. q = 0, where the general
        # recurrence gives nan); the intermediate powers are series too, one coefficient per degree
        z = self.series(base, k)
        powers = self.aux[node]
        if not powers:  # coefficient 0 of the intermediate powers
            for a, b in _product_plan(n):
                powers.append([self.call(operator.mul, (powers[a - 1] if a else z)[0], (powers[b - 1] if b else z)[0])])
        for j, (a, b) in enumerate(_product_plan(n)):
            fa = tuple(powers[a - 1]) if a else z
            fb = tuple(powers[b - 1]) if b else z
            powers[j].append(self.call(_mul, k, fa, fb))
        return powers[-1][k]


# Taylor rule name (``ops.Op.jet``) -> the method giving a node's coefficient k
_RULES = {
    name: getattr(_Jet, name)
    for name in (
        "add",
        "neg",
        "mul",
        "div",
        "pow",
        "unary",
        "rsqrt",
        "piecewise",
        "minmax",
        "mlp",
        "matmul",
        "getitem",
        "linear",
        "stack_args",
        "scatter_cols",
    )
}
RULE_NAMES = frozenset(_RULES) | {CONSTANT, NO_RULE}


def _product_plan(n: int) -> list[tuple[int, int]]:
    """Products giving z^n: entry j makes series j + 1 as series a times series b (series 0 is z).
    Up to z^8 a chain z^2 = z z, z^3 = z^2 z, ...; above, squarings then the binary digits."""
    if n <= 8:
        return [(j, 0) for j in range(n - 1)]
    plan, bit = [], 1
    while 2 * bit <= n:  # series i is z^(2^i)
        plan.append((len(plan), len(plan)))
        bit *= 2
    acc = top = len(plan)  # series `top` is the highest power of two in n
    for i in range(top - 1, -1, -1):
        if n & (1 << i):
            plan.append((acc, i))
            acc = len(plan)
    return plan


def jet_function(gm: fx.GraphModule, order: int, n: int, nets: list) -> fx.GraphModule | None:
    """``fn(t, x, u, z, params, nets) -> [batch, order * n]``: ``x', ..., x^(order)`` by Taylor-mode AD
    over the field graph ``gm``; None when the graph has an op without a rule or a net without one."""
    if not all(R.mlp_supported(net) for net in nets):
        return None
    j = _Jet()
    g = j.g
    nodes = list(gm.graph.nodes)
    placeholders = {p.target: p for p in nodes if p.op == "placeholder"}
    new = {name: g.placeholder(name) for name in placeholders}
    for name, p in placeholders.items():
        j.env[p] = new[name]
    t, x = placeholders.get("t"), placeholders.get("x")
    j.env[t] = [new["t"], g.call_function(torch.ones_like, (new["t"],))]
    j.env[x] = [new["x"]]
    j.batchy.update(p for name, p in placeholders.items() if name in ("u", "z"))
    try:
        derivs = []
        for k in range(order):
            for node in nodes:
                if node.op == "placeholder":
                    continue
                if node.op == "output":
                    fk = j.coef(j.env[node.args[0]], k)
                    if fk is None:
                        fk = g.call_function(torch.zeros_like, (new["x"],))
                    # x_{k+1} = f_k / (k + 1), and the derivative x^(k+1) = (k + 1)! x_{k+1} = k! f_k
                    j.env[x].append(fk if k == 0 else g.call_function(operator.truediv, (fk, float(k + 1))))
                    derivs.append(fk if k <= 1 else g.call_function(operator.mul, (fk, float(math.factorial(k)))))
                    continue
                if k == 0:
                    j.env[node] = _first(j, node)
                elif _is_series(j.env[node]):
                    j.env[node].append(j.degree(node, k))
        g.output(g.call_function(torch.cat, (derivs,), {"dim": -1}))
    except _Unsupported:
        return None
    g.eliminate_dead_code()
    g.lint()
    return fx.GraphModule(gm, g)


def _first(j: _Jet, node: fx.Node):
    """Coefficient 0 of ``node`` (the original op on coefficient-0 arguments); a constant when no
    argument moves along the flow."""
    moving = any(_is_series(j.env[a]) for a in node.all_input_nodes)
    if node.op == "get_attr":
        return j.g.get_attr(node.target)
    op = ops.FUNCTIONS.get(node.target) if node.op == "call_function" else None
    if op is not None and op.jet == "mlp" and moving:
        net, inp = node.args
        res = j.call(_mlp, j.arg(net, 0, False), 0, j.series(inp, 0), None)
        j.aux[node] = j.call(operator.getitem, res, 1)
        return [j.call(operator.getitem, res, 0)]
    if op is not None and op.jet == NO_RULE and moving:
        raise _Unsupported(op.why)
    args, kwargs = j.arg(node.args, 0, False), j.arg(node.kwargs, 0, False)
    if node.op == "call_method":
        out = j.g.call_method(node.target, args, kwargs)
    else:
        out = j.g.call_function(node.target, args, kwargs)
    if not moving or (op is not None and op.jet == CONSTANT):
        if moving or any(a in j.batchy for a in node.all_input_nodes):
            j.batchy.add(node)
        return out
    if node.op == "call_function" and node.target is operator.pow and not isinstance(node.args[1], fx.Node):
        j.aux[node] = []
    return [out]
