"""Lowering: a checked model (and its sub-models) to one flat SymPy :class:`System`.

Every expression is built with SymPy constructors from the AST (never from strings). Vectors are
flattened into components named ``q[0]``; sub-model members keep dotted names (``left.q``).
Port-Hamiltonian models get ``dx/dt = (J - R) grad H + G u`` with ``grad H`` from ``sympy.diff``.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> prog, _ = check_source(source_from_text("model M { state x = 1\\n param k = 2\\n der(x) = -k*x }", "m"))
    >>> lower(prog.model("M")).rhs
    [-k*x]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sympy as sp

from ..core.diagnostics import Collector, Span
from ..frontend import ast
from ..frontend.check import ModelInfo, domain_sizes, flat_names
from ..frontend.netspec import NetSpec, net_spec
from ..frontend.shapes import CONSTANTS, constant_value
from .functions import Val, net_function, psd_matrix, skew_matrix, zip_vals
from .noise import NoiseSym, lower_noise_decl, renamed_noise, system_noise

T = sp.Symbol("t", real=True)


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


_UNARY = {
    "sin": sp.sin,
    "cos": sp.cos,
    "tan": sp.tan,
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sigmoid": sigmoid,
    "softplus": softplus,
    "abs": sp.Abs,
    "sign": sp.sign,
}


@dataclass
class ParamSym:
    """A parameter: component symbols, initial value, and how it is trained (None: known)."""

    name: str
    shape: tuple[int, ...]
    symbols: list[sp.Symbol]
    value: list[float]
    learn: str | None = None  # free | positive | interval | skew
    low: float | None = None
    high: float | None = None


@dataclass
class ConstraintSym:
    name: str
    kind: str  # eq | ineq  (residual == 0, or residual <= 0)
    residual: list[sp.Expr]
    domains: list[tuple[str, list[sp.Symbol], float, float]]
    weight: float
    uses_state: bool
    span: Span


@dataclass
class PortSym:
    name: str
    inputs: list[sp.Symbol]
    G: sp.Matrix  # n_states x size
    output: list[sp.Expr] = field(default_factory=list)  # y = G^T grad H


@dataclass
class PHParts:
    """Port-Hamiltonian structure of an instance: H, grad H, free ports, and the pieces of J and R."""

    H: sp.Expr
    grad: list[sp.Expr]
    ports: list[PortSym]  # free ports (not coupled)
    dissipation: sp.Expr  # grad H^T R grad H
    x: list[sp.Symbol]
    own_J: sp.Matrix
    own_R: sp.Matrix
    subs: list[PHParts]
    couplings: list[tuple[list[str], sp.Matrix]]
    own_ports: list[PortSym] = field(default_factory=list)  # declared here, coupled or not (for assemble)

    def assemble(self) -> tuple[sp.Matrix, sp.Matrix, dict[str, sp.Matrix]]:
        """The composite J (with G C G^T terms), R and every port's G over all states (dense; for display
        and tests of small systems: the compiler never needs them)."""
        n, k = len(self.x), self.own_J.rows
        J, R = sp.zeros(n, n), sp.zeros(n, n)
        J[:k, :k], R[:k, :k] = self.own_J, self.own_R
        gs: dict[str, sp.Matrix] = {}
        for p in self.own_ports:
            gs[p.name] = p.G.col_join(sp.zeros(n - k, p.G.cols))
        offset = k
        for sub in self.subs:
            sj, sr, sg = sub.assemble()
            m = len(sub.x)
            J[offset : offset + m, offset : offset + m] = sj
            R[offset : offset + m, offset : offset + m] = sr
            for name, G in sg.items():
                gs[name] = sp.zeros(offset, G.cols).col_join(G).col_join(sp.zeros(n - offset - m, G.cols))
            offset += m
        for names, C in self.couplings:
            Gc = sp.Matrix.hstack(*[gs[nm] for nm in names])
            J += Gc * C * Gc.T
        return J, R, gs

    @property
    def J(self) -> sp.Matrix:
        return self.assemble()[0]

    @property
    def R(self) -> sp.Matrix:
        return self.assemble()[1]


@dataclass
class Staged:
    """A coupled port-Hamiltonian composite before ``u = C y`` is substituted (what the compiler vectorizes).

    ``rhs`` is the field with the coupled port inputs ``inputs`` still free; ``outputs`` are the
    coupled ports' ``y``; ``entries`` are the nonzero ``(row, column, coefficient)`` of the block
    diagonal map ``inputs = M outputs`` gathered from every ``couple`` of the tree."""

    rhs: list[sp.Expr]
    inputs: list[sp.Symbol]
    outputs: list[sp.Expr]
    entries: list[tuple[int, int, sp.Expr]]


@dataclass
class System:
    """A flat system of ODEs in SymPy, ready for the compiler and for ``show``."""

    name: str
    states: list[sp.Symbol]
    x0: list[float]
    inputs: list[sp.Symbol]
    u0: list[float]
    params: list[ParamSym]
    nets: dict[str, NetSpec]
    rhs: list[sp.Expr]
    outputs: list[sp.Expr]
    output_names: list[str]
    constraints: list[ConstraintSym]
    ph: PHParts | None = None
    symplectic_split: int | None = None
    staged: Staged | None = None
    noise: NoiseSym | None = None  # the diffusion of an SDE model (symbolic/noise.py)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]


def _num(v: float) -> sp.Expr:
    return sp.Integer(int(v)) if float(v).is_integer() and abs(v) < 1e15 else sp.Float(v)


def _flat(value, n: int) -> list[float]:
    """A constant (scalar broadcast, vector, or nested list) as n floats."""
    if isinstance(value, list):
        out = []
        for v in value:
            out.extend(_flat(v, 1) if not isinstance(v, list) else _flat(v, len(v)))
        return out
    return [float(value)] * n


class _Instance:
    """One model instance under a name prefix; sub-model instances nest."""

    def __init__(
        self,
        info: ModelInfo,
        prefix: str,
        overrides: dict[str, object],
        diags: Collector,
        shallow: bool = False,
        cache: dict | None = None,
    ):
        self.info, self.prefix, self.d = info, prefix, diags
        self.cache = {} if cache is None else cache
        self.env: dict[str, Val] = {}
        self.params: list[ParamSym] = []
        self.nets: dict[str, NetSpec] = {}
        self.subs: dict[str, _Instance] = {}
        self.states: list[sp.Symbol] = []
        self.x0: list[float] = []
        self.inputs: list[sp.Symbol] = []
        self.u0: list[float] = []
        self.rhs: dict[sp.Symbol, sp.Expr] = {}
        self.ph: PHParts | None = None
        self.rhs_open: dict[sp.Symbol, sp.Expr] = {}  # pH: rhs with coupled port inputs left free
        self.coupled: list[tuple[list[sp.Symbol], list[sp.Expr], sp.Matrix]] = []  # (u, y, C) of each couple
        self.constraints: list[ConstraintSym] = []
        self._build(overrides, shallow)

    # ---------------------------------------------------------------- sub-model instances
    def _sub_instance(self, info: ModelInfo, overrides: dict, prefix: str) -> _Instance:
        """A sub-model instance: lowered once per (model, overrides) and renamed for each use.

        Renaming is an ``xreplace`` of symbols and net calls, far cheaper than lowering again
        (``sympy.diff`` of H, matrix products), which keeps chains of many instances linear and fast."""
        key = (info.file, info.name, repr(sorted(overrides.items())))
        if key not in self.cache:
            self.cache[key] = _Instance(info, "", overrides, self.d, cache=self.cache)
        return _renamed(self.cache[key], prefix)

    # ---------------------------------------------------------------- naming
    def sym(self, name: str) -> sp.Symbol:
        return sp.Symbol(self.prefix + name, real=True)

    def declare_symbols(self, name: str, shape) -> Val:
        comps = flat_names(name, shape)
        return Val(shape, tuple(self.sym(c) for c in comps))

    # ---------------------------------------------------------------- expressions
    def expr(self, e: ast.Expr, scope: dict[str, Val] | None = None) -> Val:
        scope = scope or {}
        if isinstance(e, ast.Num):
            return Val.scalar(_num(e.value))
        if isinstance(e, ast.Name):
            return self.name(e, scope)
        if isinstance(e, ast.Neg):
            return self.expr(e.operand, scope).map(lambda x: -x)
        if isinstance(e, ast.BinOp):
            a, b = self.expr(e.left, scope), self.expr(e.right, scope)
            if e.op == "@":
                return self.matmul(a, b)
            fn = {
                "+": lambda x, y: x + y,
                "-": lambda x, y: x - y,
                "*": lambda x, y: x * y,
                "/": lambda x, y: x / y,
                "^": lambda x, y: x**y,
            }[e.op]
            return zip_vals(fn, a, b)
        if isinstance(e, ast.Array):
            items = [self.expr(i, scope) for i in e.items]
            if all(v.shape == () for v in items):
                return Val((len(items),), tuple(v.expr for v in items))
            return Val((len(items), items[0].shape[0]), tuple(x for v in items for x in v.items))
        if isinstance(e, ast.Index):
            target = self.expr(e.target, scope)
            i = int(constant_value(e.index))
            if len(target.shape) == 1:
                return Val.scalar(target.items[i])
            width = target.shape[1]
            return Val((width,), target.items[i * width : (i + 1) * width])
        if isinstance(e, ast.Call):
            return self.call(e, scope)
        raise AssertionError(f"unchecked expression {e!r}")

    @staticmethod
    def matmul(a: Val, b: Val) -> Val:
        if len(a.shape) == 1 and len(b.shape) == 1:
            return Val.scalar(sp.Add(*[x * y for x, y in zip(a.items, b.items)]))
        ma = a.matrix().T if len(a.shape) == 1 else a.matrix()
        prod = ma * b.matrix()
        return Val.from_matrix(prod, vector=len(a.shape) == 1 or len(b.shape) == 1)

    def name(self, e: ast.Name, scope) -> Val:
        if len(e.parts) == 1:
            n = e.parts[0]
            if n in scope:
                return scope[n]
            if n in self.env:
                return self.env[n]
            if n == "t":
                return Val.scalar(T)
            if n in CONSTANTS:
                return Val.scalar(sp.pi)
        inst = self
        for part in e.parts[:-1]:
            inst = inst.subs[part]
        return inst.env[e.parts[-1]]

    def call(self, e: ast.Call, scope) -> Val:
        fname = e.func.dotted
        args = [self.expr(a, scope) for a in e.args]
        member = self.info.members.get(fname)
        if member is not None and member.kind == "net":
            spec = self.nets[self.prefix + fname]
            flat = [x for a in args for x in a.items]
            outs = tuple(net_function(self.prefix + fname, k, multi=spec.out > 1)(*flat) for k in range(spec.out))
            return Val.scalar(outs[0]) if spec.out == 1 else Val((spec.out,), outs)
        if fname in _UNARY:
            return args[0].map(_UNARY[fname])
        if fname == "min":
            return zip_vals(sp.Min, *args)
        if fname == "max":
            return zip_vals(sp.Max, *args)
        if fname == "clip":
            return zip_vals(lambda x, lo, hi: sp.Min(sp.Max(x, lo), hi), *args)
        if fname == "dot":
            return Val.scalar(sp.Add(*[x * y for x, y in zip(args[0].items, args[1].items)]))
        if fname == "norm":
            return Val.scalar(sp.sqrt(sp.Add(*[x**2 for x in args[0].items])))
        if fname == "transpose":
            return Val.from_matrix(args[0].matrix().T)
        if fname == "solve":
            sol = args[0].matrix().LUsolve(args[1].matrix())
            return Val.from_matrix(sol, vector=len(args[1].shape) == 1)
        if fname == "skew":
            return Val.from_matrix(skew_matrix(list(args[0].items)))
        if fname == "psd":
            return Val.from_matrix(psd_matrix(list(args[0].items)))
        if fname == "diag":
            return Val.from_matrix(sp.diag(*args[0].items))
        raise AssertionError(f"unchecked call {fname}")

    # ---------------------------------------------------------------- declarations
    def _build(self, overrides: dict[str, object], shallow: bool = False) -> None:
        info, m = self.info, self.info.model
        for decl in m.body:  # subs first: members of subs may be used anywhere
            if isinstance(decl, ast.Sub) and not shallow:
                ov = {o.name: constant_value(o.expr) for o in decl.overrides}
                self.subs[decl.name] = self._sub_instance(info.subs[decl.name], ov, f"{self.prefix}{decl.name}.")
        for decl in m.body:
            if isinstance(decl, ast.State):
                shape = info.members[decl.name].shape
                val = self.declare_symbols(decl.name, shape)
                self.env[decl.name] = val
                init = overrides.get(decl.name, constant_value(decl.init) if decl.init is not None else 0.0)
                self.states += list(val.items)
                self.x0 += _flat(init, len(val.items))
            elif isinstance(decl, ast.Input):
                val = self.declare_symbols(decl.name, info.members[decl.name].shape)
                self.env[decl.name] = val
                self.inputs += list(val.items)
                default = overrides.get(decl.name, constant_value(decl.default) if decl.default else 0.0)
                self.u0 += _flat(default, len(val.items))
            elif isinstance(decl, ast.Param):
                shape = info.members[decl.name].shape
                val = self.declare_symbols(decl.name, shape)
                self.env[decl.name] = val
                value = _flat(overrides.get(decl.name, constant_value(decl.value)), len(val.items))
                p = ParamSym(self.prefix + decl.name, shape, list(val.items), value)
                if decl.learn is not None:
                    p.learn = decl.learn.kind
                    if decl.learn.kind == "interval":
                        p.low, p.high = constant_value(decl.learn.low), constant_value(decl.learn.high)
                self.params.append(p)
            elif isinstance(decl, ast.Net):
                self.nets[self.prefix + decl.name] = net_spec(decl)
        if shallow:
            for decl in m.decls(ast.Let):
                self.env[decl.name] = self.expr(decl.expr)
            return
        for decl in m.body:
            if isinstance(decl, (ast.Let, ast.Output)):
                self.env[decl.name] = self.expr(decl.expr)
            elif isinstance(decl, ast.Der):
                for s, e in zip(
                    self.env[decl.state].items,
                    zip_vals(lambda x, _: x, self.expr(decl.expr), self.env[decl.state]).items,
                ):
                    self.rhs[s] = e
            elif isinstance(decl, ast.Constraint):
                self._constraint(decl)
            elif isinstance(decl, ast.Noise):
                lower_noise_decl(self, decl)
        if info.is_ph:
            self._port_hamiltonian()

    def _constraint(self, decl: ast.Constraint) -> None:
        scope, domains = {}, []
        for dom in decl.domains:
            size = max(domain_sizes(self.info.members, decl, dom.var) or {1})
            shape = () if size == 1 else (size,)
            val = Val(shape, tuple(sp.Symbol(f"{self.prefix}{n}", real=True) for n in flat_names(dom.var, shape)))
            scope[dom.var] = val
            domains.append((dom.var, list(val.items), float(constant_value(dom.low)), float(constant_value(dom.high))))
        lhs, rhs = self.expr(decl.lhs, scope), self.expr(decl.rhs, scope)
        diff = zip_vals(lambda a, b: a - b, lhs, rhs) if decl.op != ">=" else zip_vals(lambda a, b: b - a, lhs, rhs)
        free = set().union(*(e.free_symbols for e in diff.items))
        index = len(self.constraints) + 1
        name = self.prefix + (decl.name or f"constraint{index}")
        weight = float(constant_value(decl.weight)) if decl.weight is not None else 1.0
        self.constraints.append(
            ConstraintSym(
                name,
                "eq" if decl.op == "==" else "ineq",
                list(diff.items),
                domains,
                weight,
                bool(free & (set(self.all_states()) | set(self.inputs))),
                decl.span,
            )
        )

    def all_states(self) -> list[sp.Symbol]:
        out = list(self.states)
        for sub in self.subs.values():
            out += sub.all_states()
        return out

    def _port_hamiltonian(self) -> None:
        """dx/dt = (J - R) grad H + G u, assembled block by block so composites stay linear in size.

        A coupling u = C y is substituted into the sub-models' port inputs: this is exactly
        (J + G C G^T) grad H without ever forming the composite J."""
        m = self.info.model
        own = list(self.states)
        n = len(own)
        H = self.expr(m.decls(ast.Hamiltonian)[0].expr).expr if m.decls(ast.Hamiltonian) else sp.Integer(0)
        J, R = self.own_structure()
        grad = [sp.diff(H, s) for s in own]
        gvec = sp.Matrix(grad)
        dx = (J - R) * gvec if n else sp.zeros(0, 1)
        ports: list[PortSym] = []
        for port in m.decls(ast.Port):
            G = self.expr(next(i.expr for i in port.items if i.key == "G")).matrix()
            if G.cols == n and G.rows == 1 and n > 1:
                G = G.T
            size = G.cols
            u = list(self.declare_symbols(port.name, () if size == 1 else (size,)).items)
            dx += G * sp.Matrix(u)
            ports.append(PortSym(self.prefix + port.name, u, G, list(G.T * gvec)))
        own_ports = list(ports)
        dissipation = (gvec.T * R * gvec)[0, 0] if n else sp.Integer(0)
        x, rhs = list(own), dict(zip(own, dx))
        open_rhs, coupled = dict(rhs), []
        h_terms, d_terms = [H], [dissipation]
        subs = []
        for sub in self.subs.values():
            sph = sub.ph
            subs.append(sph)
            x += sph.x
            h_terms.append(sph.H)
            grad += sph.grad
            d_terms.append(sph.dissipation)
            rhs.update(sub.rhs)
            open_rhs.update(sub.rhs_open)
            coupled += sub.coupled
            ports += sph.ports
        H, dissipation = sp.Add(*h_terms), sp.Add(*d_terms)  # one Add: repeated += is quadratic in SymPy
        couplings, subst = [], {}
        by_name = {p.name: p for p in ports}
        for couple in m.decls(ast.Couple):
            names = [self.prefix + ref.dotted for ref in couple.ports]
            chosen = [by_name.pop(nm) for nm in names]
            ys = sp.Matrix([y for p in chosen for y in p.output])
            if couple.learn:
                k = len(ys)
                val = self.declare_symbols(couple.matrix_name, (k * (k - 1) // 2,))
                self.params.append(
                    ParamSym(
                        self.prefix + couple.matrix_name, val.shape, list(val.items), [0.0] * len(val.items), "skew"
                    )
                )
                C = skew_matrix(list(val.items))
            else:
                C = self.expr(couple.matrix).matrix()
            us = [u for p in chosen for u in p.inputs]
            subst.update(zip(us, C * ys))
            couplings.append((names, C))
            coupled.append((us, list(ys), C))
        ports = list(by_name.values())
        if subst:
            rhs = {s: e.xreplace(subst) for s, e in rhs.items()}
        self.rhs, self.rhs_open, self.coupled = rhs, open_rhs, coupled
        self.ph = PHParts(H, grad, ports, dissipation, x, J, R, subs, couplings, own_ports)
        self.ph_states = x

    def own_structure(self) -> tuple[sp.Matrix, sp.Matrix]:
        """J (declared or canonical symplectic) and R (declared or zero) over this model's own states."""
        m = self.info.model
        n = len(self.states)
        if m.decls(ast.JMatrix):
            J = self.expr(m.decls(ast.JMatrix)[0].expr).matrix()
        else:
            h = n // 2
            J = sp.zeros(n, n)
            for i in range(h):
                J[i, h + i], J[h + i, i] = 1, -1
        R = self.expr(m.decls(ast.RMatrix)[0].expr).matrix() if m.decls(ast.RMatrix) else sp.zeros(n, n)
        return J, R

    # ---------------------------------------------------------------- flattening
    def collect(self, into: dict) -> None:
        """Gather states, params, nets, rhs, constraints of this instance and its subs (general models;
        port-Hamiltonian ones go through ``_collect_ph``)."""
        into["states"] += self.states
        into["x0"] += self.x0
        into["params"] += self.params
        into["nets"].update(self.nets)
        into["constraints"] += self.constraints
        into["inputs"] += [(s, v) for s, v in zip(self.inputs, self.u0)]
        for sub in self.subs.values():
            sub.collect(into)
        into["rhs"].update(self.rhs)


