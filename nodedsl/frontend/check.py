"""The checker: symbols, sizes and structure of every model, all diagnostics collected.

It turns a :class:`~nodedsl.frontend.loader.Source` into a :class:`CheckedProgram` whose
:class:`ModelInfo` objects the lowering stage reads. It never stops at the first problem.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> prog, diags = check_source(source_from_text("model M { state x = 1\\n der(x) = -y }", "m.node"))
    >>> [(d.code, d.message) for d in diags]
    [('undefined-name', "unknown name 'y'")]
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.diagnostics import Collector, Diagnostic, Span, suggest
from . import ast
from .loader import Source
from .shapes import BUILTINS, CONSTANTS, Shape, constant_value, fmt_shape

PH = "port_hamiltonian"


@dataclass
class Member:
    """A name declared in a model: its kind, size and declaration."""

    kind: str  # state input param net let output port sub var
    shape: Shape
    decl: object


@dataclass
class ModelInfo:
    """A checked model: own members, checked sub-models, and its flattened interface."""

    file: str
    model: ast.Model
    members: dict[str, Member] = field(default_factory=dict)
    subs: dict[str, ModelInfo] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # own ports and sizes
    free_ports: dict[str, int] = field(default_factory=dict)  # ports of the composite (own + uncoupled sub ports)
    states: list[tuple[str, Shape]] = field(default_factory=list)  # flattened, dotted
    inputs: list[tuple[str, Shape]] = field(default_factory=list)  # flattened incl. undriven sub inputs
    outputs: list[tuple[str, Shape]] = field(default_factory=list)  # declared outputs (own, dotted)
    driven: set[str] = field(default_factory=set)  # 'sub.input' names driven by a connect

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def is_ph(self) -> bool:
        return self.model.kind == PH

    def observed(self) -> list[tuple[str, Shape]]:
        """What data observes: declared outputs, or every state when the model declares none."""
        return self.outputs if self.outputs else self.states

    def size(self, entries: list[tuple[str, Shape]]) -> int:
        return sum(_numel(s) for _, s in entries)

    def summary(self) -> str:
        own = self.model
        params = own.decls(ast.Param)
        learned = sum(1 for p in params if p.learn is not None)
        parts = [
            f"{self.size(self.states)} states",
            f"{self.size(self.inputs)} inputs",
            f"{len(params)} params ({learned} learned)",
            f"{len(own.decls(ast.Net))} nets",
            f"{len(own.decls(ast.Constraint))} constraints",
        ]
        if self.subs:
            parts.append(f"{len(self.subs)} sub-models")
        if self.is_ph:
            parts.append(f"{len(self.free_ports)} ports")
        kind = " (port-Hamiltonian)" if self.is_ph else ""
        return f"{self.name}{kind}: " + ", ".join(parts)


@dataclass
class CheckedProgram:
    """The result of checking: every model reachable from the root file, by (file, name)."""

    source: Source
    infos: dict[tuple[str, str], ModelInfo] = field(default_factory=dict)
    configs: dict[str, object] = field(default_factory=dict)  # "dataset NAME" / "train NAME" -> pydantic config

    def model(self, name: str) -> ModelInfo | None:
        """A model visible in the root file's scope, or None."""
        entry = self.source.scopes.get(self.source.root, {}).get(name)
        if entry is None or not isinstance(entry[1], ast.Model):
            return None
        return self.infos.get((entry[0], entry[1].name))

    def root_models(self) -> list[ModelInfo]:
        mod = self.source.modules[self.source.root]
        return [self.infos[(self.source.root, m.name)] for m in mod.models if (self.source.root, m.name) in self.infos]


