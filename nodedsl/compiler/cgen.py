"""Native code for a compiled model's field: plain C for ``f(t, x, u)`` and its vector-Jacobian product.

The field's fx graph is interpreted once per model with every value a numpy array of C scalars (per
sample: the batch dimension is the C loop around the field, so shapes here are per-sample and static).
Indexing, slicing, ``stack``, ``cat``, ``index_select``, reshapes and broadcasting are index bookkeeping
in Python and emit nothing; each element-wise op emits one scalar instruction (its rule in
:mod:`nodedsl.compiler.cgen_rules`), matmuls with constant matrices and scatter sums emit dot products,
and nets emit array loops (:mod:`nodedsl.compiler.cgen_nets`). An op without a rule raises
:class:`Unsupported` with the reason ``op X has no native rule``; the caller falls back to eager.

Parameters reach C as one flat vector ``P`` (:func:`param_vector`): the known vector, the learned values
after their reparametrization, then each net's Linear weights (row-major) and biases. Its gradient flows
back through torch (the ``cat``, the reparametrization), so C sees no softplus of a positive parameter.

Example:
    >>> import nodedsl
    >>> m = nodedsl.loads("model M { state x = 1\\n param k = 2 learn\\n der(x) = -k*x }").model("M")
    >>> fc = field_code(m)
    >>> (fc.n_state, fc.n_input, fc.n_param), "nd_field_vjp" in fc.source
    ((1, 0, 1), True)
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx

from . import ops
from .cgen_nets import Code, Unsupported, dot, mlp_forward, mlp_gradient, net_layers, scalar
from .cgen_rules import RULES, power_rule

__all__ = ["FieldCode", "Unsupported", "field_code", "param_vector"]


@dataclass(frozen=True)
class FieldCode:
    """The C source of ``nd_prep``, ``nd_field`` and ``nd_field_vjp`` and its sizes."""

    source: str
    n_state: int
    n_input: int
    n_param: int


def _net_params(model) -> list[torch.nn.Linear]:
    return [layer for net in model._nets() for layer in net if isinstance(layer, torch.nn.Linear)]


def param_vector(model) -> torch.Tensor:
    """The flat parameter vector ``P`` of the generated code (differentiable: its gradient reaches the
    learned parameters and the nets' weights through torch).

    Example:
        >>> import nodedsl
        >>> m = nodedsl.loads("model M { state x = 1\\n param k = 2 learn\\n der(x) = -k*x }").model("M")
        >>> param_vector(m).tolist()
        [2.0]
    """
    known, learned = model._pargs()
    pieces = [known.reshape(-1), *(v.reshape(-1) for v in learned)]
    for layer in _net_params(model):
        pieces += [layer.weight.reshape(-1), layer.bias.reshape(-1)]
    return torch.cat(pieces)


class _Net:
    """A net of the graph's ``nets`` tuple: its layers as generator instructions."""

    def __init__(self, module, layers):
        self.module, self.layers = module, layers


def _layout(model) -> tuple[tuple, tuple, list[tuple[int, int, int]], int]:
    """(params value, nets value, dense blocks ``(woff, nout, nin)``, size of P)."""
    known, learned = model._pargs()
    off = known.numel()
    kv = np.array([f"P[{i}]" for i in range(off)], dtype=object).reshape(known.shape)
    lv = []
    for v in learned:
        lv.append(np.array([f"P[{off + i}]" for i in range(v.numel())], dtype=object).reshape(v.shape))
        off += v.numel()
    nets, blocks = [], []
    for net in model._nets():
        offsets = []
        for layer in net if isinstance(net, torch.nn.Sequential) else ():
            if isinstance(layer, torch.nn.Linear):
                offsets.append((off, off + layer.weight.numel()))
                blocks.append((off, layer.out_features, layer.in_features))
                off += layer.weight.numel() + layer.bias.numel()
        nets.append(_Net(net, net_layers(net, offsets)))
    return (kv, tuple(lv)), tuple(nets), blocks, off


def _real_shapes(model, gm) -> dict[str, tuple]:
    """Each node's torch shape on a batch of 3 (to check the per-sample bookkeeping against torch)."""
    shapes: dict[str, tuple] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                shapes[n.name] = tuple(out.shape)
            return out

    dtype = model.x0_default.dtype
    x = model.x0_default.expand(3, -1).clone() + 0.1
    u = model.u_default.expand(3, -1).clone()
    with torch.no_grad():
        Recorder(gm).run(torch.full((3,), 0.5, dtype=dtype), x, u, x, model._pargs(), model._nets())
    return shapes


def _arr(v) -> np.ndarray:
    """A value as an object array of C scalars (Python numbers become float constants)."""
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, str):
        return np.array(v, dtype=object)
    if isinstance(v, bool | int | float):
        return np.array(float(v), dtype=object)
    raise Unsupported(f"value of type {type(v).__name__} in an element-wise op has no native rule")


