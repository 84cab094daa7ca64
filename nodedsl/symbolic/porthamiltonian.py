"""Port-Hamiltonian lowering: ``dx/dt = (J - R) grad H + G u`` of an instance, with ``grad H`` from
``sympy.diff`` and every ``couple`` ``u = C y`` substituted into the sub-models' port inputs.

The functions take the :class:`~nodedsl.symbolic.instance.Instance` being lowered (they are its
port-Hamiltonian part, kept apart so each module stays small).
"""

from __future__ import annotations

from typing import Any, Protocol

import sympy as sp

from ..core.diagnostics import Collector
from ..frontend import ast
from ..frontend.check import ModelInfo
from .functions import Val, skew_matrix
from .system import ParamSym, PHParts, PortSym


class Instance(Protocol):
    """What these functions use of ``nodedsl.symbolic.instance.Instance`` (which imports this module)."""

    info: ModelInfo
    prefix: str
    states: list[sp.Symbol]
    params: list[ParamSym]
    subs: dict[str, Any]
    rhs: dict[sp.Symbol, sp.Expr]
    rhs_open: dict[sp.Symbol, sp.Expr]
    coupled: list[tuple[list[sp.Symbol], list[sp.Expr], sp.Matrix]]
    ph: PHParts | None
    ph_states: list[sp.Symbol]
    d: Collector

    def expr(self, e: ast.Expr, scope: dict[str, Val] | None = None) -> Val: ...

    def declare_symbols(self, name: str, shape: tuple[int, ...]) -> Val: ...


def build_port_hamiltonian(self: Instance) -> None:
    """dx/dt = (J - R) grad H + G u, assembled block by block so composites stay linear in size.

    A coupling u = C y is substituted into the sub-models' port inputs: this is exactly
    (J + G C G^T) grad H without ever forming the composite J."""
    m = self.info.model
    own = list(self.states)
    n = len(own)
    H = self.expr(m.decls(ast.Hamiltonian)[0].expr).expr if m.decls(ast.Hamiltonian) else sp.Integer(0)
    J, R = own_structure(self)
    grad = [sp.diff(H, s) for s in own]
    gvec = sp.Matrix(grad)
    dx = (J - R) * gvec if n else sp.zeros(0, 1)
    ports: list[PortSym] = []
    for port in m.decls(ast.Port):
        relation = next((i.expr for i in port.items if i.key == "y"), None)
        if relation is not None:  # a stateless port: y = f(u), no effect on this model's own states
            u = list(self.declare_symbols(port.name, ()).items)
            y = self.expr(relation, {"u": Val.scalar(u[0])}).expr
            ports.append(PortSym(self.prefix + port.name, u, sp.zeros(n, 1), [y], static=True))
            continue
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
    h_terms, d_terms, s_terms = [H], [dissipation], [sp.Integer(0)]
    subs: list[PHParts] = []
    for sub in self.subs.values():
        sph = sub.ph
        assert sph is not None, "a sub-model of a port-Hamiltonian model is port-Hamiltonian (checked)"
        subs.append(sph)
        x += sph.x
        h_terms.append(sph.H)
        grad += sph.grad
        d_terms.append(sph.dissipation)
        s_terms.append(sph.supplied)
        rhs.update(sub.rhs)
        open_rhs.update(sub.rhs_open)
        coupled += sub.coupled
        ports += sph.ports
    H = sp.Add(*h_terms)  # one Add: repeated += is quadratic in SymPy
    couplings: list[tuple[list[str], sp.Matrix]] = []
    subst: dict[sp.Symbol, sp.Expr] = {}
    by_name = {p.name: p for p in ports}
    by_name_all = list(ports)
    for couple in m.decls(ast.Couple):
        names = [self.prefix + ref.dotted for ref in couple.ports]
        chosen = [by_name.pop(nm) for nm in names]
        ys = [y for p in chosen for y in p.output]
        if couple.learn:
            k = len(ys)
            val = self.declare_symbols(couple.matrix_name, (k * (k - 1) // 2,))
            self.params.append(
                ParamSym(self.prefix + couple.matrix_name, val.shape, list(val.items), [0.0] * len(val.items), "skew")
            )
            C = skew_matrix(list(val.items))
        else:
            C = self.expr(couple.matrix).matrix()
        us = [u for p in chosen for u in p.inputs]
        subst.update(zip(us, _times(C, ys)))
        couplings.append((names, C))
        coupled.append((us, ys, C))
    ports = list(by_name.values())
    static = [p for p in by_name_all if p.static and p.name not in by_name]
    if static:
        subst = resolve_static(self, subst)
        static_powers(static, subst, d_terms, s_terms)
    dissipation, supplied = sp.Add(*d_terms), sp.Add(*s_terms)
    if subst:
        rhs = {s: e.xreplace(subst) for s, e in rhs.items()}
    self.rhs, self.rhs_open, self.coupled = rhs, open_rhs, coupled
    self.ph = PHParts(H, grad, ports, dissipation, x, J, R, subs, couplings, own_ports, supplied)
    self.ph_states = x


def _times(C: sp.Matrix, ys: list[sp.Expr]) -> list[sp.Expr]:
    # C y over C's nonzero entries: SymPy's Matrix product (DomainMatrix) was 60 % of a chain's assembly
    return [sp.Add(*[C[i, j] * ys[j] for j in range(C.cols) if C[i, j] != 0]) for i in range(C.rows)]


def static_powers(static: list[PortSym], subst: dict, d_terms: list, s_terms: list) -> None:
    """The power ``u y`` into each coupled stateless port: dissipated by a resistor (its ``y`` depends on
    its ``u``), supplied (``-u y``) by a source (``y`` free of ``u``)."""
    for p in static:
        power = sp.Add(*[u * y for u, y in zip(p.inputs, p.output)]).xreplace(subst)
        own_u = set(p.inputs)
        if any(own_u & y.free_symbols for y in p.output):
            d_terms.append(power)
        else:
            s_terms.append(-power)


def resolve_static(self: Instance, subst: dict[sp.Symbol, sp.Expr]) -> dict[sp.Symbol, sp.Expr]:
    """``u = C y`` with the outputs of stateless ports ``y = f(u)`` in ``y``: substituted until no coupled
    input is left on a right-hand side. A loop of stateless ports (``u_r`` depends on ``y_r``, e.g. two
    resistors coupled to each other) has no explicit solution: ``algebraic-loop``, at the couple."""
    keys = set(subst)
    for _ in range(len(subst) + 1):
        if not any(e.free_symbols & keys for e in subst.values()):
            return subst
        subst = {u: e.xreplace(subst) for u, e in subst.items()}
    stuck = sorted(str(u) for u, e in subst.items() if e.free_symbols & keys)
    couple = self.info.model.decls(ast.Couple)[0]
    self.d.error(
        "algebraic-loop",
        f"the coupled stateless ports form an algebraic loop (inputs {', '.join(stuck)} depend on themselves)",
        couple.span,
        "couple each resistor or source to a port of the states (an inductor, a capacitor), not to another "
        "stateless port",
    )
    return {u: e if not (e.free_symbols & keys) else sp.Integer(0) for u, e in subst.items()}


def own_structure(self: Instance) -> tuple[sp.Matrix, sp.Matrix]:
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