def _numel(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def flat_names(name: str, shape: Shape) -> list[str]:
    """Component names of a declared quantity: ``q`` -> ``q[0], q[1]`` for a vector."""
    if shape == ():
        return [name]
    if len(shape) == 1:
        return [f"{name}[{i}]" for i in range(shape[0])]
    return [f"{name}[{i},{j}]" for i in range(shape[0]) for j in range(shape[1])]


def _decl_shape(size: int | None) -> Shape:
    return () if size is None else (size,)


class _ModelChecker:
    def __init__(self, prog: CheckedProgram, diags: Collector, file: str, model: ast.Model, stack: list):
        self.prog, self.d, self.file, self.model, self.stack = prog, diags, file, model, stack
        self.info = ModelInfo(file, model)
        self.defined_lets: set[str] = set()
        self._coupled: set[str] = set()  # 'sub.port' names listed in a couple

    # ------------------------------------------------------------ expressions
    def shape(self, e: ast.Expr, scope: dict[str, Member]) -> Shape | None:
        """Size of an expression; None when a diagnostic was already reported for it."""
        if isinstance(e, ast.Num):
            return ()
        if isinstance(e, ast.Name):
            return self._name_shape(e, scope)
        if isinstance(e, ast.Neg):
            return self.shape(e.operand, scope)
        if isinstance(e, ast.BinOp):
            a, b = self.shape(e.left, scope), self.shape(e.right, scope)
            if a is None or b is None:
                return None
            return self._binop(e, a, b)
        if isinstance(e, ast.Array):
            shapes = [self.shape(i, scope) for i in e.items]
            if any(s is None for s in shapes):
                return None
            if all(s == () for s in shapes):
                return (len(shapes),)
            if all(len(s) == 1 and s == shapes[0] for s in shapes):
                return (len(shapes), shapes[0][0])
            self.d.error(
                "size-mismatch",
                "the rows of a matrix literal must all be vectors of one size, got "
                + ", ".join(fmt_shape(s) for s in shapes),
                e.span,
            )
            return None
        if isinstance(e, ast.Index):
            target = self.shape(e.target, scope)
            if target is None:
                return None
            idx = constant_value(e.index)
            if not isinstance(idx, float) or idx != int(idx):
                self.d.error("bad-index", "an index must be an integer constant", e.index.span)
                return None
            if target == ():
                self.d.error("not-indexable", "a scalar cannot be indexed", e.span)
                return None
            if not 0 <= idx < target[0]:
                self.d.error(
                    "index-out-of-range",
                    f"index {int(idx)} is out of range for {fmt_shape(target)}",
                    e.index.span,
                    f"valid indices are 0 to {target[0] - 1}",
                )
                return None
            return target[1:]
        if isinstance(e, ast.Call):
            return self._call_shape(e, scope)
        self.d.error(
            "unsupported", f"unsupported expression {type(e).__name__}", getattr(e, "span", Span(self.file, 0, 0))
        )
        return None

    def _binop(self, e: ast.BinOp, a: Shape, b: Shape) -> Shape | None:
        if e.op == "@":
            if len(a) == 2 and len(b) == 2 and a[1] == b[0]:
                return (a[0], b[1])
            if len(a) == 2 and len(b) == 1 and a[1] == b[0]:
                return (a[0],)
            if len(a) == 1 and len(b) == 2 and a[0] == b[0]:
                return (b[1],)
            if len(a) == 1 and a == b:
                return ()
            self.d.error(
                "size-mismatch", f"matrix product of {fmt_shape(a)} and {fmt_shape(b)}: inner sizes differ", e.span
            )
            return None
        if e.op == "^" and b != ():
            self.d.error("size-mismatch", f"an exponent must be a scalar, got {fmt_shape(b)}", e.right.span)
            return None
        if a == () or a == b:
            return b
        if b == ():
            return a
        self.d.error(
            "size-mismatch",
            f"'{e.op}' on {fmt_shape(a)} and {fmt_shape(b)}: sizes do not match",
            e.span,
            "arithmetic is element-wise; use '@' for a matrix product",
        )
        return None

    def _lookup(self, name: ast.Name, scope: dict[str, Member]) -> Member | None:
        first = name.parts[0]
        if len(name.parts) == 1:
            if first in scope:
                return scope[first]
            if first in self.info.members:
                member = self.info.members[first]
                if member.kind == "let" and first not in self.defined_lets:
                    self.d.error(
                        "undefined-name",
                        f"'{first}' is used before its definition",
                        name.span,
                        f"defined at {member.decl.span}",
                    )
                    return None
                return member
            return None
        info = self.info
        for _i, part in enumerate(name.parts[:-1]):
            if part not in info.subs:
                return None
            info = info.subs[part]
        leaf = name.parts[-1]
        member = info.members.get(leaf)
        if member is not None and member.kind in ("state", "input", "param", "output", "let"):
            return member
        return None

    def _name_shape(self, name: ast.Name, scope) -> Shape | None:
        if name.parts == ("t",) or (name.parts[0] in CONSTANTS and len(name.parts) == 1):
            return ()
        member = self._lookup(name, scope)
        if member is None:
            if len(name.parts) == 1 and name.parts[0] in self.info.members:
                return None  # used before definition, already reported
            candidates = list(scope) + list(self.info.members) + ["t"]
            for sub, info in self.info.subs.items():
                candidates += [f"{sub}.{m}" for m in info.members]
            self.d.error("undefined-name", f"unknown name '{name.dotted}'", name.span, suggest(name.dotted, candidates))
            return None
        if member.kind == "net":
            self.d.error(
                "net-not-called",
                f"net '{name.dotted}' must be called with arguments",
                name.span,
                f"write {name.dotted}(...)",
            )
            return None
        if member.kind in ("port", "sub", "coupling"):
            self.d.error("not-a-value", f"'{name.dotted}' is a {member.kind}, not a value", name.span)
            return None
        return member.shape

    def _call_shape(self, e: ast.Call, scope) -> Shape | None:
        fname = e.func.dotted
        shapes = [self.shape(a, scope) for a in e.args]
        member = self.info.members.get(fname) if len(e.func.parts) == 1 else None
        if member is not None and member.kind == "net":
            net: ast.Net = member.decl
            if len(e.args) != len(net.args):
                self.d.error(
                    "wrong-arity",
                    f"net '{fname}' takes {len(net.args)} arguments, got {len(e.args)}",
                    e.span,
                    f"declared at {net.span}",
                )
                return None
            ok = True
            for arg, shp, formal in zip(e.args, shapes, net.args):
                want = formal.size or 1
                if shp is None:
                    ok = False
                elif not ((want == 1 and shp in ((), (1,))) or (want > 1 and shp == (want,))):
                    self.d.error(
                        "size-mismatch",
                        f"argument '{formal.name}' of net '{fname}' has size {want}, got {fmt_shape(shp)}",
                        arg.span,
                    )
                    ok = False
            return (() if net.out == 1 else (net.out,)) if ok else None
        if fname in BUILTINS and len(e.func.parts) == 1:
            spec = BUILTINS[fname]
            lo, hi = spec.arity
            if not lo <= len(e.args) <= hi:
                self.d.error(
                    "wrong-arity", f"'{fname}' takes {lo} argument{'s' if lo > 1 else ''}, got {len(e.args)}", e.span
                )
                return None
            if any(s is None for s in shapes):
                return None
            out, err = spec.rule(shapes)
            if err:
                self.d.error("size-mismatch", f"{fname}: {err}", e.span)
                return None
            return out
        if member is not None:
            self.d.error("not-callable", f"'{fname}' is a {member.kind}, not a function", e.func.span)
            return None
        nets = [n for n, m in self.info.members.items() if m.kind == "net"]
        self.d.error(
            "unknown-function", f"unknown function '{fname}'", e.func.span, suggest(fname, nets + list(BUILTINS))
        )
        return None

    def expect(self, e: ast.Expr, want: Shape, what: str, scope=None, allow_scalar=False) -> None:
        got = self.shape(e, scope or {})
        if got is None or got == want or (allow_scalar and got == ()):
            return
        self.d.error(
            "size-mismatch", f"{what} has size {fmt_shape(want)}, but the expression is {fmt_shape(got)}", e.span
        )

    def constant(self, e: ast.Expr, what: str):
        v = constant_value(e)
        if v is None:
            self.d.error("not-constant", f"{what} must be a constant (numbers and arithmetic)", e.span)
        return v

    # ------------------------------------------------------------ declarations
    def declare(self, name: str, member: Member, span: Span) -> None:
        if name in self.info.members:
            first = self.info.members[name].decl
            self.d.error(
                "duplicate-name",
                f"'{name}' is declared twice in model '{self.model.name}'",
                span,
                f"first declared at {getattr(first, 'span', '?')}",
            )
            return
        if name in ("t",) or name in CONSTANTS:
            self.d.error("reserved-name", f"'{name}' is a builtin name and cannot be declared", span)
        self.info.members[name] = member

    def run(self) -> ModelInfo:
        m, info = self.model, self.info
        if m.kind is not None and m.kind != PH:
            self.d.error(
                "unknown-model-kind",
                f"unknown model kind '{m.kind}'",
                m.kind_span,
                suggest(m.kind, [PH]) or "the only model kind is 'port_hamiltonian'",
            )
        # pass 1: declare every name (so order does not matter except for lets)
        for decl in m.body:
            if isinstance(decl, ast.State):
                self.declare(decl.name, Member("state", _decl_shape(decl.size), decl), decl.span)
            elif isinstance(decl, ast.Input):
                self.declare(decl.name, Member("input", _decl_shape(decl.size), decl), decl.span)
            elif isinstance(decl, ast.Param):
                self.declare(decl.name, Member("param", _decl_shape(decl.size), decl), decl.span)
            elif isinstance(decl, ast.Net):
                self.declare(decl.name, Member("net", (), decl), decl.span)
            elif isinstance(decl, ast.Let):
                self.declare(decl.name, Member("let", (), decl), decl.span)
            elif isinstance(decl, ast.Output):
                self.declare(decl.name, Member("output", (), decl), decl.span)
            elif isinstance(decl, ast.Port):
                self.declare(decl.name, Member("port", (), decl), decl.span)
            elif isinstance(decl, ast.Sub):
                self.declare(decl.name, Member("sub", (), decl), decl.span)
                self._sub(decl)
            elif isinstance(decl, ast.Couple) and decl.learn is not None:
                # a learned coupling is a parameter named after its matrix: names must stay unique
                self.declare(decl.matrix_name, Member("coupling", (), decl), decl.span)
        own_states = [(d.name, _decl_shape(d.size)) for d in m.decls(ast.State)]
        n_own = sum(_numel(s) for _, s in own_states)
        named: dict[str, ast.Constraint] = {}
        for c in m.decls(ast.Constraint):
            if c.name and c.name in named:
                self.d.error(
                    "duplicate-name",
                    f"constraint '{c.name}' is declared twice",
                    c.span,
                    f"first declared at {named[c.name].span}",
                )
            elif c.name:
                named[c.name] = c
        # pass 2: values and expressions, in source order
        ders: dict[str, ast.Der] = {}
        for decl in m.body:
            if isinstance(decl, (ast.State, ast.Input)):
                value = decl.init if isinstance(decl, ast.State) else decl.default
                if value is not None:
                    self.constant(value, f"the initial value of '{decl.name}'")
                    self.expect(value, _decl_shape(decl.size), f"'{decl.name}'", allow_scalar=True)
            elif isinstance(decl, ast.Param):
                self.constant(decl.value, f"the value of parameter '{decl.name}'")
                self.expect(decl.value, _decl_shape(decl.size), f"parameter '{decl.name}'", allow_scalar=True)
                self._learn(decl)
            elif isinstance(decl, ast.Net):
                self._net(decl)
            elif isinstance(decl, ast.Let):
                shp = self.shape(decl.expr, {})
                self.defined_lets.add(decl.name)
                if shp is not None and decl.name in info.members:
                    info.members[decl.name].shape = shp
            elif isinstance(decl, ast.Output):
                shp = self.shape(decl.expr, {})
                if shp is not None and decl.name in info.members:
                    info.members[decl.name].shape = shp
            elif isinstance(decl, ast.Der):
                self._der(decl, ders)
            elif isinstance(decl, ast.Constraint):
                self._constraint(decl)
            elif isinstance(decl, ast.Hamiltonian):
                self._ph_only(decl, "hamiltonian")
                self.expect(decl.expr, (), "the Hamiltonian")
            elif isinstance(decl, (ast.JMatrix, ast.RMatrix)):
                what = "J" if isinstance(decl, ast.JMatrix) else "R"
                self._ph_only(decl, what)
                self.expect(decl.expr, (n_own, n_own), f"{what} (states: {n_own})")
            elif isinstance(decl, ast.Port):
                self._port(decl, n_own)
            elif isinstance(decl, ast.Couple):
                self._couple(decl)
            elif isinstance(decl, ast.Connect):
                self._connect(decl)
        if m.decls(ast.Noise) or any(m2.model.decls(ast.Noise) for m2 in info.subs.values()):
            from .check_noise import check_noise

            n_all = n_own + sum(_numel(sh) for sinfo in info.subs.values() for _, sh in sinfo.states)
            check_noise(self, n_all)
        # structure
        if m.kind == PH:
            if own_states and not m.decls(ast.Hamiltonian):
                self.d.error(
                    "missing-hamiltonian",
                    f"port-Hamiltonian model '{m.name}' declares states but no hamiltonian",
                    m.span,
                )
            if own_states and not m.decls(ast.JMatrix) and n_own % 2 == 1:
                self.d.error(
                    "missing-j",
                    f"'{m.name}' has an odd number of states ({n_own}), so J cannot default "
                    "to the canonical symplectic matrix: declare J",
                    m.span,
                )
            for sub, sinfo in info.subs.items():
                if not sinfo.is_ph:
                    self.d.error(
                        "sub-not-port-hamiltonian",
                        f"sub-model '{sub}' of a port-Hamiltonian model must be "
                        f"port-Hamiltonian ('{sinfo.name}' is not)",
                        info.members[sub].decl.span,
                    )
        else:
            for sub, sinfo in info.subs.items():
                if sinfo.is_ph:
                    self.d.error(
                        "unsupported",
                        f"sub-model '{sub}' is port-Hamiltonian: a general model can only "
                        "contain general sub-models (couple ports inside a port_hamiltonian model)",
                        info.members[sub].decl.span,
                    )
            for name, _ in own_states:
                if name not in ders:
                    decl = info.members[name].decl
                    self.d.error("missing-der", f"state '{name}' has no der({name}) equation", decl.span)
        self._flatten(own_states)
        return info

    def _ph_only(self, decl, what: str) -> None:
        if self.model.kind != PH:
            self.d.error(
                "ph-only",
                f"'{what}' is only allowed in a port-Hamiltonian model",
                decl.span,
                f"declare the model as: model {self.model.name} : port_hamiltonian {{ ... }}",
            )

    def _learn(self, decl: ast.Param) -> None:
        learn = decl.learn
        if learn is None:
            return
        value = constant_value(decl.value)
        if learn.kind == "interval":
            lo, hi = self.constant(learn.low, "a bound"), self.constant(learn.high, "a bound")
            if isinstance(lo, float) and isinstance(hi, float):
                if not lo < hi:
                    self.d.error("bad-interval", f"the interval [{lo:g}, {hi:g}] is empty", learn.span)
                else:
                    for v in value if isinstance(value, list) else [value]:
                        if isinstance(v, float) and not lo < v < hi:
                            self.d.error(
                                "bad-initial-value",
                                f"the initial value {v:g} of '{decl.name}' must lie strictly inside [{lo:g}, {hi:g}]",
                                decl.value.span,
                            )
        elif learn.kind == "positive":
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, float) and not v > 0:
                    self.d.error(
                        "bad-initial-value",
                        f"the initial value {v:g} of positive parameter '{decl.name}' must be > 0",
                        decl.value.span,
                    )

    def _net(self, decl: ast.Net) -> None:
        from .netspec import validate_net_options

        for diag in validate_net_options(decl):
            self.d.items.append(diag)

    def _der(self, decl: ast.Der, ders: dict) -> None:
        if self.model.kind == PH:
            self.d.error(
                "der-in-port-hamiltonian",
                "der(...) is not allowed in a port-Hamiltonian model: its "
                "dynamics are derived from the Hamiltonian, J, R and the ports",
                decl.span,
            )
            return
        member = self.info.members.get(decl.state)
        if member is None or member.kind != "state":
            states = [n for n, mm in self.info.members.items() if mm.kind == "state"]
            what = f"'{decl.state}' is a {member.kind}, not a state" if member else f"unknown state '{decl.state}'"
            self.d.error("der-not-state" if member else "undefined-name", what, decl.span, suggest(decl.state, states))
            return
        if decl.state in ders:
            self.d.error(
                "duplicate-der",
                f"der({decl.state}) is given twice",
                decl.span,
                f"first given at {ders[decl.state].span}",
            )
            return
        ders[decl.state] = decl
        self.expect(decl.expr, member.shape, f"der({decl.state})", allow_scalar=True)

    def _constraint(self, decl: ast.Constraint) -> None:
        scope: dict[str, Member] = {}
        for dom in decl.domains:
            lo, hi = self.constant(dom.low, "a domain bound"), self.constant(dom.high, "a domain bound")
            if isinstance(lo, float) and isinstance(hi, float) and not lo < hi:
                self.d.error("bad-interval", f"the interval [{lo:g}, {hi:g}] is empty", dom.span)
            if dom.var in scope:
                self.d.error("duplicate-name", f"domain variable '{dom.var}' is given twice", dom.span)
            scope[dom.var] = Member("var", self._domain_shape(dom, decl), dom)
        a, b = self.shape(decl.lhs, scope), self.shape(decl.rhs, scope)
        if a is not None and b is not None and a != b and a != () and b != ():
            self.d.error(
                "size-mismatch",
                f"the two sides of the constraint have sizes {fmt_shape(a)} and {fmt_shape(b)}",
                decl.span,
            )
        if decl.weight is not None:
            w = self.constant(decl.weight, "a constraint weight")
            if isinstance(w, float) and not w > 0:
                self.d.error("bad-value", f"a constraint weight must be > 0, got {w:g}", decl.weight.span)

    def _domain_shape(self, dom: ast.Domain, decl: ast.Constraint) -> Shape:
        sizes = domain_sizes(self.info.members, decl, dom.var)
        if len(sizes) > 1:
            self.d.error(
                "size-mismatch",
                f"domain variable '{dom.var}' is passed to nets of sizes " + ", ".join(map(str, sorted(sizes))),
                dom.span,
            )
        size = max(sizes) if sizes else 1
        return () if size == 1 else (size,)

    def _port(self, decl: ast.Port, n_own: int) -> None:
        self._ph_only(decl, "port")
        keys = [i.key for i in decl.items]
        for item in decl.items:
            if item.key != "G":
                self.d.error("unknown-key", f"unknown port key '{item.key}'", item.span, "a port declares G = matrix")
        if "G" not in keys:
            self.d.error("missing-g", f"port '{decl.name}' has no input matrix G", decl.span)
            return
        g = next(i for i in decl.items if i.key == "G")
        shp = self.shape(g.expr, {})
        if shp is None:
            return
        if len(shp) == 1 and n_own == shp[0]:
            shp = (shp[0], 1)
        if len(shp) != 2 or shp[0] != n_own:
            self.d.error(
                "port-size-mismatch",
                f"G of port '{decl.name}' must have one row per state ({n_own}), got {fmt_shape(shp)}",
                g.span,
            )
            return
        self.info.ports[decl.name] = shp[1]

    def _sub(self, decl: ast.Sub) -> None:
        target = self.prog.source.scopes.get(self.file, {}).get(decl.model.dotted)
        if target is None or not isinstance(target[1], ast.Model):
            models = [n for n, (_, v) in self.prog.source.scopes.get(self.file, {}).items() if isinstance(v, ast.Model)]
            self.d.error(
                "undefined-model",
                f"unknown model '{decl.model.dotted}'",
                decl.model.span,
                suggest(decl.model.dotted, models),
            )
            return
        sinfo = check_model(self.prog, self.d, target[0], target[1], self.stack, decl.model.span)
        if sinfo is None:
            return
        self.info.subs[decl.name] = sinfo
        for ov in decl.overrides:
            member = sinfo.members.get(ov.name)
            if member is None or member.kind not in ("param", "state", "input"):
                self.d.error(
                    "unknown-override",
                    f"'{sinfo.name}' has no parameter or state '{ov.name}'",
                    ov.span,
                    suggest(ov.name, [n for n, mm in sinfo.members.items() if mm.kind in ("param", "state")]),
                )
                continue
            self.constant(ov.expr, f"the override of '{ov.name}'")
            self.expect(ov.expr, member.shape, f"'{ov.name}'", allow_scalar=True)

    def _port_ref(self, ref: ast.Name) -> tuple[str, int] | None:
        if len(ref.parts) >= 2 and ref.parts[0] in self.info.subs:
            sinfo = self.info.subs[ref.parts[0]]
            rest = ".".join(ref.parts[1:])  # nested composites expose uncoupled ports as 'sub.port'
            if rest in sinfo.free_ports:
                return ref.dotted, sinfo.free_ports[rest]
            self.d.error(
                "undefined-port",
                f"'{sinfo.name}' has no port '{rest}'",
                ref.span,
                suggest(rest, list(sinfo.free_ports)),
            )
            return None
        if len(ref.parts) == 1 and ref.parts[0] in self.info.ports:
            return ref.dotted, self.info.ports[ref.parts[0]]
        self.d.error(
            "undefined-port",
            f"unknown port '{ref.dotted}'",
            ref.span,
            "ports are named sub.port" if len(ref.parts) == 1 else "",
        )
        return None

    def _couple(self, decl: ast.Couple) -> None:
        self._ph_only(decl, "couple")
        total, seen = 0, set()
        ok = True
        for ref in decl.ports:
            got = self._port_ref(ref)
            if got is None:
                ok = False
                continue
            if got[0] in seen:
                self.d.error("duplicate-port", f"port '{got[0]}' is coupled twice", ref.span)
            seen.add(got[0])
            total += got[1]
        if decl.learn is not None:
            if decl.learn != "skew":
                self.d.error(
                    "unknown-learn-kind",
                    f"a learned coupling must be 'learn skew', got 'learn {decl.learn}'",
                    decl.span,
                )
        elif ok:
            self.expect(decl.matrix, (total, total), f"{decl.matrix_name} (port sizes add up to {total})")
            value = constant_value(decl.matrix)
            if (
                isinstance(value, list)
                and all(isinstance(r, list) and len(r) == total for r in value)
                and len(value) == total
            ):
                bad = [(i, j) for i in range(total) for j in range(total) if abs(value[i][j] + value[j][i]) > 1e-12]
                if bad:
                    i, j = bad[0]
                    self.d.error(
                        "not-skew",
                        f"{decl.matrix_name} must be skew-symmetric so the coupling conserves "
                        f"power: entry [{i},{j}] = {value[i][j]:g} but [{j},{i}] = {value[j][i]:g}",
                        decl.matrix.span,
                    )
        self._coupled.update(seen)

    def _connect(self, decl: ast.Connect) -> None:
        src = self.shape(decl.source, {})
        tgt = decl.target
        if len(tgt.parts) != 2 or tgt.parts[0] not in self.info.subs:
            self.d.error(
                "bad-connect",
                f"the target of connect must be an input of a sub-model (sub.input), got '{tgt.dotted}'",
                tgt.span,
            )
            return
        sinfo = self.info.subs[tgt.parts[0]]
        inputs = dict(sinfo.inputs)
        if tgt.parts[1] not in inputs:
            self.d.error(
                "undefined-name",
                f"'{sinfo.name}' has no input '{tgt.parts[1]}'",
                tgt.span,
                suggest(tgt.parts[1], list(inputs)),
            )
            return
        if tgt.dotted in self.info.driven:
            self.d.error("double-connect", f"input '{tgt.dotted}' is driven twice", tgt.span)
        self.info.driven.add(tgt.dotted)
        want = inputs[tgt.parts[1]]
        if src is not None and src != want and src != ():
            self.d.error(
                "size-mismatch",
                f"connect: '{decl.source.dotted}' is {fmt_shape(src)} but '{tgt.dotted}' is {fmt_shape(want)}",
                decl.span,
            )

    def _flatten(self, own_states) -> None:
        info = self.info
        info.states = list(own_states)
        info.inputs = [(d.name, _decl_shape(d.size)) for d in self.model.decls(ast.Input)]
        info.outputs = [
            (d.name, info.members[d.name].shape) for d in self.model.decls(ast.Output) if d.name in info.members
        ]
        info.free_ports = dict(info.ports)
        for sub, sinfo in info.subs.items():
            info.states += [(f"{sub}.{n}", s) for n, s in sinfo.states]
            info.inputs += [(f"{sub}.{n}", s) for n, s in sinfo.inputs if f"{sub}.{n}" not in info.driven]
            for port, size in sinfo.free_ports.items():
                if f"{sub}.{port}" not in self._coupled:
                    info.free_ports[f"{sub}.{port}"] = size