def _renamed(tpl: _Instance, prefix: str) -> _Instance:
    """A copy of a template instance (lowered under the empty prefix) with every name prefixed."""
    from .functions import NetCall

    symbols: dict = {}

    def sym(s: sp.Symbol) -> sp.Symbol:
        if s not in symbols:
            symbols[s] = s if s == T else sp.Symbol(prefix + s.name, real=True)
        return symbols[s]

    def ren(e):
        if isinstance(e, sp.Symbol):
            return sym(e)
        if not isinstance(e, sp.Basic) or e.is_Number:
            return e
        mapping = {s: sym(s) for s in e.free_symbols}
        for call in e.atoms(NetCall):
            mapping[call] = net_function(prefix + call.net, call.out, call.arg, call.multi)(
                *[ren(a) for a in call.args]
            )
        return e.xreplace(mapping)

    def ren_m(m: sp.Matrix) -> sp.Matrix:
        return m.applyfunc(ren)

    new = object.__new__(_Instance)
    new.info, new.prefix, new.d, new.cache = tpl.info, prefix + tpl.prefix, tpl.d, tpl.cache
    new.env = {k: Val(v.shape, tuple(ren(i) for i in v.items)) for k, v in tpl.env.items()}
    new.params = [
        ParamSym(prefix + p.name, p.shape, [ren(s) for s in p.symbols], list(p.value), p.learn, p.low, p.high)
        for p in tpl.params
    ]
    new.nets = {prefix + k: v for k, v in tpl.nets.items()}
    new.subs = {k: _renamed(v, prefix) for k, v in tpl.subs.items()}
    new.states = [ren(s) for s in tpl.states]
    new.x0 = list(tpl.x0)
    new.inputs = [ren(s) for s in tpl.inputs]
    new.u0 = list(tpl.u0)
    new.rhs = {ren(k): ren(v) for k, v in tpl.rhs.items()}
    new.rhs_open = {ren(k): ren(v) for k, v in tpl.rhs_open.items()}
    renamed_noise(tpl, new, ren)
    new.coupled = [([ren(u) for u in us], [ren(y) for y in ys], ren_m(C)) for us, ys, C in tpl.coupled]
    new.constraints = [
        ConstraintSym(
            prefix + c.name,
            c.kind,
            [ren(r) for r in c.residual],
            [(v, [ren(s) for s in syms], lo, hi) for v, syms, lo, hi in c.domains],
            c.weight,
            c.uses_state,
            c.span,
        )
        for c in tpl.constraints
    ]
    new.ph = None
    if tpl.ph is not None:
        ph = tpl.ph
        new.ph = PHParts(
            ren(ph.H),
            [ren(g) for g in ph.grad],
            [
                PortSym(prefix + p.name, [ren(u) for u in p.inputs], ren_m(p.G), [ren(y) for y in p.output])
                for p in ph.ports
            ],
            ren(ph.dissipation),
            [ren(x) for x in ph.x],
            ren_m(ph.own_J),
            ren_m(ph.own_R),
            [sub.ph for sub in new.subs.values()],
            [([prefix + n for n in names], ren_m(C)) for names, C in ph.couplings],
            [
                PortSym(prefix + p.name, [ren(u) for u in p.inputs], ren_m(p.G), [ren(y) for y in p.output])
                for p in ph.own_ports
            ],
        )
        new.ph_states = list(new.ph.x)
    return new


