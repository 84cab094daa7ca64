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
    for name, sub_form in sub_forms.items():
        if sub_form == "general":
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
    assert decl.state is not None  # the diagonal form names its state
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


__all__ = ["check_noise", "check_sde_kind", "has_noise"]

SDE_KINDS = ("ito", "stratonovich")


def sde_kind(model: ast.Model) -> str:
    """The model's ``sde = ...`` (``ito`` when it has none)."""
    decls = model.decls(ast.SdeKind)
    return decls[0].kind if decls else "ito"


def check_sde_kind(checker: Any) -> None:
    """``sde = ito | stratonovich``: once, one of the two, in a model with noise, and the same in the
    model and its sub-models (one reading for every noise term); ``bad-value`` / ``unsupported``."""
    decls = checker.model.decls(ast.SdeKind)
    info, d = checker.info, checker.d
    for k, decl in enumerate(decls):
        if k:
            d.error("bad-value", "sde is given twice", decl.span, f"first given at {decls[0].span}")
        elif decl.kind not in SDE_KINDS:
            hint = suggest(decl.kind, list(SDE_KINDS))
            d.error(
                "bad-value", f"sde = {decl.kind}: expected ito or stratonovich", decl.span, *([hint] if hint else [])
            )
        elif not model_has_noise(info):
            d.error("bad-value", f"sde = {decl.kind} in model '{info.name}', which has no noise", decl.span,
                    "add noise(x) = ... or remove the line")  # fmt: skip
    mine = sde_kind(checker.model)
    for name, sinfo in info.subs.items():
        if has_noise(sinfo.model) is not None and sde_kind(sinfo.model) != mine and mine in SDE_KINDS:
            d.error(
                "unsupported",
                f"sub-model '{name}' reads its noise as {sde_kind(sinfo.model)}, model '{info.name}' as {mine}",
                info.members[name].decl.span,
                "give the composite and its noisy sub-models the same `sde = ...`",
            )


def model_has_noise(info: Any) -> bool:
    """True when the model or one of its sub-models declares noise (an SDE model)."""
    return has_noise(info.model) is not None or any(model_has_noise(s) for s in info.subs.values())


def _entry_span(block: Any, key: str) -> Any:
    return next((e.span for e in block.entries if e.key == key), block.span)


def check_sde_block(info: Any, block: Any, cfg: Any, diags: Any) -> None:
    """A ``dataset`` or ``train`` block against its model: SDE solvers and objectives go with models
    that have noise, ODE solvers with models that have none (``bad-value`` at the key)."""
    from ..core.solvers import CATALOG

    if info is None:
        return
    sde = model_has_noise(info)
    what = f"dataset '{block.name}'" if isinstance(block, ast.Dataset) else f"train {block.model}"
    given = any(e.key == "solver" for e in block.entries)
    solver = getattr(cfg, "solver", None)
    family = CATALOG[solver.kind].family if solver is not None and solver.kind in CATALOG else None
    sde_names = ", ".join(n for n, s in CATALOG.items() if s.family == "sde")
    if given and solver is not None and family is not None and (family == "sde") != sde:
        message = (
            f"{what}: '{solver.kind}' is an SDE solver but model '{info.name}' has no noise"
            if sde is False
            else f"{what}: model '{info.name}' has noise, so it needs an SDE solver, not '{solver.kind}'"
        )
        diags.error("bad-value", message, _entry_span(block, "solver"), f"SDE solvers: {sde_names}")
    objective = getattr(cfg, "objective", None)
    for key in ("objective", "derivatives"):  # density and derivative supervision: ODE models only
        value = getattr(cfg, key, None)
        if sde and value is not None and value.kind in ("density", "ndo", "spline", "finite_difference"):
            diags.error(
                "bad-value",
                f"{what}: {key} = {value.kind} needs an ODE model; '{info.name}' has noise",
                _entry_span(block, key),
            )
    if objective is not None and objective.kind != "density" and not sde:
        diags.error(
            "bad-value",
            f"{what}: objective = {objective.kind} needs a model with noise; '{info.name}' is an ODE",
            _entry_span(block, "objective"),
            "remove the objective (ODE models train by multiple shooting)",
        )
