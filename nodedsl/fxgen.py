"""SymPy expressions to a torch.fx graph: a dispatch table from SymPy classes to torch ops.

The generated function has the signature ``fn(t, x, u, z, params, nets)`` and returns a
``[batch, len(exprs)]`` tensor. Common subexpressions are eliminated with ``sympy.cse`` first;
each distinct net call is evaluated once. No user text reaches the generated code: node names
are generic and every value comes in through the placeholders.

Example:
    >>> import sympy as sp, torch
    >>> x0 = sp.Symbol("x0")
    >>> fn = build_function([sp.sin(x0) * 2], {"x": [x0], "u": [], "z": []}, [], [])
    >>> fn(torch.tensor(0.), torch.zeros(3, 1), torch.zeros(3, 0), torch.zeros(3, 0), (), ()).shape
    torch.Size([3, 1])
"""

from __future__ import annotations

import operator

import sympy as sp
import torch
import torch.nn.functional as F
from torch import fx

from .lower import T, sigmoid, softplus
from .symbolic import NetCall


class UncompilableError(Exception):
    """An expression with no real value (``1/0``, ``sqrt(-1)``) or a construct with no torch counterpart."""


def _stack_args(ref, *cols):
    """Net input from scalar columns, broadcasting constants and 0-dim values to the batch of ``ref``."""
    cols = torch.broadcast_tensors(*[c if isinstance(c, torch.Tensor) else
                                     torch.as_tensor(c, dtype=ref.dtype, device=ref.device) for c in cols])
    return torch.stack(cols, dim=-1)


def _const(ref, c):
    return torch.as_tensor(c, dtype=ref.dtype, device=ref.device)


def _heaviside(x):
    return (x > 0).to(x.dtype) + 0.5 * (x == 0).to(x.dtype)


def _net_grad(net, inp, k: int):
    """d net(inp)[:, k] / d inp through autograd; the graph is kept only when gradients are being taken."""
    keep = torch.is_grad_enabled()
    with torch.enable_grad():
        if not inp.requires_grad:
            inp = inp.detach().requires_grad_(True)
        out = net(inp)[..., k]
        (grad,) = torch.autograd.grad(out.sum(), inp, create_graph=keep)
    return grad