def lower(info: ModelInfo) -> System:
    """Lower a checked model to a flat :class:`System` (raises NodeDslError on algebraic loops)."""
    diags = Collector()
    inst = _Instance(info, "", {}, diags)
    return _flatten(inst, diags)


def _flatten(inst: _Instance, diags: Collector) -> System:
    info = inst.info
    parts = {"states": [], "x0": [], "params": [], "nets": {}, "constraints": [], "inputs": [], "rhs": {}}
    subst: dict = {}
    if info.is_ph:
        _collect_ph(inst, parts)
        states = inst.ph_states
        x0 = parts["x0"]
        rhs = [inst.rhs[s] for s in states]
        inputs = [s for p in inst.ph.ports for s in p.inputs]
        u0 = [0.0] * len(inputs)
        constraints = parts["constraints"]
    else:
        inst.collect(parts)
        states, x0 = parts["states"], parts["x0"]
        subst = _connections(inst, diags)
        inputs = [s for s, _ in parts["inputs"] if s not in subst]
        u0 = [v for s, v in parts["inputs"] if s not in subst]
        rhs = [parts["rhs"][s].xreplace(subst) if subst else parts["rhs"][s] for s in states]
        constraints = [
            replace(c, residual=[r.xreplace(subst) for r in c.residual]) if subst else c for c in parts["constraints"]
        ]
    diags.raise_if_errors()
    if info.outputs:
        outputs = [x for n, _ in info.outputs for x in inst.env[n].items]
        outputs = [o.xreplace(subst) for o in outputs] if subst else outputs
        names = [nm for n, s in info.outputs for nm in flat_names(n, s)]
    else:
        outputs, names = list(states), [s.name for s in states]
    split = _symplectic_split(states, rhs)
    staged = None
    if info.is_ph and inst.coupled:
        us, ys, entries = [], [], []
        for u, y, C in inst.coupled:
            entries += [
                (len(us) + i, len(ys) + j, C[i, j]) for i in range(C.rows) for j in range(C.cols) if C[i, j] != 0
            ]
            us += u
            ys += y
        staged = Staged([inst.rhs_open[s] for s in states], us, ys, entries)
    return System(
        info.name,
        states,
        x0,
        inputs,
        u0,
        parts["params"],
        parts["nets"],
        rhs,
        outputs,
        names,
        constraints,
        inst.ph,
        split,
        staged,
        system_noise(inst, states, subst),
    )


