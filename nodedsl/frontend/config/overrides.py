"""Command-line overrides (``--set key=value``) of a validated ``train`` or ``dataset`` config.

Example:
    >>> from nodedsl.frontend.config.schema import TrainConfig
    >>> cfg = TrainConfig.model_validate({"model": "M", "data": "d"})
    >>> new = apply_overrides(cfg, {"solver": "dopri5", "solver.rtol": "1e-6", "epochs": "3"})
    >>> (str(new.solver), new.epochs)
    ('dopri5(rtol = 1e-06)', 3)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ...core.diagnostics import Diagnostic, NodeDslError, suggest
from .errors import to_diagnostics
from .validate import check_solver
from .values import CMDLINE, PathT

ALIASES = {"lr": "optimizer.lr", "step": "solver.step", "mu": "constraints.mu"}
_CALL_KEYS = ("solver", "optimizer", "schedule", "constraints", "window_init", "early_stopping", "horizon")


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
                value = {"kind": value, "options": {}} if top == "solver" else {"kind": value}
            data[top] = value
            continue
        if len(parts) != 2:
            diags.append(Diagnostic("bad-override", f"key '{raw_key}' is nested too deeply", CMDLINE))
            continue
        current = data.get(top)
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
