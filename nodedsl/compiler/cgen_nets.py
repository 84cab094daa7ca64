"""C code of the native generator: the scalar and array instructions, each with its forward and its adjoint.

A :class:`Code` collects instructions. Each appends its forward lines and, beside them, its adjoint lines;
the reverse pass of the field is the adjoint lines in reverse order. Values are C lvalues: scalar variables
``v12``, array elements ``a3[5]``, the inputs ``x[i]``, ``u[i]``, ``tt`` and the parameter vector ``P[i]``;
a Python float is a constant. The adjoint of a value is ``b_`` before its name (``b_x[1]``, ``b_P[4]``:
the caller's accumulators); inputs ``u`` and time ``tt`` and constants have none.

Nets (``nn.Sequential`` of ``Linear`` and activations) are array instructions: a dense layer reads the
transposed weights ``PT`` (an axpy per input, which gcc vectorizes without reassociating sums) and its
adjoint the row-major ``P``; :func:`mlp_forward` and :func:`mlp_gradient` write a net and its input gradient.

Example:
    >>> code = Code()
    >>> dot(code, [("x[0]", 2.0), ("x[1]", 1.0)])
    'v1'
    >>> code.fwd, code.adj
    (['real v1 = x[0] * ((real)2.0) + x[1];'], [['b_x[0] += b_v1 * ((real)2.0);', 'b_x[1] += b_v1;']])
"""

from __future__ import annotations

from collections.abc import Sequence

from .cgen_rules import Rule, activation_rule

Ref = str | float


class Unsupported(Exception):
    """The generator does not cover this model: the message is the fallback reason."""


def lit(r: Ref) -> str:
    """A value as C: a constant with the ``real`` type, a name as itself."""
    return r if isinstance(r, str) else f"((real){float(r)!r})"


def bar(r: Ref) -> str | None:
    """The adjoint of a value (None: a constant, an input ``u`` or the time)."""
    if not isinstance(r, str) or r.startswith(("u[", "tt")):
        return None
    return "b_" + r


