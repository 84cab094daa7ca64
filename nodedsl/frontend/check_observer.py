"""Checking ``observer NAME for MODEL { ... }`` blocks (contract §11) into :class:`ObserverSpec` data.

An observer names a model of the file's scope, measures expressions of that model's states, and has
a ``kind``: ``kkl(dim, poles, learn_D = false)`` (model-free: ``z' = D z + F y``, the estimate
``T_inv(z)`` from a net declared in the block) or ``luenberger(gain = MATRIX | learn)`` (a copy of the
model corrected by ``gain (y - y_hat)``). Every problem is a located diagnostic.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> src = source_from_text('''model M { state a = 1; state b = 0; der(a) = b; der(b) = -a }
    ... observer O for M { measure y = a; kind = kkl(dim = 3, poles = [-1, -2, -3])
    ... net T_inv(z[3]) -> 2 { hidden = [8] } }''', "m.node")
    >>> prog, diags = check_source(src)
    >>> spec = prog.configs["observer O"]
    >>> spec.kind, spec.dim, spec.poles, spec.states, [m.name for m in spec.measures]
    ('kkl', 3, (-1.0, -2.0, -3.0), ('a', 'b'), ['y'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.diagnostics import Collector, Span, suggest
from . import ast
from .config.values import entries_to_plain
from .model_info import CheckedProgram, ModelInfo, flat_names
from .netspec import NetSpec, net_spec, validate_net_options

__all__ = ["ObserverSpec", "check_observers"]

# optional keys of an observer block: how `nodedsl train --observer` samples its training trajectories
TRAINING_KEYS = {
    "initial": "a map STATE = uniform(low, high) (the box initial states are drawn from)",
    "trajectories": "a positive integer (simulated training trajectories)",
    "time": "a positive number (seconds simulated per trajectory)",
    "step": "a positive number (the simulation step)",
    "epochs": "a positive integer",
    "samples": "a positive integer (training pairs kept per trajectory)",
    "lr": "a positive number (Adam's learning rate)",
    "noise": "a non-negative number (measurement noise std added while training)",
    "seed": "a non-negative integer",
}
_KINDS = "kkl(dim = m, poles = [...], learn_D = false) or luenberger(gain = MATRIX | learn)"


@dataclass(frozen=True)
class ObserverSpec:
    """A checked observer: what it measures and how it estimates the model's states."""

    name: str
    model: str
    kind: str  # kkl | luenberger
    states: tuple[str, ...]  # the model's flat state names, the estimate's order
    measures: tuple[ast.Measure, ...]
    dim: int = 0  # kkl: the observer state's size
    poles: tuple[float, ...] = ()  # kkl: the diagonal of D
    learn_D: bool = False
    gain: tuple[tuple[float, ...], ...] | None = None  # luenberger: n x p, None when learned
    net: NetSpec | None = None  # kkl: T_inv
    training: dict = field(default_factory=dict)  # the training keys below, as plain values


def check_observers(prog: CheckedProgram, diags: Collector) -> None:
    """Check the root file's observers; each valid one lands in ``prog.configs["observer NAME"]``."""
    module = prog.source.modules[prog.source.root]
    scope = prog.source.scopes.get(prog.source.root, {})
    models = [n for n, (_, v) in scope.items() if isinstance(v, ast.Model)]
    seen: set[str] = set()
    for obs in module.observers:
        if obs.name in seen or obs.name in scope:
            diags.error("duplicate-name", f"'{obs.name}' is declared twice in this file", obs.span)
        seen.add(obs.name)
        info = prog.model(obs.model)
        if info is None:
            if obs.model not in models:  # a model that exists but failed its own check says so itself
                diags.error(
                    "observer-unknown-model",
                    f"observer '{obs.name}': unknown model '{obs.model}'",
                    obs.model_span,
                    suggest(obs.model, models),
                )
            continue
        spec = _check_one(obs, info, diags)
        if spec is not None:
            prog.configs[f"observer {obs.name}"] = spec


def _names(e: ast.Expr) -> list[ast.Name]:
    if isinstance(e, ast.Name):
        return [e]
    if isinstance(e, ast.Call):
        return [n for a in e.args for n in _names(a)]
    if isinstance(e, ast.Index):
        return _names(e.target) + _names(e.index)
    if isinstance(e, ast.BinOp):
        return _names(e.left) + _names(e.right)
    if isinstance(e, ast.Neg):
        return _names(e.operand)
    if isinstance(e, ast.Array):
        return [n for i in e.items for n in _names(i)]
    return []


