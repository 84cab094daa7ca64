"""Checks of ``dataset`` input expressions: ``inputs = { force = (0.5 * sin(omega * t)) }`` may use ``t``,
the dataset's ``draws`` (numbers drawn once per trajectory), ``pi`` and the scalar builtins, nothing else.

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> text = "model M { state x = 0\\n input f = 0\\n der(x) = f }\\n"
    >>> text += "dataset d { model = M\\n time = span(0, 1, step = 0.5)\\n"
    >>> text += " draws = { w = uniform(1, 2) }\\n inputs = { f = (sin(v * t)) } }"
    >>> [(d.code, d.message) for d in check_source(source_from_text(text, "m"))[1]]
    [('undefined-name', "dataset 'd': input 'f' uses 'v', which is not t, a draw or a constant")]
"""

from __future__ import annotations

from typing import Any

from ..core.diagnostics import Collector, suggest
from . import ast
from .model_info import ModelInfo
from .shapes import BUILTINS, CONSTANTS

__all__ = ["check_input_expressions"]

# the elementwise builtins (sin, exp, clip, min, ...) an input expression may call
_SCALAR_BUILTINS = set(BUILTINS) - {"diag", "dot", "norm", "prod", "psd", "skew", "solve", "sum", "transpose"}


def _walk(e: ast.Expr) -> list[ast.Expr]:
    """Every sub-expression of ``e`` (``e`` first)."""
    out: list[ast.Expr] = [e]
    if isinstance(e, ast.Call):
        for a in e.args:
            out += _walk(a)
    elif isinstance(e, ast.BinOp):
        out += _walk(e.left) + _walk(e.right)
    elif isinstance(e, ast.Neg):
        out += _walk(e.operand)
    elif isinstance(e, (ast.Index, ast.Slice, ast.Array, ast.Comprehension)):
        out.append(e)  # reported below: inputs are scalar expressions
    return out


def check_input_expressions(info: ModelInfo | None, ds: ast.Dataset, cfg: Any, diags: Collector) -> None:
    """Each expression input names only ``t``, draws, constants and scalar builtins (located errors)."""
    exprs = {k: v for k, v in cfg.inputs.items() if getattr(v, "kind", None) == "expression"}
    if not exprs:
        return
    draws = set(cfg.draws)
    known = draws | {"t"} | set(CONSTANTS)
    model_names = set(info.members) if info is not None else set()
    for name, value in exprs.items():
        for e in _walk(value.expr):
            if isinstance(e, ast.Name) and e.dotted not in known:
                hint = suggest(e.dotted, sorted(known))
                if info is not None and e.dotted in model_names:
                    hint = (
                        f"'{e.dotted}' is a {info.members[e.dotted].kind} of the model: an input is a function of "
                        "time and draws only; declare a draw: draws = { name = uniform(low, high) }"
                    )
                diags.error(
                    "undefined-name",
                    f"dataset '{ds.name}': input '{name}' uses '{e.dotted}', which is not t, a draw or a constant",
                    e.span,
                    hint or "draws: " + (", ".join(sorted(draws)) or "none (add draws = { omega = uniform(1, 3) })"),
                )
            elif isinstance(e, ast.Call) and e.func.dotted not in _SCALAR_BUILTINS:
                diags.error(
                    "undefined-name",
                    f"dataset '{ds.name}': input '{name}' calls '{e.func.dotted}', not a scalar builtin",
                    e.func.span,
                    suggest(e.func.dotted, sorted(_SCALAR_BUILTINS)) or "e.g. sin, cos, exp, tanh, sqrt, abs",
                )
            elif isinstance(e, (ast.Index, ast.Slice, ast.Array, ast.Comprehension)):
                diags.error("bad-value", f"dataset '{ds.name}': input '{name}' must be a scalar expression", e.span)
    for name in draws & ({"t"} | set(CONSTANTS)):
        diags.error("bad-value", f"dataset '{ds.name}': a draw cannot be named '{name}'", ds.span)
