"""Structural proofs of port-Hamiltonian models: J skew-symmetric, R positive semi-definite,
couplings skew — symbolically, with SymPy, on each model's own states (and per ``sub`` override).

What is accepted: a known matrix proven by simplification; ``skew(v)`` / ``psd(v)`` by construction;
a diagonal R whose entries SymPy proves non-negative, knowing known parameters by value, ``positive``
(and ``in [a, b]`` with ``a >= 0``) parameters as positive, softplus/sigmoid/relu-output nets and the
builtins declared with a non-negative output (``nodedsl.core.builtins``: ``sigmoid``, ``softplus``,
``exp``, ``abs``) as non-negative.

Example:
    >>> import nodedsl
    >>> nodedsl.loads("model M : port_hamiltonian { state q = 1\\n state p = 0\\n hamiltonian = p^2\\n"
    ...               " R = [[0, 0], [0, -1]] }")                        # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nodedsl.core.diagnostics.NodeDslError: <string>:...: cannot prove that R is positive semi-definite: ...
"""

from __future__ import annotations

import sympy as sp

from ..core.builtins import BUILTINS
from ..core.diagnostics import Collector, Diagnostic
from ..frontend import ast
from ..frontend.check import ModelInfo
from ..frontend.netspec import NetSpec
from ..frontend.shapes import constant_value
from .builtins import HEADS
from .functions import NetCall
from .instance import Instance
from .system import ParamSym, num


def _nonneg_assumptions(params: list[ParamSym]) -> dict:
    """Replacements that let SymPy reason about signs: known params by value, positive ones positive."""
    rep: dict = {}
    for p in params:
        for s, v in zip(p.symbols, p.value):
            if p.learn is None:
                rep[s] = num(v)
            elif p.learn == "positive" or (p.learn == "interval" and p.low is not None and p.low >= 0):
                rep[s] = sp.Symbol(s.name, positive=True)
    return rep


def _net_signs(expr: sp.Expr, nets: dict[str, NetSpec]) -> sp.Expr:
    rep: dict = {}
    for call in expr.atoms(NetCall):
        spec = nets.get(call.net)
        rep[call] = (
            sp.Dummy(nonnegative=True)
            if spec is not None and spec.nonnegative and call.arg < 0
            else sp.Dummy(real=True)
        )
    return expr.xreplace(rep) if rep else expr


def _builtin_signs(expr: sp.Expr) -> sp.Expr:
    """Calls of builtins whose declared fact is a non-negative output (``sigmoid``, ``softplus``, ...)
    as non-negative unknowns; sound because every value of the language is real."""
    heads = tuple(HEADS[n] for n, b in BUILTINS.items() if b.nonnegative and n in HEADS)
    rep = {call: sp.Dummy(nonnegative=True) for call in expr.atoms(*heads)}
    return expr.xreplace(rep) if rep else expr


def _short(e) -> str:
    try:
        text = sp.sstr(e)
    except Exception:
        return "?"
    return text if len(text) <= 60 else text[:57] + "..."


def _is_zero(e: sp.Expr) -> bool:
    """Provably zero: after expansion, or after simplification when the expression is small."""
    try:
        e = sp.expand(e)
        if e == 0:
            return True
        return sp.count_ops(e) < 40 and sp.simplify(e) == 0
    except Exception:
        return False


def structure_diagnostics(info: ModelInfo, overrides: dict | None = None) -> list[Diagnostic]:
    """J skew-symmetric, R positive semi-definite and couplings skew, proven symbolically.

    Checks a pH model's own structure (with ``overrides`` of its parameters when given), and for each
    ``sub`` with overrides, the sub-model's structure under those values."""
    try:
        return _structure(info, overrides or {})
    except (ValueError, OverflowError, ArithmeticError, RecursionError) as err:
        return [
            Diagnostic(
                "bad-constant",
                f"a constant of model '{info.name}' cannot be represented: {_short(str(err))}",
                info.model.span,
            )
        ]