def _check_one(obs: ast.Observer, info: ModelInfo, diags: Collector) -> ObserverSpec | None:
    before = len(diags.errors)
    known = {n: m.kind for n, m in info.members.items() if m.kind == "state"}
    if not obs.measures:
        diags.error("observer-kind", f"observer '{obs.name}' measures nothing", obs.span, "add `measure y = x1`")
    for meas in obs.measures:
        for name in _names(meas.expr):
            if name.dotted not in known and name.dotted not in ("sin", "cos", "exp", "tanh", "sqrt", "abs"):
                diags.error(
                    "observer-unknown-name",
                    f"observer '{obs.name}' measures '{name.dotted}', which is no state of model '{info.name}'",
                    name.span,
                    suggest(name.dotted, known),
                )
    spans: dict = {}
    errs: list = []
    entries = entries_to_plain(obs.entries, (), spans, errs)
    diags.items.extend(errs)
    for key, value in entries.items():
        if key == "kind":
            continue
        if key not in TRAINING_KEYS:
            diags.error(
                "observer-kind",
                f"observer '{obs.name}': unknown key '{key}'",
                spans[(key,)],
                suggest(key, ["kind", *TRAINING_KEYS]),
                "keys: kind, " + ", ".join(TRAINING_KEYS),
            )
        elif key == "initial":
            _check_initial(obs, value, info, spans[(key,)], diags)
        elif (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or value < 0
            or (key in ("trajectories", "epochs", "samples") and (not isinstance(value, int) or value < 1))
        ):
            diags.error("observer-kind", f"observer '{obs.name}': {key} must be {TRAINING_KEYS[key]}", spans[(key,)])
    kind = entries.get("kind")
    states = tuple(n for s, shape in info.states for n in flat_names(s, shape))
    fields: dict[str, Any] = {}
    if not isinstance(kind, dict) or kind.get("name") not in ("kkl", "luenberger"):
        diags.error("observer-kind", f"observer '{obs.name}': kind must be {_KINDS}", spans.get(("kind",), obs.span))
    elif kind["name"] == "kkl":
        fields = _kkl(obs, kind, spans.get(("kind",), obs.span), len(states), diags)
    else:
        fields = _luenberger(obs, kind, spans.get(("kind",), obs.span), len(states), len(obs.measures), diags)
    if len(diags.errors) > before or not isinstance(kind, dict):
        return None
    training = {k: v for k, v in entries.items() if k != "kind"}
    return ObserverSpec(obs.name, info.name, kind["name"], states, obs.measures, training=training, **fields)


def _check_initial(obs: ast.Observer, value: Any, info: ModelInfo, span: Span, diags: Collector) -> None:
    states = {n for n, m in info.members.items() if m.kind == "state"}
    ok = isinstance(value, dict) and all(
        isinstance(v, dict) and v.get("name") == "uniform" and len(v["args"]) == 2 for v in value.values()
    )
    if not ok:
        diags.error("observer-kind", "initial = { STATE = uniform(low, high), ... }", span)
        return
    for name in value:
        if name not in states:
            diags.error(
                "observer-unknown-name",
                f"observer '{obs.name}': '{name}' in initial is no state of '{info.name}'",
                span,
                suggest(name, states),
            )


def _kkl(obs: ast.Observer, kind: dict, span: Span, n: int, diags: Collector) -> dict:
    kw = kind["kwargs"]
    for key in kw:
        if key not in ("dim", "poles", "learn_D"):
            diags.error("observer-kind", f"kkl(...) has no argument '{key}'", span, "arguments: dim, poles, learn_D")
    dim, poles = kw.get("dim"), kw.get("poles")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        diags.error("observer-kind", "kkl(dim = m) needs a positive integer dimension", span)
        dim = 0
    if not isinstance(poles, list) or not all(isinstance(p, (int, float)) and p < 0 for p in poles):
        diags.error("observer-kind", "kkl(poles = [...]) needs a list of negative numbers (stable poles)", span)
        poles = []
    elif dim and len(poles) != dim:
        diags.error("observer-size", f"kkl has dim = {dim} but {len(poles)} poles", span)
    nets = {net.name: net for net in obs.nets}
    net = nets.get("T_inv")
    for other in nets:
        if other != "T_inv":
            diags.error("observer-kind", f"an observer declares one net, T_inv; got '{other}'", nets[other].span)
    if net is None:
        diags.error("observer-kind", f"observer '{obs.name}' (kkl) needs `net T_inv(z[{dim or 'm'}]) -> {n}`", obs.span)
        return {}
    diags.items.extend(validate_net_options(net))
    ins = sum(a.size or 1 for a in net.args)
    if dim and ins != dim:
        diags.error("observer-size", f"T_inv takes {ins} inputs but the observer state has dim = {dim}", net.span)
    if net.out != n:
        diags.error(
            "observer-size",
            f"T_inv returns {net.out} values but model '{obs.model}' has {n} state components",
            net.span,
            f"write `-> {n}`",
        )
    learn_d = kw.get("learn_D", False)
    if not isinstance(learn_d, bool):
        diags.error("observer-kind", "kkl(learn_D = ...) is true or false", span)
    return {"dim": dim, "poles": tuple(float(p) for p in poles), "learn_D": bool(learn_d), "net": net_spec(net)}


def _luenberger(obs: ast.Observer, kind: dict, span: Span, n: int, p: int, diags: Collector) -> dict:
    kw = kind["kwargs"]
    gain = kw.get("gain")
    if set(kw) != {"gain"}:
        diags.error("observer-kind", "luenberger(...) takes one argument, gain = MATRIX | learn", span)
        return {}
    if obs.nets:
        diags.error("observer-kind", "a luenberger observer declares no net", obs.nets[0].span)
    if gain == "learn":
        return {"gain": None}
    rows = gain if isinstance(gain, list) else []
    if p == 1 and rows and all(isinstance(r, (int, float)) for r in rows):
        rows = [[r] for r in rows]  # one measurement: a column written as a flat list
    if not rows or not all(isinstance(r, list) and all(isinstance(v, (int, float)) for v in r) for r in rows):
        diags.error("observer-kind", "luenberger(gain = ...) is a matrix (a list of rows) or `learn`", span)
        return {}
    if len(rows) != n or any(len(r) != p for r in rows):
        diags.error(
            "observer-size",
            f"the gain must be {n} x {p} (states x measurements), got {len(rows)} x {len(rows[0])}",
            span,
        )
        return {}
    return {"gain": tuple(tuple(float(v) for v in r) for r in rows)}
