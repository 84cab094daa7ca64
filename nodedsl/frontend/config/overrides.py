"""Command-line overrides (``--set key=value``) of a validated ``train`` or ``dataset`` config.

Example:
    >>> from nodedsl.frontend.config.schema import TrainConfig
    >>> cfg = TrainConfig.model_validate({"model": "M", "data": "d"})
    >>> new = apply_overrides(cfg, {"solver": "dopri5", "solver.rtol": "1e-6", "epochs": "3"})
    >>> (str(new.solver), new.epochs)
    ('dopri5(rtol = 1e-06)', 3)
    >>> apply_overrides(cfg, {"gradient.segments": "4"}).gradient
    Checkpointing(kind='checkpoint', segments=4)
    >>> str(apply_overrides(cfg, {"solver": "rk4(step = 0.1)"}).solver)
    'rk4(step = 0.1)'
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from ...core.diagnostics import Diagnostic, NodeDslError, suggest
from .errors import to_diagnostics
from .validate import check_solver
from .values import CMDLINE, PathT

ALIASES = {"lr": "optimizer.lr", "step": "solver.step", "mu": "constraints.mu"}
_CALL_KEYS = (
    "solver",
    "optimizer",
    "schedule",
    "constraints",
    "window_init",
    "early_stopping",
    "horizon",
    "gradient",
    "assimilate",
)
_CALL = re.compile(r"([A-Za-z_]\w*)\s*\((.*)\)", re.S)
# a dotted option of a key whose current value is a plain name: the call that option implies
_IMPLIED_CALL = {("gradient", "segments"): "checkpoint"}


def _parse_scalar(text: str) -> Any:
    s = text.strip()
    for conv in (int, float):
        try:
            v = conv(s)
        except ValueError:
            continue
        return v
    if s.lower() in ("none", "null"):
        return None
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    return s


def _parse_call(text: str) -> tuple[str, dict[str, Any]] | None:
    """``name(key = value, ...)`` -> (name, options), or None when ``text`` is not a call."""
    m = _CALL.fullmatch(text.strip())
    if m is None:
        return None
    options: dict[str, Any] = {}
    for item in filter(None, (a.strip() for a in m.group(2).split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            return None
        options[key.strip()] = _parse_scalar(value)
    return m.group(1), options


def _call_value(top: str, value: Any) -> Any:
    """A call key's value given on the command line: a name or a call with options."""
    call = _parse_call(value) if isinstance(value, str) else None
    name, options = call if call is not None else (value, {})
    if top == "solver":
        return {"kind": name, "options": options}
    if top == "gradient" and not options:
        return name  # 'backprop', 'adjoint', 'checkpoint' (the validator fills in the segments)
    return {"kind": name, **options}


def _all_paths(data: Any, path: PathT = ()) -> dict:
    out: dict = {}
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "options" and path == ("solver",):
                out.update(_all_paths(v, path))
                continue
            out[path + (k,)] = CMDLINE
            out.update(_all_paths(v, path + (k,)))
    return out


def apply_overrides(config: BaseModel, overrides: dict[str, str]) -> BaseModel:
    """A copy of ``config`` with ``key=value`` overrides applied (dotted keys reach into calls).

    ``lr`` is short for ``optimizer.lr``; values are read as int, float, ``none`` or text, and a call
    given by name (``optimizer=adamw``) replaces the call with its defaults. Errors: ``bad-override``.
    """
    if not overrides:
        return config
    data = config.model_dump(mode="python")
    fields = [f for f in type(config).model_fields if f != "model"]
    diags: list[Diagnostic] = []
    for raw_key, raw_value in overrides.items():
        key = ALIASES.get(raw_key, raw_key)
        parts = key.split(".")
        top = parts[0]
        value = _parse_scalar(raw_value) if isinstance(raw_value, str) else raw_value
        if top not in fields:
            diags.append(
                Diagnostic(
                    "bad-override",
                    f"unknown key '{raw_key}'",
                    CMDLINE,
                    tuple(
                        n for n in (suggest(raw_key, fields + list(ALIASES)), "valid keys: " + ", ".join(fields)) if n
                    ),
                )
            )
            continue
        if len(parts) == 1:
            if isinstance(value, str) and top in _CALL_KEYS:
                value = _call_value(top, value)
            data[top] = value
            continue
        if len(parts) != 2:
            diags.append(Diagnostic("bad-override", f"key '{raw_key}' is nested too deeply", CMDLINE))
            continue
        current = data.get(top)
        if not isinstance(current, dict) and (top, parts[1]) in _IMPLIED_CALL:
            current = data[top] = {"kind": _IMPLIED_CALL[(top, parts[1])]}
        if top == "solver" and isinstance(current, dict):
            current["options"] = {**current.get("options", {}), parts[1]: value}
        elif isinstance(current, dict):
            current[parts[1]] = value
        else:
            diags.append(
                Diagnostic(
                    "bad-override",
                    f"cannot set '{raw_key}': '{top}' is {current!r}, not a call",
                    CMDLINE,
                    (f"set the whole value first, e.g. --set {top}=NAME",),
                )
            )
    if diags:
        raise NodeDslError(diags)
    try:
        new: Any = type(config).model_validate(data)
    except ValidationError as exc:
        raise NodeDslError(
            [
                Diagnostic("bad-override", d.message.replace("bad value for", "bad override for"), CMDLINE, d.notes)
                for d in to_diagnostics(exc, type(config), _all_paths(data), CMDLINE, "the overrides")
            ]
        ) from None
    new._spans = dict(getattr(config, "_spans", {}))
    solver_diags = check_solver(getattr(new, "solver", None), {}, ("solver",), CMDLINE)
    if solver_diags:
        raise NodeDslError([Diagnostic("bad-override", d.message, CMDLINE) for d in solver_diags])
    return new
