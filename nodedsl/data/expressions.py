"""Dataset inputs given as expressions of ``t`` and per-trajectory draws:
``inputs = { force = (0.5 * sin(omega * t)) }`` with ``draws = { omega = uniform(1, 3) }``.

The expressions (checked by ``frontend/check_inputs.py``) are compiled like a model, never evaluated
from text: one state per expression input with ``der(z_i) = expr_i`` and one model input per draw, so
the field at ``(t, z = 0, u = draws)`` is every trajectory's input values at ``t``.

Example:
    >>> import torch
    >>> from nodedsl.frontend.parse import parse_expression
    >>> g = torch.Generator().manual_seed(0)
    >>> fn = expression_inputs({0: parse_expression("2 * w + t")}, {"w": 1.5}, 3, g)
    >>> fn(0.5).tolist()
    [[3.5], [3.5], [3.5]]
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..core.diagnostics import NodeDslError, Span
from ..frontend import ast
from .signals import draw

__all__ = ["expression_inputs"]

F64 = torch.float64


def expression_inputs(
    exprs: dict[int, ast.Expr], draws: dict, count: int, g: torch.Generator
) -> Callable[[float], torch.Tensor]:
    """``u(t) -> [count, len(exprs)]`` (columns in the order of ``exprs``'s keys); each draw is made
    once per trajectory from ``g``, in the order of ``draws``."""
    from ..compiler.module import CompiledModel
    from ..frontend.check import check_source
    from ..frontend.loader import source_from_module
    from ..symbolic.lower import lower

    span = Span("<dataset inputs>", 1, 1)
    names = list(draws)
    values = torch.stack([draw(draws[n], count, g) for n in names], -1) if names else torch.zeros(count, 0, dtype=F64)
    body: list = [ast.Input(n, None, None, span) for n in names]
    for k, (_, e) in enumerate(sorted(exprs.items())):
        body += [ast.State(f"__z{k}", None, ast.Num(0.0, "0", span), span), ast.Der(f"__z{k}", e, span)]
    module = ast.Module("<dataset inputs>", (), (ast.Model("__inputs", None, tuple(body), span),), (), ())
    prog, diags = check_source(source_from_module(module))
    errors = [d for d in diags if d.severity == "error"]
    if errors:  # the dataset check reports these first, located in the block
        raise NodeDslError(errors)
    model = CompiledModel(lower(prog.model("__inputs")), "", F64)
    zeros = torch.zeros(count, len(exprs), dtype=F64)

    def inputs(t: float) -> torch.Tensor:
        with torch.no_grad():
            return model.field(t, zeros, values)

    return inputs