def _collect_ph(inst: _Instance, parts: dict) -> None:
    parts["x0"] += inst.x0
    parts["params"] += inst.params
    parts["nets"].update(inst.nets)
    parts["constraints"] += inst.constraints
    for sub in inst.subs.values():
        _collect_ph(sub, parts)


def _connections(inst: _Instance, diags: Collector) -> dict:
    """input symbol -> driving expression, for every connect in the instance tree."""
    subst: dict[sp.Symbol, sp.Expr] = {}

    def visit(i: _Instance):
        for decl in i.info.model.decls(ast.Connect):
            src = i.expr(decl.source)
            target = i.subs[decl.target.parts[0]].env[decl.target.parts[1]]
            items = src.items * len(target.items) if src.shape == () else src.items
            for s, e in zip(target.items, items):
                subst[s] = e
        for sub in i.subs.values():
            visit(sub)

    visit(inst)
    # drive through chains (a -> b -> c); a loop never settles
    for _ in range(len(subst) + 1):
        changed = False
        for s, e in list(subst.items()):
            new = e.xreplace(subst)
            if new != e:
                subst[s], changed = new, True
        if not changed:
            return subst
    diags.error("algebraic-loop", f"the connections of '{inst.info.name}' form an algebraic loop", inst.info.model.span)
    return subst


def _symplectic_split(states: list[sp.Symbol], rhs: list[sp.Expr]) -> int | None:
    """n_q when x = [q, p] with dq/dt depending only on p and dp/dt only on q (separable: leapfrog applies)."""
    n = len(states)
    if n % 2:
        return None
    h = n // 2
    q, p = set(states[:h]), set(states[h:])
    for i, e in enumerate(rhs):
        free = e.free_symbols
        if (i < h and free & q) or (i >= h and free & p):
            return None
    return h
