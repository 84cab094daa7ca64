"""The diffusion of an SDE model in SymPy, next to the drift: ``dx = der(x) dt + noise dW``.

``noise(x) = expr`` (diagonal noise) gives one expression per component of ``x`` (a scalar
broadcast); states without a ``noise`` line get 0. ``noise = MATRIX`` (general noise) is the
``n x m`` matrix over all state components. Sub-models' diagonal noise is kept in composites (it is
per state); a general ``noise`` matrix is only taken from the model being lowered.

Example:
    >>> import sympy as sp
    >>> x, s = sp.symbols("x s", real=True)
    >>> sym = NoiseSym.diagonal([x], {x: s * x})
    >>> sym.kind, sym.channels, sym.additive, sym.matrix()
    ('diagonal', 1, False, Matrix([[s*x]]))
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["NoiseSym", "ito_correction_expr"]


@dataclass
class NoiseSym:
    """A lowered diffusion: ``exprs`` is one per state (diagonal) or the ``n x channels`` matrix
    row-major (general); ``additive``: free of the states (Ito and Stratonovich readings agree);
    ``sde_type``: ``ito`` or ``stratonovich`` (the model's ``sde = ...``)."""

    kind: str
    exprs: list[sp.Expr]
    channels: int
    additive: bool
    sde_type: str = "ito"

    @staticmethod
    def diagonal(states: list[sp.Symbol], by_state: dict[sp.Symbol, sp.Expr]) -> NoiseSym:
        """Diagonal noise over ``states`` from ``{state: expr}`` (missing states: 0)."""
        # the lowering gives SymPy expressions; a plain number (a test's dict) becomes one by constructor
        exprs = [_expr(by_state.get(s, 0)) for s in states]
        return NoiseSym("diagonal", exprs, len(states), _additive(exprs, states))

    @staticmethod
    def general(states: list[sp.Symbol], matrix: sp.Matrix) -> NoiseSym:
        """General noise: the ``n x m`` matrix ``matrix`` (rows: state components)."""
        exprs = list(matrix)
        return NoiseSym("general", exprs, matrix.cols, _additive(exprs, states))

    def matrix(self) -> sp.Matrix:
        """The ``n x m`` diffusion matrix (diagonal noise: the diagonal matrix)."""
        if self.kind == "diagonal":
            return sp.diag(*self.exprs)
        return sp.Matrix(len(self.exprs) // self.channels, self.channels, self.exprs)

    def xreplace(self, subst: dict) -> NoiseSym:
        """With symbols replaced (connections, renaming)."""
        if not subst:
            return self
        exprs = [e.xreplace(subst) for e in self.exprs]
        return NoiseSym(self.kind, exprs, self.channels, self.additive, self.sde_type)


def _expr(value: sp.Expr | float) -> sp.Expr:
    if isinstance(value, sp.Basic):
        return value
    return sp.Integer(value) if float(value).is_integer() else sp.Float(value)


def _additive(exprs: list[sp.Expr], states: list[sp.Symbol]) -> bool:
    own = set(states)
    return not any(e.free_symbols & own for e in exprs) and not any(e.atoms(sp.Function) for e in exprs)


def ito_correction_expr(noise: NoiseSym, H: sp.Expr, states: list[sp.Symbol]) -> sp.Expr:
    """``1/2 tr(g^T Hess(H) g)``: the Ito term in ``dH`` of a port-Hamiltonian SDE.

    Example:
        >>> q, p, s = sp.symbols("q p s", real=True)
        >>> ito_correction_expr(NoiseSym.diagonal([q, p], {p: s}), p**2 / 2 + q**2, [q, p])
        s**2/2
    """
    g = noise.matrix()
    hess = sp.hessian(H, states)
    term = (g.T * hess * g).trace() / 2
    if noise.sde_type == "stratonovich" and noise.kind == "diagonal":
        # the Ito form of a Stratonovich model has the extra drift 1/2 g dg/dx; its power enters dH too
        term += sum(sp.diff(H, s) * e * sp.diff(e, s) / 2 for s, e in zip(states, noise.exprs))
    return sp.simplify(term)


# ---------------------------------------------------------------- lowering (called by the instance builder)
def lower_noise_decl(inst, decl) -> None:
    """Record a checked ``noise`` declaration on a model instance (``inst.expr`` lowers expressions)."""
    from .functions import zip_vals

    value = inst.expr(decl.expr)
    if decl.state is None:
        inst.noise_matrix = value.matrix()
        return
    target = inst.env[decl.state]
    noise = inst.__dict__.setdefault("noise", {})
    for s, e in zip(target.items, zip_vals(lambda x, _: x, value, target).items):
        noise[s] = e


def renamed_noise(tpl, new, ren) -> None:
    """Copy a template instance's noise to its renamed copy ``new`` (``ren`` renames an expression)."""
    new.noise = {ren(k): ren(v) for k, v in getattr(tpl, "noise", {}).items()}
    matrix = getattr(tpl, "noise_matrix", None)
    new.noise_matrix = None if matrix is None else matrix.applyfunc(ren)


def _diagonal_of_tree(inst) -> dict:
    out = dict(getattr(inst, "noise", {}))
    for sub in inst.subs.values():
        out.update(_diagonal_of_tree(sub))
    return out


def system_noise(inst, states: list[sp.Symbol], subst: dict | None = None) -> NoiseSym | None:
    """The model's :class:`NoiseSym` over ``states`` (the system's order), or ``None`` without noise;
    ``subst`` replaces connected inputs by their sources."""
    from dataclasses import replace

    from ..frontend import ast

    kinds = inst.info.model.decls(ast.SdeKind)
    sde_type = kinds[0].kind if kinds else "ito"  # checked: ito or stratonovich, the sub-models' alike
    matrix = getattr(inst, "noise_matrix", None)
    if matrix is not None:
        return replace(NoiseSym.general(states, matrix).xreplace(subst or {}), sde_type=sde_type)
    diagonal = _diagonal_of_tree(inst)
    if not diagonal:
        return None
    return replace(NoiseSym.diagonal(states, diagonal).xreplace(subst or {}), sde_type=sde_type)
