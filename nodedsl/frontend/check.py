"""The checker: symbols, sizes and structure of every model, all diagnostics collected.

It turns a :class:`~nodedsl.frontend.loader.Source` into a :class:`CheckedProgram` whose
:class:`ModelInfo` objects the lowering stage reads. It never stops at the first problem.

A model is checked in two passes over its declarations, each a dispatch table from the declaration's
type to a method: pass 1 declares every name (so order does not matter except for lets), pass 2
checks values and expressions in source order. Expression shapes live in
:mod:`~nodedsl.frontend.check_exprs`, composition (ports, subs, couplings, connections) in
:mod:`~nodedsl.frontend.check_links`, the result types in :mod:`~nodedsl.frontend.model_info`.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> prog, diags = check_source(source_from_text("model M { state x = 1\\n der(x) = -y }", "m.node"))
    >>> [(d.code, d.message) for d in diags]
    [('undefined-name', "unknown name 'y'")]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.diagnostics import Collector, Diagnostic, Span, suggest
from . import ast
from .check_blocks import check_blocks
from .check_events import check_when
from .check_links import CompositionChecker
from .check_noise import check_noise, check_sde_kind
from .check_observer import check_observers
from .indexform import expand_model, needs_expansion
from .loader import Source
from .model_info import (
    PH,
    CheckedProgram,
    Member,
    ModelInfo,
    decl_shape,
    domain_sizes,
    flat_names,
    numel,
    param_env,
    value_shape,
)
from .netspec import validate_net_options
from .shapes import Shape, constant_value, fmt_shape

__all__ = [
    "PH",
    "CheckedProgram",
    "Member",
    "ModelInfo",
    "check_model",
    "check_source",
    "domain_sizes",
    "flat_names",
]

# pass 1: the member kind each declaration type declares (sized ones take their [size])
_DECLARES: dict[type, str] = {
    ast.State: "state",
    ast.Input: "input",
    ast.Param: "param",
    ast.Net: "net",
    ast.Let: "let",
    ast.Output: "output",
    ast.Port: "port",
    ast.Sub: "sub",
}
_SIZED = (ast.State, ast.Input, ast.Param)


class ModelChecker(CompositionChecker):
    """Checks one model: declarations (two passes), then the structure its kind requires."""

    def run(self) -> ModelInfo:
        """Check the model; the returned info is complete even when diagnostics were reported."""
        m = self.model
        if m.kind is not None and m.kind != PH:
            self.d.error(
                "unknown-model-kind",
                f"unknown model kind '{m.kind}'",
                m.kind_span,
                suggest(m.kind, [PH]) or "the only model kind is 'port_hamiltonian'",
            )
        for decl in m.body:
            self._declare_decl(decl)
        own_states = [(d.name, value_shape(d)) for d in m.decls(ast.State)]
        self.n_own = sum(numel(s) for _, s in own_states)
        self._constraint_names()
        self.env, cyclic = param_env(m)
        for p in cyclic:
            self.d.error("cyclic-definition", f"the value of parameter '{p.name}' depends on itself", p.value.span)
        for decl in m.body:
            method = _PASS2.get(type(decl))
            if method is not None:
                method(self, decl)
        if m.decls(ast.Noise) or any(sub.model.decls(ast.Noise) for sub in self.info.subs.values()):
            n_all = self.n_own + sum(numel(sh) for sub in self.info.subs.values() for _, sh in sub.states)
            check_noise(self, n_all)
        if m.decls(ast.SdeKind) or m.decls(ast.Noise) or self.info.subs:
            check_sde_kind(self)
        if m.kind == PH:
            self._ph_structure(own_states)
        else:
            self._general_structure(own_states)
        self._flatten(own_states)
        return self.info

    def check_sub_model(self, file: str, model: ast.Model, used_at: Span) -> ModelInfo | None:
        return check_model(self.prog, self.d, file, model, self.stack, used_at)

    # ------------------------------------------------------------ pass 1
    def _declare_decl(self, decl: object) -> None:
        kind = _DECLARES.get(type(decl))
        if kind is not None:
            shape = value_shape(decl) if isinstance(decl, (ast.State, ast.Param)) else ()
            shape = decl_shape(decl.size) if isinstance(decl, ast.Input) else shape
            self.declare(decl.name, Member(kind, shape, decl), decl.span)  # type: ignore[attr-defined]
            if isinstance(decl, ast.Sub):
                self._sub(decl)
        elif isinstance(decl, ast.Couple) and decl.learn is not None:
            # a learned coupling is a parameter named after its matrix: names must stay unique
            self.declare(decl.matrix_name, Member("coupling", (), decl), decl.span)

    def _constraint_names(self) -> None:
        named: dict[str, ast.Constraint] = {}
        for c in self.model.decls(ast.Constraint):
            if c.name and c.name in named:
                self.d.error(
                    "duplicate-name",
                    f"constraint '{c.name}' is declared twice",
                    c.span,
                    f"first declared at {named[c.name].span}",
                )
            elif c.name:
                named[c.name] = c

    # ------------------------------------------------------------ pass 2
    def _initial(self, decl: ast.State | ast.Input) -> None:
        value = decl.init if isinstance(decl, ast.State) else decl.default
        if value is not None:
            self.constant(value, f"the initial value of '{decl.name}'")
            self.expect(
                value,
                value_shape(decl) if isinstance(decl, ast.State) else decl_shape(decl.size),
                f"'{decl.name}'",
                allow_scalar=True,
            )

    def _param(self, decl: ast.Param) -> None:
        if decl.name not in self.env and any(p is decl for p in param_env(self.model)[1]):
            return  # reported as cyclic-definition
        self.constant(decl.value, f"the value of parameter '{decl.name}'")
        self.expect(decl.value, value_shape(decl), f"parameter '{decl.name}'", allow_scalar=True)
        self._learn(decl)

    def _let(self, decl: ast.Let) -> None:
        shp = self.shape(decl.expr, {})
        self.defined_lets.add(decl.name)
        if shp is not None and decl.name in self.info.members:
            self.info.members[decl.name].shape = shp

    def _output(self, decl: ast.Output) -> None:
        shp = self.shape(decl.expr, {})
        if shp is not None and decl.name in self.info.members:
            self.info.members[decl.name].shape = shp

    def _hamiltonian(self, decl: ast.Hamiltonian) -> None:
        self._ph_only(decl, "hamiltonian")
        self.expect(decl.expr, (), "the Hamiltonian")

    def _matrix(self, decl: ast.JMatrix | ast.RMatrix) -> None:
        what = "J" if isinstance(decl, ast.JMatrix) else "R"
        self._ph_only(decl, what)
        self.expect(decl.expr, (self.n_own, self.n_own), f"{what} (states: {self.n_own})")

    def _learn(self, decl: ast.Param) -> None:
        learn = decl.learn
        if learn is None:
            return
        value = constant_value(decl.value, self.env)
        if learn.kind == "interval" and learn.low is not None and learn.high is not None:
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
        for diag in validate_net_options(decl):
            self.d.items.append(diag)

    def _der(self, decl: ast.Der) -> None:
        ders = self.ders
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
        if decl.op in ("<", ">"):
            self.d.error(
                "strict-comparison",
                f"a constraint compares with '{decl.op}=', not a strict '{decl.op}'",
                decl.span,
                f"write '{decl.op}=': a penalty can only drive a violation to zero, which a strict inequality "
                "never reaches; for a margin, write e.g. x >= 0.01",
            )
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

    # ------------------------------------------------------------ structure
    def _ph_structure(self, own_states: list[tuple[str, Shape]]) -> None:
        m, info, n_own = self.model, self.info, self.n_own
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
                    f"sub-model '{sub}' of a port-Hamiltonian model must be port-Hamiltonian ('{sinfo.name}' is not)",
                    info.members[sub].decl.span,
                )

    def _general_structure(self, own_states: list[tuple[str, Shape]]) -> None:
        info = self.info
        for sub, sinfo in info.subs.items():
            if sinfo.model.decls(ast.When):
                self.d.error(
                    "unsupported",
                    f"sub-model '{sub}' has when blocks: events are supported in the top-level model only",
                    info.members[sub].decl.span,
                )
            if sinfo.is_ph:
                self.d.error(
                    "unsupported",
                    f"sub-model '{sub}' is port-Hamiltonian: a general model can only "
                    "contain general sub-models (couple ports inside a port_hamiltonian model)",
                    info.members[sub].decl.span,
                )
        for name, _ in own_states:
            if name not in self.ders:
                decl = info.members[name].decl
                self.d.error("missing-der", f"state '{name}' has no der({name}) equation", decl.span)


# pass 2: the check of each declaration type, in source order (types not listed: nothing to check)
_PASS2: dict[type, Callable[[ModelChecker, Any], None]] = {
    ast.State: ModelChecker._initial,
    ast.Input: ModelChecker._initial,
    ast.Param: ModelChecker._param,
    ast.Net: ModelChecker._net,
    ast.Let: ModelChecker._let,
    ast.Output: ModelChecker._output,
    ast.Der: ModelChecker._der,
    ast.Constraint: ModelChecker._constraint,
    ast.Hamiltonian: ModelChecker._hamiltonian,
    ast.JMatrix: ModelChecker._matrix,
    ast.RMatrix: ModelChecker._matrix,
    ast.Port: ModelChecker._port,
    ast.Couple: ModelChecker._couple,
    ast.Connect: ModelChecker._connect,
    ast.When: check_when,
}


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
    if needs_expansion(model, prog.source.texts.get(file)):  # comprehensions, der(u[i]) = ... for i
        model = expand_model(model, param_env(model)[0], diags)
    checker = ModelChecker(prog, diags, file, model, stack)
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
    check_blocks(prog, diags)
    check_observers(prog, diags)
    return prog, diags.items
