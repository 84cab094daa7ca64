"""One model instance being lowered: its symbols, values, right-hand sides and sub-model instances.

``Instance(info)`` lowers a checked model under the empty prefix; sub-model instances are lowered
once per (model, overrides) and renamed for each use (``renamed``). ``shallow=True`` lowers
only the declarations (states, params, lets), which is what the structural proofs need.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> prog, _ = check_source(source_from_text("model M { state x = 1\\n der(x) = -2*x }", "m"))
    >>> Instance(prog.model("M")).rhs
    {x: -2*x}
"""

from __future__ import annotations

import sympy as sp

from ..core.diagnostics import Collector
from ..frontend import ast
from ..frontend.check import ModelInfo, domain_sizes, flat_names
from ..frontend.model_info import param_env
from ..frontend.netspec import NetSpec, net_spec
from ..frontend.shapes import CONSTANTS, constant_value
from .builtins import SYMPY
from .events import index_val, slice_val
from .functions import Val, net_function, symmetric_call, zip_vals
from .noise import lower_noise_decl, renamed_noise
from .porthamiltonian import build_port_hamiltonian, own_structure
from .rename import Renamer
from .system import Collected, ConstraintSym, ParamSym, PHParts, PortSym, T, flat_value, num


class Instance:
    """One model instance under a name prefix; sub-model instances nest."""

    def __init__(
        self,
        info: ModelInfo,
        prefix: str = "",
        overrides: dict[str, object] | None = None,
        diags: Collector | None = None,
        *,
        shallow: bool = False,
        cache: dict | None = None,
    ):
        self.info, self.prefix = info, prefix
        self.d = Collector() if diags is None else diags
        self.cache = {} if cache is None else cache
        self.env: dict[str, Val] = {}
        self.params: list[ParamSym] = []
        self.nets: dict[str, NetSpec] = {}
        self.subs: dict[str, Instance] = {}
        self.states: list[sp.Symbol] = []
        self.x0: list[float] = []
        self.inputs: list[sp.Symbol] = []
        self.u0: list[float] = []
        self.rhs: dict[sp.Symbol, sp.Expr] = {}
        self.ph: PHParts | None = None
        self.rhs_open: dict[sp.Symbol, sp.Expr] = {}  # pH: rhs with coupled port inputs left free
        self.coupled: list[tuple[list[sp.Symbol], list[sp.Expr], sp.Matrix]] = []  # (u, y, C) of each couple
        self.constraints: list[ConstraintSym] = []
        self.ph_states: list[sp.Symbol] = []
        self._build(overrides or {}, shallow)

    # ---------------------------------------------------------------- sub-model instances
    def _sub_instance(self, info: ModelInfo, overrides: dict, prefix: str) -> Instance:
        """A sub-model instance: lowered once per model and renamed for each use, then given its
        overrides' values.

        Renaming is an ``xreplace`` of symbols and net calls, far cheaper than lowering again
        (``sympy.diff`` of H, matrix products), which keeps chains of many instances linear and fast.
        Overrides change only numbers (initial values, input defaults, parameter values: expressions
        name parameters by symbol, and sizes are the model's), so one template serves every instance
        whatever its overrides: a chain of masses of different weights lowers ``Mass`` once."""
        key = (info.file, info.name)
        if key not in self.cache:
            self.cache[key] = Instance(info, "", {}, self.d, cache=self.cache)
        inst = renamed(self.cache[key], prefix)
        if overrides:
            inst.x0, inst.u0, values = declared_values(info, overrides)
            for param, value in zip(inst.params, values, strict=True):
                param.value = value
        return inst

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
            return Val.scalar(num(e.value))
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
            return index_val(self.expr(e.target, scope), e)
        if isinstance(e, ast.Slice):
            return slice_val(self.expr(e.target, scope), e)
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
            name, multi = self.prefix + fname, spec.out > 1
            if spec.odd or spec.even:  # structure compiled into the call: exactly odd/even
                outs = tuple(symmetric_call(name, k, multi, flat, spec.odd, spec.even) for k in range(spec.out))
            else:
                outs = tuple(net_function(name, k, multi=multi)(*flat) for k in range(spec.out))
            return Val.scalar(outs[0]) if spec.out == 1 else Val((spec.out,), outs)
        build = SYMPY.get(fname)
        if build is not None:
            return build(args)
        raise AssertionError(f"unchecked call {fname}")

    # ---------------------------------------------------------------- declarations
    def _build(self, overrides: dict[str, object], shallow: bool = False) -> None:
        info, m = self.info, self.info.model
        self.x0, self.u0, values = declared_values(info, overrides)
        param_values = iter(values)
        for decl in m.body:  # subs first: members of subs may be used anywhere
            if isinstance(decl, ast.Sub) and not shallow:
                ov = {o.name: constant_value(o.expr) for o in decl.overrides}
                self.subs[decl.name] = self._sub_instance(info.subs[decl.name], ov, f"{self.prefix}{decl.name}.")
        for decl in m.body:
            if isinstance(decl, ast.State):
                shape = info.members[decl.name].shape
                val = self.declare_symbols(decl.name, shape)
                self.env[decl.name] = val
                self.states += list(val.items)
            elif isinstance(decl, ast.Input):
                val = self.declare_symbols(decl.name, info.members[decl.name].shape)
                self.env[decl.name] = val
                self.inputs += list(val.items)
            elif isinstance(decl, ast.Param):
                shape = info.members[decl.name].shape
                val = self.declare_symbols(decl.name, shape)
                self.env[decl.name] = val
                p = ParamSym(self.prefix + decl.name, shape, list(val.items), next(param_values))
                if decl.learn is not None:
                    p.learn = decl.learn.kind
                    low, high = decl.learn.low, decl.learn.high
                    if decl.learn.kind == "interval" and low is not None and high is not None:
                        p.low, p.high = constant_value(low), constant_value(high)
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
            build_port_hamiltonian(self)

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

    def own_structure(self) -> tuple[sp.Matrix, sp.Matrix]:
        """J (declared or canonical symplectic) and R (declared or zero) over this model's own states."""
        return own_structure(self)

    # ---------------------------------------------------------------- flattening
    def collect(self, into: Collected) -> None:
        """Gather states, params, nets, rhs, constraints of this instance and its subs (general models;
        port-Hamiltonian ones go through ``_collect_ph``)."""
        into.states += self.states
        into.x0 += self.x0
        into.params += self.params
        into.nets.update(self.nets)
        into.constraints += self.constraints
        into.inputs += [(s, v) for s, v in zip(self.inputs, self.u0)]
        for sub in self.subs.values():
            sub.collect(into)
        into.rhs.update(self.rhs)