def _minimum(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = torch.minimum(torch.as_tensor(out), torch.as_tensor(x))
    return out


def _maximum(*xs):
    out = xs[0]
    for x in xs[1:]:
        out = torch.maximum(torch.as_tensor(out), torch.as_tensor(x))
    return out


_FUNCS = {sp.sin: torch.sin, sp.cos: torch.cos, sp.tan: torch.tan, sp.exp: torch.exp, sp.log: torch.log,
          sp.tanh: torch.tanh, sp.Abs: torch.abs, sp.sign: torch.sign, sigmoid: torch.sigmoid,
          softplus: F.softplus, sp.sinh: torch.sinh, sp.cosh: torch.cosh, sp.asin: torch.asin,
          sp.acos: torch.acos, sp.atan: torch.atan}


class _Emitter:
    def __init__(self, graph: fx.Graph, symbols: dict, nets: list[str], params: dict):
        self.g = graph
        self.symbols = symbols  # Symbol -> fx node
        self.net_index = {name: i for i, name in enumerate(nets)}
        self.params = params  # Symbol -> (param index, component)
        self.memo: dict = {}
        self.net_calls: dict = {}
        self.net_grads: dict = {}
        self.p_node = None
        self.nets_node = None

    def call(self, fn, *args):
        return self.g.call_function(fn, tuple(args))

    def emit(self, e: sp.Expr):
        if e in self.memo:
            return self.memo[e]
        node = self._emit(e)
        self.memo[e] = node
        return node

    def _emit(self, e):
        if e.has(sp.zoo, sp.nan, sp.I, sp.oo, -sp.oo):
            raise UncompilableError("an expression has no finite real value (a division by zero, or a root or "
                                    f"logarithm of a negative number): {sp.sstr(e)[:80]}")
        if e.is_Number or e in (sp.pi, sp.E):
            return float(e)
        if isinstance(e, sp.Symbol):
            if e in self.symbols:
                return self.symbols[e]
            if e in self.params:
                i, j = self.params[e]
                return self.call(operator.getitem, self.call(operator.getitem, self.p_node, i), j)
            if e == T or e.name == "t":
                return self.symbols["t"]
            raise KeyError(f"symbol {e} has no value")
        if isinstance(e, sp.Add):
            terms = list(e.args)
            out = self.emit(terms[0])
            for term in terms[1:]:
                if isinstance(term, sp.Mul) and term.args[0] == -1:
                    out = self.call(operator.sub, out, self.emit(sp.Mul(*term.args[1:])))
                else:
                    out = self.call(operator.add, out, self.emit(term))
            return out
        if isinstance(e, sp.Mul):
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
        if isinstance(e, sp.Pow):
            base, exp = e.args
            b = self.emit(base)
            if exp == 2:
                return self.call(operator.mul, b, b)
            if exp == sp.Rational(1, 2):
                return self.call(torch.sqrt, b)
            if exp == -1:
                return self.call(operator.truediv, 1.0, b)
            if exp == sp.Rational(-1, 2):
                return self.call(torch.rsqrt, b)
            if exp.is_Integer:
                return self.call(operator.pow, b, int(exp))
            return self.call(operator.pow, b, self.emit(exp))
        if isinstance(e, NetCall):
            return self._net(e)
        if isinstance(e, (sp.Min, sp.Max)):
            return self.call(_minimum if isinstance(e, sp.Min) else _maximum, *[self.emit(a) for a in e.args])
        if isinstance(e, sp.Heaviside):  # from d/dx of max, min, clip, abs
            return self.call(_heaviside, self._tensor(self.emit(e.args[0])))
        if isinstance(e, sp.DiracDelta):
            return 0.0
        fn = _FUNCS.get(type(e))
        if fn is not None:
            return self.call(fn, self._tensor(self.emit(e.args[0])))
        raise UncompilableError(f"cannot compile {type(e).__name__}")

    def _tensor(self, node):
        return node if isinstance(node, fx.Node) else self.call(_const, self.x_node, node)

    def _net_input(self, e: NetCall, args):
        """The net's input ``[batch, k]``: a view of x or u when the arguments are consecutive columns."""
        cols = [self.columns.get(a) for a in e.args]
        if all(c is not None for c in cols) and len({c[0] for c in cols}) == 1 and \
                [c[1] for c in cols] == list(range(cols[0][1], cols[0][1] + len(cols))):
            return self.call(operator.getitem, cols[0][0], (Ellipsis, slice(cols[0][1], cols[0][1] + len(cols))))
        if all(c is not None for c in cols):
            return self.g.call_function(torch.stack, (list(args),), {"dim": -1})
        return self.call(_stack_args, self.x_node, *args)

    def _net(self, e: NetCall):
        args = tuple(self.emit(a) for a in e.args)
        key = (e.net, args)
        if key not in self.net_calls:
            inp = self._net_input(e, args)
            net = self.call(operator.getitem, self.nets_node, self.net_index[e.net])
            self.net_calls[key] = (inp, net, self.call(_apply, net, inp))
        inp, net, out = self.net_calls[key]
        if e.arg < 0:
            return self.call(operator.getitem, out, (Ellipsis, e.out))
        gkey = (key, e.out)
        if gkey not in self.net_grads:
            self.net_grads[gkey] = self.call(_net_grad, net, inp, e.out)
        return self.call(operator.getitem, self.net_grads[gkey], (Ellipsis, e.arg))


def _apply(module, inp):
    return module(inp)


def _flat_params(params):
    return torch.cat([p.reshape(-1) for p in params]) if params else None


def _shape_groups(exprs: list[sp.Expr], kind_of) -> tuple[list, list[int]]:
    """Expressions of the same shape over different symbols (repeated sub-models), grouped.

    Each group is ``(template, members, bindings)``: the template has placeholder symbols in place of
    each member's symbols (``bindings[m]``, in first-appearance order); evaluating the template once on
    gathered columns computes every member (one op per template node instead of one per member).
    Expressions with nets (each instance has its own net) or without symbols stay single."""
    found: dict = {}
    singles: list[int] = []
    for i, e in enumerate(exprs):
        if not e.free_symbols or e.has(NetCall):
            singles.append(i)
            continue
        order, seen = [], set()
        for node in sp.preorder_traversal(e):
            if isinstance(node, sp.Symbol) and node not in seen:
                seen.add(node)
                order.append(node)
        kinds = tuple(kind_of(s) for s in order)
        if None in kinds:
            singles.append(i)
            continue
        template = e.xreplace({s: sp.Symbol(f"_ph{k}", real=True) for k, s in enumerate(order)})
        key = (sp.srepr(template), kinds)
        entry = found.setdefault(key, (template, kinds, [], []))
        entry[2].append(i)
        entry[3].append(order)
    groups = []
    for template, kinds, members, bindings in found.values():
        if len(members) >= 2:
            groups.append((template, kinds, members, bindings))
        else:
            singles.extend(members)
    return groups, sorted(singles)


def _index(idx: list[int]):
    """A column selector: a slice when the indices are consecutive, else the index list."""
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return (Ellipsis, slice(idx[0], idx[0] + len(idx)))
    return (Ellipsis, idx)


def build_function(exprs: list[sp.Expr], groups: dict[str, list[sp.Symbol]], params: list[list[sp.Symbol]],
                   nets: list[str]) -> fx.GraphModule:
    """Compile ``exprs`` of the symbols in ``groups`` (x, u, z columns) to ``fn(t, x, u, z, params, nets)``."""
    graph = fx.Graph()
    t, x, u, z = (graph.placeholder(n) for n in ("t", "x", "u", "z"))
    p_node, nets_node = graph.placeholder("params"), graph.placeholder("nets")
    symbols: dict = {"t": t, T: t}
    columns: dict = {}
    for name, node in (("x", x), ("u", u), ("z", z)):
        for i, s in enumerate(groups.get(name, [])):
            symbols[s] = graph.call_function(operator.getitem, (node, (Ellipsis, i)))
            columns[s] = (node, i)
    pmap = {s: (i, j) for i, syms in enumerate(params) for j, s in enumerate(syms)}
    offsets, total = {}, 0
    for syms in params:
        for j, s in enumerate(syms):
            offsets[s] = total + j
        total += len(syms)
    em = _Emitter(graph, symbols, nets, pmap)
    em.p_node, em.nets_node, em.x_node, em.columns = p_node, nets_node, x, columns
    zero = graph.call_function(torch.zeros_like, (graph.call_function(operator.getitem, (x, (Ellipsis, 0))),))
    batch_syms = set(s for k in ("x", "u", "z") for s in groups.get(k, []))

    def kind_of(s):
        if s in columns:
            return {x: "x", u: "u", z: "z"}[columns[s][0]]
        if s in offsets:
            return "p"
        return "t" if s == T else None

    shaped, singles = _shape_groups(exprs, kind_of) if len(exprs) >= 4 else ([], list(range(len(exprs))))
    pieces: list = []  # (node [batch, k], expression indices)
    flat = None
    for template, kinds, members, bindings in shaped:
        saved_memo, em.memo = em.memo, {}
        for k, kind in enumerate(kinds):
            ph = sp.Symbol(f"_ph{k}", real=True)
            column = [b[k] for b in bindings]
            if kind in ("x", "u", "z"):
                node = columns[column[0]][0]
                em.symbols[ph] = graph.call_function(operator.getitem, (node, _index([columns[c][1] for c in column])))
            elif kind == "p":
                if flat is None:
                    flat = graph.call_function(_flat_params, (p_node,))
                em.symbols[ph] = graph.call_function(operator.getitem, (flat, _index([offsets[c] for c in column])))
            else:
                em.symbols[ph] = t
        node = em.emit(template)
        em.memo = saved_memo
        if not set(kinds) & {"x", "u", "z"} or not isinstance(node, fx.Node):
            node = graph.call_function(operator.add, (graph.call_function(operator.getitem, (zero, (Ellipsis, None))),
                                                      node))
        pieces.append((node, members))
    single_exprs = [exprs[i] for i in singles]
    replacements, reduced = sp.cse(single_exprs, symbols=sp.numbered_symbols("_cse"), optimizations=None)
    for sym, value in replacements:
        em.memo[sym] = em.emit(value)
    cols = []
    for original, e in zip(single_exprs, reduced):
        node = em.emit(e)
        if not (original.free_symbols & batch_syms) or not isinstance(node, fx.Node):
            node = graph.call_function(operator.add, (zero, node))
        cols.append(node)
    if not pieces:
        out = graph.call_function(torch.stack, (cols,), {"dim": -1}) if cols else \
            graph.call_function(torch.zeros, ((0,),))
    else:
        if cols:
            pieces.append((graph.call_function(torch.stack, (cols,), {"dim": -1}), singles))
        order = [i for _, members in pieces for i in members]
        out = graph.call_function(torch.cat, ([node for node, _ in pieces],), {"dim": -1})
        inverse = sorted(range(len(order)), key=order.__getitem__)
        if inverse != list(range(len(order))):
            out = graph.call_function(operator.getitem, (out, (Ellipsis, inverse)))
    graph.output(out)
    graph.eliminate_dead_code()  # e.g. a net's forward value when only its derivative is used
    graph.lint()
    return fx.GraphModule(torch.nn.Module(), graph)