def _structure(info: ModelInfo, overrides: dict) -> list[Diagnostic]:
    m = info.model
    out: list[Diagnostic] = []
    if not info.is_ph:
        return out
    for decl in m.decls(ast.Sub):
        sub = info.subs.get(decl.name)
        if sub is not None and decl.overrides and sub.is_ph:
            ov = {o.name: constant_value(o.expr) for o in decl.overrides}
            for d in structure_diagnostics(sub, ov):
                out.append(
                    Diagnostic(
                        d.code, f"with the overrides of sub-model '{decl.name}': {d.message}", decl.span, d.notes
                    )
                )
    J_decl, R_decl = m.decls(ast.JMatrix), m.decls(ast.RMatrix)
    couples = [c for c in m.decls(ast.Couple) if c.matrix is not None]
    if not (J_decl or R_decl or couples):
        return out
    inst = Instance(info, overrides=overrides, diags=Collector(), shallow=True)
    rep = _nonneg_assumptions(inst.params)
    try:
        J, R = inst.own_structure()
    except KeyError:  # J or R refers to sub-model members: nothing to prove at this level
        J = R = None
    if J is not None and J_decl and not _by_construction(J_decl[0].expr, "skew"):
        J = J.xreplace(rep)
        n = J.rows
        bad = [(i, j) for i in range(n) for j in range(i, n) if not _is_zero(J[i, j] + J[j, i])]
        if bad:
            i, j = bad[0]
            out.append(
                Diagnostic(
                    "not-skew",
                    f"J must be skew-symmetric: J[{i},{j}] = {_short(J[i, j])} but J[{j},{i}] = {_short(J[j, i])}",
                    J_decl[0].expr.span,
                    ("build a learned J with skew(v) to make it skew-symmetric by construction",),
                )
            )
    if R is not None and R_decl and not _by_construction(R_decl[0].expr, "psd"):
        R = R.xreplace(rep).applyfunc(lambda e: _net_signs(e, inst.nets))
        reason = _psd_failure(R)
        if reason and not _psd_failure(R.applyfunc(_builtin_signs)):  # only ever accepts more
            reason = ""
        if reason:
            out.append(
                Diagnostic(
                    "not-psd",
                    f"cannot prove that R is positive semi-definite: {reason}",
                    R_decl[0].expr.span,
                    (
                        "write R = psd(v) (L L^T) or a diagonal R with provably "
                        "non-negative entries (softplus/sigmoid nets, positive "
                        "parameters, squares)",
                    ),
                )
            )
    for couple in couples:
        try:
            C = inst.expr(couple.matrix).matrix().xreplace(rep)
        except KeyError:
            continue
        n = C.rows
        bad = [(i, j) for i in range(n) for j in range(i, n) if not _is_zero(C[i, j] + C[j, i])]
        if bad:
            i, j = bad[0]
            out.append(
                Diagnostic(
                    "not-skew",
                    f"{couple.matrix_name} must be skew-symmetric so the coupling conserves "
                    f"power: [{i},{j}] = {_short(C[i, j])} but [{j},{i}] = {_short(C[j, i])}",
                    couple.matrix.span,
                )
            )
    return out


def _by_construction(e: ast.Expr, structure: str) -> bool:
    """A call of a builtin whose result has ``structure`` (skew, psd) by construction (its declared fact)."""
    if not isinstance(e, ast.Call) or len(e.func.parts) != 1:
        return False
    spec = BUILTINS.get(e.func.dotted)
    return spec is not None and spec.structure == structure


def _psd_failure(R: sp.Matrix) -> str:
    n = R.rows
    if any(not _is_zero(R[i, j] - R[j, i]) for i in range(n) for j in range(i + 1, n)):
        return "it is not symmetric"
    if R.is_diagonal():
        for i in range(n):
            if R[i, i].is_nonnegative is not True:
                return f"the diagonal entry R[{i},{i}] = {_short(R[i, i])} may be negative"
        return ""
    if R.free_symbols:
        return "a non-diagonal R with symbolic entries is not provably PSD"
    try:
        import numpy as np

        eig = np.linalg.eigvalsh(np.array(R.evalf().tolist(), dtype=float))
    except Exception:
        return "its entries cannot be evaluated"
    if not np.all(np.isfinite(eig)):
        return "its entries are not finite"
    if eig.min() < -1e-12 * max(1.0, abs(eig).max()):
        return f"it has the negative eigenvalue {eig.min():g}"
    return ""