def declared_values(info: ModelInfo, overrides: dict) -> tuple[list[float], list[float], list[list[float]]]:
    """The numbers a model instance declares, overrides first: its own states' initial values, its
    inputs' defaults and each parameter's value (flat), in declaration order."""
    env = param_env(info.model, overrides)[0]  # parameter values may use other parameters (and overrides)
    x0: list[float] = []
    u0: list[float] = []
    values: list[list[float]] = []
    for decl in info.model.body:
        if isinstance(decl, ast.State):
            init = overrides.get(decl.name, constant_value(decl.init, env) if decl.init is not None else 0.0)
            x0 += flat_value(init, _size(info, decl.name))
        elif isinstance(decl, ast.Input):
            default = overrides.get(decl.name, constant_value(decl.default) if decl.default else 0.0)
            u0 += flat_value(default, _size(info, decl.name))
        elif isinstance(decl, ast.Param):
            values.append(flat_value(overrides.get(decl.name, constant_value(decl.value, env)), _size(info, decl.name)))
    return x0, u0, values


def _size(info: ModelInfo, name: str) -> int:
    return len(flat_names(name, info.members[name].shape))


def renamed(tpl: Instance, prefix: str) -> Instance:
    """A copy of a template instance (lowered under the empty prefix) with every name prefixed.

    Renaming is an ``xreplace`` of symbols and net calls, far cheaper than lowering again
    (``sympy.diff`` of H, matrix products), which keeps chains of many instances linear and fast."""
    ren = Renamer(prefix)
    ren_m = ren.matrix
    new = object.__new__(type(tpl))  # a copy: no lowering again
    new.info, new.prefix, new.d, new.cache = tpl.info, prefix + tpl.prefix, tpl.d, tpl.cache
    new.env = {k: Val(v.shape, tuple(ren(i) for i in v.items)) for k, v in tpl.env.items()}
    new.params = [
        ParamSym(prefix + p.name, p.shape, [ren(s) for s in p.symbols], list(p.value), p.learn, p.low, p.high)
        for p in tpl.params
    ]
    new.nets = {prefix + k: v for k, v in tpl.nets.items()}
    new.subs = {k: renamed(v, prefix) for k, v in tpl.subs.items()}
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
                PortSym(prefix + p.name, [ren(u) for u in p.inputs], ren_m(p.G), [ren(y) for y in p.output], p.static)
                for p in ph.ports
            ],
            ren(ph.dissipation),
            [ren(x) for x in ph.x],
            ren_m(ph.own_J),
            ren_m(ph.own_R),
            [sub.ph for sub in new.subs.values() if sub.ph is not None],
            [([prefix + n for n in names], ren_m(C)) for names, C in ph.couplings],
            [
                PortSym(prefix + p.name, [ren(u) for u in p.inputs], ren_m(p.G), [ren(y) for y in p.output], p.static)
                for p in ph.own_ports
            ],
            ren(ph.supplied),
        )
        new.ph_states = list(new.ph.x)
    return new