def domain_sizes(members: dict[str, Member], decl: ast.Constraint, var: str) -> set[int]:
    """Sizes a domain variable takes: a vector when it is passed whole to a net's vector argument."""
    sizes: set[int] = set()

    def visit(e):
        if isinstance(e, ast.Call):
            member = members.get(e.func.dotted)
            if member is not None and member.kind == "net":
                for arg, formal in zip(e.args, member.decl.args):
                    if isinstance(arg, ast.Name) and arg.parts == (var,):
                        sizes.add(formal.size or 1)
            for a in e.args:
                visit(a)
        elif isinstance(e, ast.BinOp):
            visit(e.left), visit(e.right)
        elif isinstance(e, ast.Neg):
            visit(e.operand)
        elif isinstance(e, ast.Index):
            visit(e.target)
        elif isinstance(e, ast.Array):
            for i in e.items:
                visit(i)

    visit(decl.lhs), visit(decl.rhs)
    return sizes


def check_model(
    prog: CheckedProgram, diags: Collector, file: str, model: ast.Model, stack: list, used_at: Span | None = None
) -> ModelInfo | None:
    """Check one model (memoized); sub-models are checked first. None if it is part of a cycle."""
    key = (file, model.name)
    if key in prog.infos:
        return prog.infos[key]
    if key in stack:
        cycle = " -> ".join(n for _, n in stack[stack.index(key) :] + [key])
        diags.error("recursive-model", f"model '{model.name}' contains itself: {cycle}", used_at or model.span)
        return None
    stack.append(key)
    checker = _ModelChecker(prog, diags, file, model, stack)
    info = checker.run()
    stack.pop()
    prog.infos[key] = info
    return info


def check_source(source: Source) -> tuple[CheckedProgram, list[Diagnostic]]:
    """Check every model of every file in ``source``; return the program and all diagnostics."""
    prog = CheckedProgram(source)
    diags = Collector()
    for file, module in source.modules.items():
        for model in module.models:
            check_model(prog, diags, file, model, [])
    from .check_blocks import check_blocks  # the pydantic block models load only here

    check_blocks(prog, diags)
    return prog, diags.items