def _dim(d: int, batched: bool) -> int:
    """A torch dimension as a per-sample one (the batch is dimension 0 of batched values)."""
    if d >= 0 and batched:
        if d == 0:
            raise Unsupported("an op over the batch dimension has no native rule")
        return d - 1
    return d


class _Interp:
    """Interpret the field's graph with C scalars (see the module docstring)."""

    def __init__(self, model, code: Code):
        self.model, self.code = model, code
        self.gm = model._field
        self.params, self.nets, self.blocks, self.n_param = _layout(model)
        self.shapes = _real_shapes(model, self.gm)
        self.batched: set[str] = set()  # nodes with a batch dimension (they depend on t, x, u or z)
        self.batched_flag = False  # whether the node being interpreted is batched

    def run(self) -> np.ndarray:
        n, m = len(self.model.state_names), self.model.u_default.numel()
        xs = np.array([f"x[{i}]" for i in range(n)], dtype=object)
        inputs = {
            "t": np.array("tt", dtype=object),
            "x": xs,
            "z": xs,
            "u": np.array([f"u[{i}]" for i in range(m)], dtype=object),
            "params": self.params,
            "nets": self.nets,
        }
        env: dict = {}
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                env[node.name] = inputs[node.target]
                if node.target in ("t", "x", "z", "u"):
                    self.batched.add(node.name)
                continue
            if node.op == "output":
                out = torch.fx.node.map_arg(node.args[0], lambda a: env[a.name])
                return np.asarray(_arr(out)).reshape(-1)
            deps = node.all_input_nodes[:1] if node.target is ops.like else node.all_input_nodes  # like: its constant
            self.batched_flag = any(a.name in self.batched for a in deps)
            if self.batched_flag:
                self.batched.add(node.name)
            args = torch.fx.node.map_arg(node.args, lambda a: env[a.name])
            kwargs = torch.fx.node.map_arg(node.kwargs, lambda a: env[a.name])
            if node.op == "get_attr":
                value = self._constant(getattr(self.gm, node.target))
            elif node.op == "call_method" and node.target == "squeeze":
                value = args[0]  # reshaped to torch's shape below
            elif node.op == "call_function":
                value = self.call(node.target, args, kwargs)
            else:
                raise Unsupported(f"op {node.op} {node.target} has no native rule")
            env[node.name] = self._check(node, value)
        raise Unsupported("the field's graph has no output")

    def _check(self, node, value):
        """Give array values torch's per-sample shape (the same elements in the same order)."""
        if not isinstance(value, np.ndarray) or node.name not in self.shapes:
            return value
        want = self.shapes[node.name][1:] if node.name in self.batched else self.shapes[node.name]
        if value.shape != want:
            if value.size != math.prod(want):
                raise Unsupported(f"op {node.target} at {node.name}: shape {value.shape}, torch has {want}")
            value = value.reshape(want)
        return value

    @staticmethod
    def _constant(t: torch.Tensor) -> np.ndarray:
        if t.is_floating_point():
            return np.array([float(v) for v in t.detach().reshape(-1).tolist()], dtype=object).reshape(t.shape)
        return t.detach().cpu().numpy()

    def elementwise(self, rule, args) -> np.ndarray:
        parts = np.broadcast_arrays(*[_arr(a) for a in args])
        out = np.empty(parts[0].shape, dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = scalar(self.code, rule, [p[idx] for p in parts])
        return out

    def call(self, target, args, kwargs):
        if target is operator.pow and not isinstance(args[1], np.ndarray):
            return self.elementwise(power_rule(float(args[1])), args[:1])
        if target in RULES:
            if kwargs:
                raise Unsupported(f"op {getattr(target, '__name__', target)} with {sorted(kwargs)} has no native rule")
            return self.elementwise(RULES[target], args)
        handler = _STRUCTURAL.get(target)
        if handler is None:
            raise Unsupported(f"op {getattr(target, '__name__', str(target))} has no native rule")
        return handler(self, *args, **kwargs)


def _getitem(it: _Interp, obj, idx):
    if isinstance(obj, tuple | list):
        return obj[idx]
    if not isinstance(obj, np.ndarray):
        raise Unsupported(f"indexing a {type(obj).__name__} has no native rule")
    if it.batched_flag:
        if idx is Ellipsis:
            return obj
        if not (isinstance(idx, tuple) and idx and idx[0] is Ellipsis):
            raise Unsupported("indexing the batch dimension has no native rule")
    return obj[idx]


def _stack(it: _Interp, values, dim: int = 0):
    return np.stack([_arr(v) for v in values], axis=_dim(dim, it.batched_flag))


def _cat(it: _Interp, values, dim: int = 0):
    return np.concatenate([_arr(v) for v in values], axis=_dim(dim, it.batched_flag))


def _index_select(it: _Interp, value, dim: int, index):
    return np.take(value, np.asarray(index, dtype=np.int64), axis=_dim(dim, it.batched_flag))


def _matmul(it: _Interp, a, b):
    a, b = _arr(a), _arr(b)
    if a.ndim == 1 and b.ndim == 2:
        return np.array([dot(it.code, list(zip(a, b[:, j]))) for j in range(b.shape[1])], dtype=object)
    if a.ndim == 2 and b.ndim == 1:
        return np.array([dot(it.code, list(zip(a[i], b))) for i in range(a.shape[0])], dtype=object)
    if a.ndim == 2 and b.ndim == 2:
        rows = [[dot(it.code, list(zip(a[i], b[:, j]))) for j in range(b.shape[1])] for i in range(a.shape[0])]
        return np.array(rows, dtype=object)
    raise Unsupported(f"matmul of per-sample shapes {a.shape} and {b.shape} has no native rule")


def _zeros_cols(it: _Interp, ref, n: int):
    return np.full(_arr(ref).shape[:-1] + (n,), 0.0, dtype=object)


def _zeros_like(it: _Interp, ref, **kwargs):
    return np.full(_arr(ref).shape, 0.0, dtype=object)


def _stack_args(it: _Interp, ref, *cols):
    return np.stack(np.broadcast_arrays(*[_arr(c) for c in cols]), axis=-1)


def _scatter_cols(it: _Interp, ref, values, index, n: int):
    values = _arr(values)
    index = np.asarray(index, dtype=np.int64)
    out = np.full(values.shape[:-1] + (n,), 0.0, dtype=object)
    for lead in np.ndindex(values.shape[:-1]):
        for col in range(n):
            terms = [(values[lead + (k,)], 1.0) for k in range(len(index)) if index[k] == col]
            out[lead + (col,)] = dot(it.code, terms)
    return out


def _net_value(it: _Interp, net, inp):
    if not isinstance(net, _Net):
        raise Unsupported("a net call on something else than a net of the model has no native rule")
    refs = list(_arr(inp).reshape(-1))
    return refs


def _apply(it: _Interp, net, inp):
    refs = _net_value(it, net, inp)
    out, trace = mlp_forward(it.code, net.layers, refs)
    width = trace[-1][3] if trace else len(refs)
    return np.array([f"{out}[{i}]" for i in range(width)], dtype=object)


def _mlp_grad(it: _Interp, net, inp, k: int):
    refs = _net_value(it, net, inp)
    g = mlp_gradient(it.code, net.layers, refs, int(k))
    return np.array([f"{g}[{i}]" for i in range(len(refs))], dtype=object).reshape(_arr(inp).shape)


def _split(it: _Interp, value, size, dim: int = 0):
    axis = _dim(dim, it.batched_flag)
    n = value.shape[axis]
    sizes = [size] * (n // size) + ([n % size] if n % size else []) if isinstance(size, int) else list(size)
    cuts = np.cumsum(sizes)[:-1]
    return tuple(np.split(value, cuts, axis=axis))


def _as_is(it: _Interp, value, *args, **kwargs):
    return _arr(value)  # reshaped to torch's per-sample shape by _Interp._check (C order, like torch)


def _transpose(it: _Interp, value, d0: int, d1: int):
    return np.swapaxes(_arr(value), _dim(d0, it.batched_flag), _dim(d1, it.batched_flag))


def _put(it: _Interp, base, index, values):
    out = _arr(base).copy()
    out[np.asarray(index, dtype=np.int64)] = _arr(values)
    return out


def _matrix(it: _Interp, base, index, *values):
    return _put(it, base, index, np.stack([_arr(v) for v in values]))


def _matrix_times(it: _Interp, block, a, m: int, before: int, after: int):
    a = _arr(a)
    prod = _matmul(it, a, _arr(block).reshape(a.shape[1], m)).reshape(-1)
    return np.concatenate([np.full(before, 0.0, dtype=object), prod, np.full(after, 0.0, dtype=object)])


_STRUCTURAL = {
    ops.put: _put,
    ops.matrix: _matrix,
    ops.matrix_times: _matrix_times,
    operator.getitem: _getitem,
    torch.stack: _stack,
    torch.cat: _cat,
    torch.index_select: _index_select,
    torch.matmul: _matmul,
    ops.like: lambda it, c, ref: c,
    ops.const: lambda it, ref, c: np.array(float(c), dtype=object),
    ops.zeros_cols: _zeros_cols,
    torch.zeros_like: _zeros_like,
    ops.stack_args: _stack_args,
    ops.scatter_cols: _scatter_cols,
    ops.apply: _apply,
    ops.mlp_grad: _mlp_grad,
    ops.net_grad: _mlp_grad,  # a net with every layer ruled (net_layers checks): the same closed form
    torch.split: _split,
    torch.flatten: _as_is,
    torch.reshape: _as_is,
    torch.transpose: _transpose,
}


def _prep(blocks: list[tuple[int, int, int]], n_param: int) -> str:
    """``nd_prep(P, PT)``: ``PT`` is ``P`` with every Linear weight transposed (the forward's layout)."""
    lines = ["static void nd_prep(const real *restrict P, real *restrict PT) {"]
    lines.append(f"  for (int i = 0; i < {n_param}; i++) PT[i] = P[i];")
    for woff, nout, nin in blocks:
        lines.append(
            f"  for (int j = 0; j < {nout}; j++) for (int k = 0; k < {nin}; k++) "
            f"PT[{woff} + k * {nout} + j] = P[{woff} + j * {nin} + k];"
        )
    return "\n".join(lines + ["}"])


def field_code(model) -> FieldCode:
    """The C code of ``model``'s field and its VJP (raises :class:`Unsupported` with the fallback reason)."""
    code = Code()
    it = _Interp(model, code)
    out = it.run()
    n, m = len(model.state_names), model.u_default.numel()
    if out.shape != (n,):
        raise Unsupported(f"the field's output has per-sample shape {out.shape}, not ({n},)")
    sig = "real tt, const real *restrict x, const real *restrict u, const real *restrict P, const real *restrict PT"
    body = ["  " + line for line in code.fwd]
    field = [f"static void nd_field({sig}, real *restrict out) {{", *body]
    field += [f"  out[{i}] = {r if isinstance(r, str) else f'((real){float(r)!r})'};" for i, r in enumerate(out)]
    vjp = [f"static void nd_field_vjp({sig}, const real *restrict g, real *restrict b_x, real *restrict b_P) {{"]
    vjp += body + ["  " + line for line in code.adecl]
    vjp += [f"  b_{r} += g[{i}];" for i, r in enumerate(out) if isinstance(r, str) and not r.startswith(("u[", "tt"))]
    for lines in reversed(code.adj):
        vjp += ["  " + line for line in lines]
    source = "\n".join(
        [*code.preamble.values(), _prep(it.blocks, it.n_param), *field, "}", *vjp, "  (void)tt; (void)u;", "}", ""]
    )
    return FieldCode(source, n, m, it.n_param)
