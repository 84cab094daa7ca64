"""Renaming a lowered template instance under a prefix (``left.`` for ``sub left = ...``).

Renaming is an ``xreplace`` of symbols and net calls, far cheaper than lowering again
(``sympy.diff`` of H, matrix products), which keeps chains of many instances linear and fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp

from .functions import NetCall, Val, net_function
from .system import ConstraintSym, ParamSym, PHParts, PortSym, T

if TYPE_CHECKING:
    from .instance import Instance


def renamed(tpl: Instance, prefix: str) -> Instance:
    """A copy of a template instance (lowered under the empty prefix) with every name prefixed."""
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
            [sub.ph for sub in new.subs.values() if sub.ph is not None],
            [([prefix + n for n in names], ren_m(C)) for names, C in ph.couplings],
            [
                PortSym(prefix + p.name, [ren(u) for u in p.inputs], ren_m(p.G), [ren(y) for y in p.output])
                for p in ph.own_ports
            ],
        )
        new.ph_states = list(new.ph.x)
    return new
