"""Checks of ``noise`` declarations (stochastic models, contract section 9).

* ``noise(x) = expr``: ``x`` must be a state of this model (``undefined-name`` with a suggestion, or
  ``noise-not-state``), at most one per state (``duplicate-noise``), ``expr`` a scalar or of ``x``'s
  size (``size-mismatch``);
* ``noise = MATRIX``: an ``n x m`` matrix, ``n`` the number of state components of the model with its
  sub-models (``size-mismatch``), at most once (``duplicate-noise``);
* at most one form per model, counting sub-models' noise (``noise-both-forms``); a sub-model with a
  noise matrix cannot be composed (``unsupported``: its rows would not cover the composite's states).

``check_noise`` is called by the model checker with itself, so expression sizes are checked by the
same rules as ``der``.
"""

from __future__ import annotations

from typing import Any

from ..core.diagnostics import suggest
from . import ast


def has_noise(model: ast.Model) -> str | None:
    """``"diagonal"``, ``"general"`` or ``None``: the noise form a model declares itself."""
    decls = model.decls(ast.Noise)
    if not decls:
        return None
    return "general" if any(d.state is None for d in decls) else "diagonal"


def check_noise(checker: Any, n_states: int) -> None:
    """Check the model's ``noise`` declarations; ``n_states``: state components with sub-models'."""
    decls = checker.model.decls(ast.Noise)
    info, d = checker.info, checker.d
    sub_forms = {name: has_noise(sinfo.model) for name, sinfo in info.subs.items()}
    for name, form in sub_forms.items():
        if form == "general":
            d.error(
                "unsupported",
                f"sub-model '{name}' declares noise = MATRIX, which cannot be composed; "
                "write its noise per state (noise(x) = ...)",
                info.members[name].decl.span,
            )
    seen: dict[str | None, ast.Noise] = {}
    form: str | None = "diagonal" if any(f == "diagonal" for f in sub_forms.values()) else None
    for decl in decls:
        this = "general" if decl.state is None else "diagonal"
        if form is not None and form != this:
            d.error(
                "noise-both-forms",
                "a model has either noise(x) = ... lines (diagonal noise, also from its sub-models) or one "
                "noise = MATRIX (general noise), not both",
                decl.span,
            )
            continue
        form = this
        if decl.state in seen:
            what = "noise = MATRIX" if decl.state is None else f"noise({decl.state})"
            d.error("duplicate-noise", f"{what} is given twice", decl.span, f"first given at {seen[decl.state].span}")
            continue
        seen[decl.state] = decl
        if decl.state is None:
            _matrix(checker, decl, n_states)
        else:
            _diagonal(checker, decl)


def _diagonal(checker: Any, decl: ast.Noise) -> None:
    member = checker.info.members.get(decl.state)
    if member is None or member.kind != "state":
        states = [n for n, m in checker.info.members.items() if m.kind == "state"]
        if member is None:
            checker.d.error(
                "undefined-name", f"unknown state '{decl.state}' in noise(...)", decl.span, suggest(decl.state, states)
            )
        else:
            checker.d.error(
                "noise-not-state",
                f"noise({decl.state}): '{decl.state}' is a {member.kind}, not a state",
                decl.span,
                suggest(decl.state, states),
            )
        return
    checker.expect(decl.expr, member.shape, f"noise({decl.state})", allow_scalar=True)


def _matrix(checker: Any, decl: ast.Noise, n_states: int) -> None:
    got = checker.shape(decl.expr, {})
    if got is None:
        return
    if len(got) != 2 or got[0] != n_states:
        shown = "a scalar" if got == () else "x".join(map(str, got))
        checker.d.error(
            "size-mismatch",
            f"noise = MATRIX must be {n_states} x m (one row per state component, one column per Wiener "
            f"process), but the expression is {shown}",
            decl.expr.span,
        )


__all__ = ["check_noise", "has_noise"]
