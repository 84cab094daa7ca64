"""Solver calls on the command line, in the ``train`` block's syntax: ``--solver "dopri5(rtol = 1e-10)"``.

The text is parsed by the grammar's ``value`` rule (never pasted into a source file) and its options are
checked against the solver catalog, so a bad option is reported as it would be in a ``train`` block.

Example:
    >>> parse_solver_arg("taylor(order = 3, step = 0.1)")
    ('taylor', {'order': 3, 'step': 0.1})
    >>> parse_solver_arg("rk4")
    ('rk4', {})
"""

from __future__ import annotations

from typing import Any

from ...core.diagnostics import NodeDslError, Span
from ...core.errors import SolverError
from ...core.solvers import check_options
from ..parse import parse_value
from .values import to_plain

__all__ = ["parse_solver_arg"]


def parse_solver_arg(text: str, option: str = "--solver") -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a solver named on the command line; ``bad-argument`` if it is not one."""
    where = Span(f"<{option}>", 0, 0)
    try:
        plain = to_plain(parse_value(text.strip(), f"<{option}>"))
    except NodeDslError as err:
        d = err.diagnostics[0]
        raise NodeDslError.single(
            "bad-argument", f"{option} '{text}': {d.message}", where, "write a solver like dopri5(rtol = 1e-8)"
        ) from None
    if isinstance(plain, str):
        name, options = plain, {}
    elif isinstance(plain, dict) and isinstance(plain.get("name"), str) and not plain.get("args"):
        name, options = plain["name"], dict(plain["kwargs"])
    else:
        raise NodeDslError.single(
            "bad-argument", f"{option} '{text}' is not a solver", where, "options are named: rk4(step = 0.01)"
        )
    try:
        check_options(name, options)
    except SolverError as err:
        if not (err.option == "step" and "step" not in options):  # a step is filled in from the output grid
            raise NodeDslError.single("bad-argument", f"{option}: {err.message}", where) from None
    return name, options
