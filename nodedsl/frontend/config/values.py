"""AST values of ``dataset``/``train`` blocks -> plain Python, with the source span of every key.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> tr = parse_source("train M { data = d\\n solver = rk4(0.1) }", "m.node").trains[0]
    >>> spans, diags = {}, []
    >>> normalize(entries_to_plain(tr.entries, (), spans, diags), (), spans, diags)
    {'data': 'd', 'solver': {'kind': 'rk4', 'step': 0.1}}
"""

from __future__ import annotations

import math
from typing import Any

from ...core.diagnostics import Diagnostic, Span
from ...core.solvers import CATALOG
from .. import ast

PathT = tuple[str | int, ...]
CMDLINE = Span("<command line>", 0, 0)


def _number(v: float) -> int | float:
    """Integral numbers become ints (the parser reads every number as a float)."""
    if math.isfinite(v) and float(v).is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def to_plain(
    value: ast.Value, path: PathT = (), spans: dict | None = None, diags: list[Diagnostic] | None = None
) -> Any:
    """Plain Python for a value: numbers, strings (names too; ``none``/``true``/``false`` are None/bools),
    lists, dicts, calls.

    A call becomes ``{"name": n, "args": [...], "kwargs": {...}}``. ``spans[path]`` receives the span of
    every key, list item and call argument below ``path`` (map keys: the whole ``key = value``).
    """
    spans = {} if spans is None else spans
    diags = [] if diags is None else diags
    spans.setdefault(path, value.span)
    if isinstance(value, ast.VNumber):
        return _number(value.value)
    if isinstance(value, ast.VString):
        return value.value
    if isinstance(value, ast.VName):
        return {"none": None, "true": True, "false": False}.get(value.name, value.name)
    if isinstance(value, ast.VList):
        out = []
        for i, item in enumerate(value.items):
            spans[path + (i,)] = item.span
            out.append(to_plain(item, path + (i,), spans, diags))
        return out
    if isinstance(value, ast.VMap):
        return entries_to_plain(value.entries, path, spans, diags)
    if isinstance(value, ast.VExpr):  # checked and compiled where it is used (dataset inputs)
        return {"kind": "expression", "expr": value.expr}
    if isinstance(value, ast.VCall):
        args, kwargs = [], {}
        for i, arg in enumerate(value.args):
            if arg.name is None:
                spans[path + (i,)] = arg.span
                args.append(to_plain(arg.value, path + (i,), spans, diags))
            elif arg.name in kwargs:
                diags.append(
                    Diagnostic("duplicate-key", f"argument '{arg.name}' of {value.name}(...) is given twice", arg.span)
                )
            else:
                spans[path + (arg.name,)] = arg.span
                kwargs[arg.name] = to_plain(arg.value, path + (arg.name,), spans, diags)
        return {"name": value.name, "args": args, "kwargs": kwargs}
    raise TypeError(f"not a value: {value!r}")  # pragma: no cover - the parser builds only the above


def entries_to_plain(
    entries: tuple[ast.Entry, ...], path: PathT = (), spans: dict | None = None, diags: list[Diagnostic] | None = None
) -> dict:
    """A ``{ key = value ... }`` body as a dict; a key given twice is a ``duplicate-key`` diagnostic."""
    spans = {} if spans is None else spans
    diags = [] if diags is None else diags
    out: dict[str, Any] = {}
    for e in entries:
        if e.key in out:
            diags.append(
                Diagnostic(
                    "duplicate-key",
                    f"key '{e.key}' is given twice",
                    e.span,
                    (f"first given at {spans.get(path + (e.key,), e.span)}",),
                )
            )
            continue
        spans[path + (e.key,)] = e.span
        out[e.key] = to_plain(e.value, path + (e.key,), spans, diags)
    return out


# Positional parameters of the calls the blocks know; a call becomes {"kind": name, **kwargs}.
# A solver's positional parameters follow its family (a family not listed takes keywords only).
_SOLVER_POSITIONAL = {
    "explicit": ("step",),
    "symplectic": ("step",),
    "implicit": ("step",),
    "adaptive": ("rtol", "atol"),
    "stiff": ("rtol", "atol"),
    "taylor": ("order", "step"),
    "sde": ("step", "seed"),
    "exponential": ("order", "step"),
}
SIGNATURES: dict[str, tuple[str, ...]] = {
    "span": ("t0", "t1", "step"),
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "adam": ("lr", "weight_decay"),
    "adamw": ("lr", "weight_decay"),
    "lbfgs": ("lr", "max_iter"),
    "gauss_newton": ("damping",),
    "kfac": ("lr", "damping"),
    "cosine": ("min_lr",),
    "step": ("every", "gamma"),
    "exponential": ("gamma",),
    "early_stopping": ("patience", "min_delta"),
    "checkpoint": ("segments",),
    "sine": ("amplitude", "frequency", "phase"),
    "multisine": ("amplitude", "f0", "f1", "n"),
    "chirp": ("amplitude", "f0", "f1"),
    "prbs": ("amplitude", "period"),
    "steps": ("amplitude", "period"),
    "learned": ("after",),
    "augmented_lagrangian": ("mu", "growth", "mu_max", "update_every", "tolerance"),
    "ndo": ("weight",),
    "spline": ("weight", "smoothing"),
    "finite_difference": ("weight",),
    "density": ("trace",),
    **{name: _SOLVER_POSITIONAL.get(spec.family, ()) for name, spec in CATALOG.items()},
}


def normalize(value: Any, path: PathT, spans: dict, diags: list[Diagnostic]) -> Any:
    """Calls -> ``{"kind": name, **kwargs}`` with positional arguments named (spans follow)."""
    if isinstance(value, list):
        return [normalize(v, path + (i,), spans, diags) for i, v in enumerate(value)]
    if isinstance(value, dict) and set(value) == {"name", "args", "kwargs"} and isinstance(value["name"], str):
        name, args, kwargs = value["name"], value["args"], value["kwargs"]
        out: dict[str, Any] = {"kind": name}
        sig = SIGNATURES.get(name, ())
        if len(args) > len(sig) and name in SIGNATURES:
            where = spans.get(path + (len(sig),), spans.get(path, CMDLINE))
            takes = (
                f"at most {len(sig)} positional argument(s) ({', '.join(sig)})"
                if sig
                else "only named arguments (name = value)"
            )
            diags.append(Diagnostic("bad-value", f"{name}(...) takes {takes}, got {len(args)}", where))
        for i, (pname, arg) in enumerate(zip(sig, args)):
            if pname in kwargs:
                diags.append(
                    Diagnostic(
                        "duplicate-key",
                        f"argument '{pname}' of {name}(...) is given twice",
                        spans.get(path + (pname,), spans.get(path, CMDLINE)),
                    )
                )
                continue
            if path + (i,) in spans:
                spans[path + (pname,)] = spans[path + (i,)]
            out[pname] = normalize(arg, path + (pname,), spans, diags)
        for k, v in kwargs.items():
            if k == "kind":
                diags.append(
                    Diagnostic(
                        "unknown-key", f"unknown argument 'kind' of {name}(...)", spans.get(path + (k,), CMDLINE)
                    )
                )
                continue
            out[k] = normalize(v, path + (k,), spans, diags)
        return out
    if isinstance(value, dict):
        return {k: normalize(v, path + (k,), spans, diags) for k, v in value.items()}
    return value