class Code:
    """Instructions of one field: forward lines, adjoint lines per instruction, adjoint declarations."""

    def __init__(self) -> None:
        self.fwd: list[str] = []
        self.adj: list[list[str]] = []
        self.adecl: list[str] = []
        self.preamble: dict[str, str] = {}
        self.count = 0

    def name(self, prefix: str = "v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def add(self, fwd: list[str], adj: list[str]) -> None:
        self.fwd += fwd
        self.adj.append(adj)

    def scalar_var(self) -> str:
        y = self.name()
        self.adecl.append(f"real b_{y} = 0;")
        return y

    def array(self, n: int, prefix: str = "a") -> str:
        a = self.name(prefix)
        self.adecl.append(f"real b_{a}[{n}] = {{0}};")
        return a


def scalar(code: Code, rule: Rule, args: Sequence[Ref]) -> str:
    """One element-wise op: ``real v = forward;`` and its adjoint lines."""
    y = code.scalar_var()
    lits = [lit(a) for a in args]
    adj = []
    for a, tmpl in zip(args, rule.adjoints):
        target = bar(a)
        if tmpl is not None and target is not None:
            adj.append(f"{target} += {tmpl.format(*lits, g='b_' + y, y=y)};")
    code.add([f"real {y} = {rule.forward.format(*lits)};"], adj)
    return y


def _zero(r: Ref) -> bool:
    return isinstance(r, float) and r == 0.0


def _zero(r: Ref) -> bool:
    return isinstance(r, float) and r == 0.0


def dot(code: Code, pairs: Sequence[tuple[Ref, Ref]]) -> Ref:
    """``sum p * q`` (linear maps, sums, matmuls with constants); terms with a zero constant are dropped."""
    terms = [(p, q) for p, q in pairs if not (_zero(p) or _zero(q))]
    if not terms:
        return 0.0
    if len(terms) == 1 and isinstance(terms[0][1], float) and terms[0][1] == 1.0:
        return terms[0][0]
    y = code.scalar_var()
    text, adj = [], []
    for p, q in terms:
        if isinstance(q, float) and q == 1.0:
            text.append(lit(p))
        elif isinstance(p, float) and p == 1.0:
            text.append(lit(q))
        else:
            text.append(f"{lit(p)} * {lit(q)}")
        for a, other in ((p, q), (q, p)):
            if bar(a) is not None:
                scale = "" if isinstance(other, float) and other == 1.0 else f" * {lit(other)}"
                adj.append(f"{bar(a)} += b_{y}{scale};")
    code.add([f"real {y} = {' + '.join(text)};"], adj)
    return y


def gather(code: Code, refs: Sequence[Ref]) -> str:
    """An array of values (a net's input)."""
    a = code.array(len(refs))
    fwd = [f"real {a}[{len(refs)}];"] + [f"{a}[{i}] = {lit(r)};" for i, r in enumerate(refs)]
    adj = [f"{bar(r)} += b_{a}[{i}];" for i, r in enumerate(refs) if bar(r) is not None]
    code.add(fwd, adj)
    return a


def dense(code: Code, inp: str, nin: int, nout: int, woff: int, boff: int) -> str:
    """``z = W inp + b`` of a Linear layer; ``W`` (``nout x nin``, row-major) at ``P[woff]``, ``b`` at ``P[boff]``."""
    z = code.array(nout, "z")
    fwd = [
        f"real {z}[{nout}];",
        f"for (int j = 0; j < {nout}; j++) {z}[j] = P[{boff} + j];",
        f"for (int k = 0; k < {nin}; k++) {{ const real c = {inp}[k]; const real *w = PT + {woff} + k * {nout};",
        f"  for (int j = 0; j < {nout}; j++) {z}[j] += w[j] * c; }}",
    ]
    adj = [
        f"for (int j = 0; j < {nout}; j++) {{ const real g = b_{z}[j]; b_P[{boff} + j] += g;",
        f"  real *bw = b_P + {woff} + j * {nin}; const real *w = P + {woff} + j * {nin};",
        f"  for (int k = 0; k < {nin}; k++) {{ bw[k] += g * {inp}[k]; b_{inp}[k] += g * w[k]; }} }}",
    ]
    code.add(fwd, adj)
    return z


def dense_t(code: Code, c: str, nin: int, nout: int, woff: int) -> str:
    """``W^T c`` (the backward of a Linear layer inside a net's gradient), length ``nin``."""
    o = code.array(nin, "g")
    fwd = [
        f"real {o}[{nin}] = {{0}};",
        f"for (int j = 0; j < {nout}; j++) {{ const real cj = {c}[j]; const real *w = P + {woff} + j * {nin};",
        f"  for (int k = 0; k < {nin}; k++) {o}[k] += w[k] * cj; }}",
    ]
    adj = [  # two axpy loops (b_c through the transposed weights): no sum for gcc to reassociate
        f"for (int j = 0; j < {nout}; j++) {{ const real cj = {c}[j]; real *bw = b_P + {woff} + j * {nin};",
        f"  for (int k = 0; k < {nin}; k++) bw[k] += cj * b_{o}[k]; }}",
        f"for (int k = 0; k < {nin}; k++) {{ const real bo = b_{o}[k]; const real *w = PT + {woff} + k * {nout};",
        f"  for (int j = 0; j < {nout}; j++) b_{c}[j] += w[j] * bo; }}",
    ]
    code.add(fwd, adj)
    return o


def act(code: Code, z: str, n: int, name: str) -> str:
    a = code.array(n)
    code.add(
        [f"real {a}[{n}];", f"for (int i = 0; i < {n}; i++) {a}[i] = act_{name}({z}[i]);"],
        [f"for (int i = 0; i < {n}; i++) b_{z}[i] += b_{a}[i] * d1_{name}({z}[i], {a}[i]);"],
    )
    return a


def dact(code: Code, z: str, a: str, n: int, name: str) -> str:
    """``act'(z)``; its adjoint is ``act''(z)`` (``a = act(z)`` is a cached value, not differentiated)."""
    d = code.array(n, "d")
    code.add(
        [f"real {d}[{n}];", f"for (int i = 0; i < {n}; i++) {d}[i] = d1_{name}({z}[i], {a}[i]);"],
        [f"for (int i = 0; i < {n}; i++) b_{z}[i] += b_{d}[i] * d2_{name}({z}[i], {a}[i]);"],
    )
    return d


def mul(code: Code, p: str, q: str, n: int) -> str:
    o = code.array(n, "m")
    code.add(
        [f"real {o}[{n}];", f"for (int i = 0; i < {n}; i++) {o}[i] = {p}[i] * {q}[i];"],
        [f"for (int i = 0; i < {n}; i++) {{ b_{p}[i] += b_{o}[i] * {q}[i]; b_{q}[i] += b_{o}[i] * {p}[i]; }}"],
    )
    return o


def net_layers(net, offsets: list[tuple[int, int]]) -> list[tuple]:
    """``("dense", nin, nout, woff, boff)`` / ``("act", name)`` per layer (raises Unsupported)."""
    import torch

    if not isinstance(net, torch.nn.Sequential):
        raise Unsupported(f"net of type {type(net).__name__} has no native rule")
    out, dense_i = [], 0
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            woff, boff = offsets[dense_i]
            dense_i += 1
            out.append(("dense", layer.in_features, layer.out_features, woff, boff))
            continue
        rule = activation_rule(layer)
        if rule is None:
            raise Unsupported(f"activation {layer!r} has no native rule")
        out.append(("act", rule))
    return out


def mlp_forward(code: Code, layers: list[tuple], refs: Sequence[Ref], output: bool = True) -> tuple[str, list]:
    """A net's output array, and per layer ``(layer, input array, output array, width)``; ``output=False``
    leaves out a last Linear layer (a net's gradient needs only the activations' inputs)."""
    h = gather(code, refs)
    width = len(refs)
    trace = []
    for i, layer in enumerate(layers):
        if layer[0] == "dense":
            _, nin, nout, woff, boff = layer
            if nin != width:
                raise Unsupported(f"net input of width {width}, Linear layer of {nin}")
            if not output and i == len(layers) - 1:
                trace.append((layer, h, "", nout))
                break
            out = dense(code, h, nin, nout, woff, boff)
            width = nout
        else:
            preamble, name = layer[1]
            code.preamble[name] = preamble
            out = act(code, h, width, name)
        trace.append((layer, h, out, width))
        h = out
    return h, trace


def mlp_gradient(code: Code, layers: list[tuple], refs: Sequence[Ref], k: int) -> str:
    """``d net(inp)[k] / d inp`` as forward code (the net's forward pass, then its backward from ``e_k``),
    so the reverse pass differentiates it again: a Hessian-vector product, with ``act''``."""
    _, trace = mlp_forward(code, layers, refs, output=False)
    width = trace[-1][3]
    c = code.array(width, "e")
    code.add([f"real {c}[{width}] = {{0}};", f"{c}[{k}] = 1;"], [])
    for layer, h, out, width in reversed(trace):
        if layer[0] == "dense":
            _, nin, nout, woff, _ = layer
            c = dense_t(code, c, nin, nout, woff)
        else:
            d = dact(code, h, out, width, layer[1][1])
            c = mul(code, c, d, width)
    return c
