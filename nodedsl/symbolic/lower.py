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

from dataclasses import replace

import sympy as sp

from ..core.diagnostics import Collector
from ..frontend import ast
from ..frontend.check import ModelInfo, flat_names
from .builtins import sigmoid, softplus
from .events import lower_when
from .instance import Instance
from .noise import system_noise
from .system import Collected, ConstraintSym, ParamSym, PHParts, PortSym, Staged, System, T

__all__ = [
    "ConstraintSym",
    "Instance",
    "PHParts",
    "ParamSym",
    "PortSym",
    "Staged",
    "System",
    "T",
    "lower",
    "sigmoid",
    "softplus",
]


def lower(info: ModelInfo) -> System:
    """Lower a checked model to a flat :class:`System` (raises NodeDslError on algebraic loops)."""
    diags = Collector()
    inst = Instance(info, diags=diags)
    return _flatten(inst, diags)


def _flatten(inst: Instance, diags: Collector) -> System:
    info = inst.info
    parts = Collected()
    subst: dict = {}
    if inst.ph is not None:
        _collect_ph(inst, parts)
        states = inst.ph_states
        x0 = parts.x0
        rhs = [inst.rhs[s] for s in states]
        # declared inputs (a source's drive) first, then the free ports' inputs
        inputs = [s for s, _ in parts.inputs] + [s for p in inst.ph.ports for s in p.inputs]
        u0 = [v for _, v in parts.inputs] + [0.0] * (len(inputs) - len(parts.inputs))
        constraints = parts.constraints
    else:
        inst.collect(parts)
        states, x0 = parts.states, parts.x0
        subst = _connections(inst, diags)
        inputs = [s for s, _ in parts.inputs if s not in subst]
        u0 = [v for s, v in parts.inputs if s not in subst]
        rhs = [parts.rhs[s].xreplace(subst) if subst else parts.rhs[s] for s in states]
        constraints = [
            replace(c, residual=[r.xreplace(subst) for r in c.residual]) if subst else c for c in parts.constraints
        ]
    diags.raise_if_errors()
    if info.outputs:
        outputs = [x for n, _ in info.outputs for x in inst.env[n].items]
        outputs = [o.xreplace(subst) for o in outputs] if subst else outputs
        names = [nm for n, s in info.outputs for nm in flat_names(n, s)]
    else:
        latent = set(info.latent_names())  # never observed: no output unless an `output` says so
        outputs = [s for s in states if s.name not in latent]
        names = [s.name for s in outputs]
    # separability is decided with the known parameters' values in place: R = [[0, 0], [0, delta]] with
    # delta = 0 is separable, whatever symbol delta is
    known = {
        sym: sp.Integer(int(v)) if float(v).is_integer() else sp.Float(v)
        for p in parts.params
        if p.learn is None
        for sym, v in zip(p.symbols, p.value)
    }
    split = _symplectic_split(states, rhs, known)
    staged = None
    if info.is_ph and inst.coupled and not _static_coupled(inst.coupled):
        us: list[sp.Symbol] = []
        ys: list[sp.Expr] = []
        entries: list[tuple[int, int, sp.Expr]] = []
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
        parts.params,
        parts.nets,
        rhs,
        outputs,
        names,
        constraints,
        inst.ph,
        split,
        staged,
        noise=system_noise(inst, states, subst),
        events=[lower_when(inst, d, k) for k, d in enumerate(info.model.decls(ast.When))],
    )


def _static_coupled(coupled: list[tuple[list[sp.Symbol], list[sp.Expr], sp.Matrix]]) -> bool:
    """Whether a coupled output depends on a coupled input (a stateless port): then ``u = C y`` is not
    one linear map of outputs computed first, and the field is compiled with it substituted."""
    us = {u for inputs, _, _ in coupled for u in inputs}
    return any(y.free_symbols & us for _, ys, _ in coupled for y in ys)


def _collect_ph(inst: Instance, parts: Collected) -> None:
    parts.x0 += inst.x0
    parts.inputs += list(zip(inst.inputs, inst.u0))
    parts.params += inst.params
    parts.nets.update(inst.nets)
    parts.constraints += inst.constraints
    for sub in inst.subs.values():
        _collect_ph(sub, parts)


def _connections(inst: Instance, diags: Collector) -> dict:
    """input symbol -> driving expression, for every connect in the instance tree."""
    subst: dict[sp.Symbol, sp.Expr] = {}

    def visit(i: Instance):
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


def _symplectic_split(states: list[sp.Symbol], rhs: list[sp.Expr], known: dict) -> int | None:
    """n_q when x = [q, p] with dq/dt depending only on p and dp/dt only on q (separable: leapfrog applies).

    ``known`` (parameter symbol -> value) is put in only where an equation fails the test without it:
    substituting every equation of a 3000-state chain cost a third of its lowering."""
    n = len(states)
    if n % 2:
        return None
    h = n // 2
    q, p = set(states[:h]), set(states[h:])
    for i, e in enumerate(rhs):
        wrong = q if i < h else p
        if e.free_symbols & wrong and (not known or e.xreplace(known).free_symbols & wrong):
            return None
    return h
