"""Properties of the states (``x^2 + v^2 <= 4``), parsed by nodedsl's grammar and interpreted over torch.

The text is wrapped in a one-line model (``constraint __property: TEXT``) and parsed by the project's
parser; the resulting expression tree is evaluated by a small interpreter over tensors (numbers,
state names, ``+ - * / ^``, indexing of vector states, the language's unary functions, ``min``/``max``).
Nothing is ever evaluated by Python. ``g(x) = lhs - rhs`` for ``<=`` (``rhs - lhs`` for ``>=``) is
``<= 0`` exactly where the property holds.

Example:
    >>> import torch
    >>> p = parse_property("x^2 + v^2 <= 4", ("x", "v"))
    >>> p.margin(torch.tensor([[1.0, 1.0], [2.0, 1.0]])).tolist()
    [-2.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from ..frontend import ast
from ..frontend.parse import parse_source

__all__ = ["Property", "parse_property"]

_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": torch.nn.functional.softplus,
    "abs": torch.abs,
    "sign": torch.sign,
}
_FILE = "<--property>"


@dataclass(frozen=True)
class Property:
    """A checked inequality of the states: ``margin(x) <= 0`` where it holds."""

    text: str
    op: str
    lhs: ast.Expr
    rhs: ast.Expr
    names: tuple[str, ...]

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch]``: how far ``x [batch, n]`` is from violating (``> 0``: violated)."""
        lhs, rhs = _eval(self.lhs, x, self.names), _eval(self.rhs, x, self.names)
        g = lhs - rhs if self.op == "<=" else rhs - lhs
        return g.expand(x.shape[0]) if g.dim() == 0 else g


_PREFIX = " constraint __property: "


def _error(message: str, span: Span | None = None, *notes: str) -> NodeDslError:
    span = _unwrap(span) if span is not None else Span(_FILE, 1, 1)
    return NodeDslError.single("bad-property", message, span, *[n for n in notes if n])


def _unwrap(span: Span) -> Span:
    """A span in the wrapping model text -> the same place in the property text (line 1)."""
    if span.file != _FILE or span.line != 2:
        return span
    end = max(span.end_col - len(_PREFIX), 1) if span.end_line == 2 else 0
    return Span(_FILE, 1, max(span.col - len(_PREFIX), 1), 1 if end else 0, end)


def parse_property(text: str, state_names: tuple[str, ...]) -> Property:
    """Parse ``text`` (``EXPR <= EXPR`` or ``EXPR >= EXPR``) and check its names against ``state_names``."""
    if "\n" in text or "}" in text or "#" in text:
        raise _error("a property is one expression on one line")
    try:
        module = parse_source("model __property {\n" + _PREFIX + text + "\n}\n", _FILE)
    except NodeDslError as err:
        raise NodeDslError(
            [Diagnostic(d.code, d.message, _unwrap(d.span), d.notes, d.severity) for d in err.diagnostics]
        ) from None
    (decl,) = module.models[0].decls(ast.Constraint)
    if decl.domains or decl.weight is not None:
        raise _error("a property takes no 'for' or 'weight' clause", decl.span)
    if decl.op == "==":
        raise _error("a property is an inequality ('<=' or '>='), not '=='", decl.span)
    prop = Property(text, decl.op, decl.lhs, decl.rhs, tuple(state_names))
    probe = torch.zeros(1, len(state_names))
    prop.margin(probe)  # reports unknown names and functions now, located
    return prop


def _name(expr: ast.Name, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    name = ".".join(expr.parts)
    if name in names:
        return x[:, names.index(name)]
    members = [i for i, n in enumerate(names) if n.startswith(name + "[")]
    if members:
        return x[:, members]
    raise _error(f"the property uses '{name}', which is not a state", expr.span, suggest(name, names) or "")


def _eval(expr: ast.Expr, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    if isinstance(expr, ast.Num):
        return torch.tensor(expr.value, dtype=x.dtype, device=x.device)
    if isinstance(expr, ast.Name):
        return _name(expr, x, names)
    if isinstance(expr, ast.Neg):
        return -_eval(expr.operand, x, names)
    if isinstance(expr, ast.BinOp):
        a, b = _eval(expr.left, x, names), _eval(expr.right, x, names)
        if expr.op == "+":
            return a + b
        if expr.op == "-":
            return a - b
        if expr.op == "*":
            return a * b
        if expr.op == "/":
            return a / b
        if expr.op == "^":
            return a**b
        raise _error(f"operator '{expr.op}' is not available in a property", expr.span)
    if isinstance(expr, ast.Index):
        target = _eval(expr.target, x, names)
        if not isinstance(expr.index, ast.Num) or target.dim() != 2:
            raise _error("only vector states can be indexed, by a number", expr.span)
        i = int(expr.index.value)
        if not 0 <= i < target.shape[1]:
            raise _error(f"index {i} is out of range (size {target.shape[1]})", expr.span)
        return target[:, i]
    if isinstance(expr, ast.Call):
        return _call(expr, x, names)
    raise _error(f"'{type(expr).__name__.lower()}' is not available in a property", getattr(expr, "span", None))


def _call(expr: ast.Call, x: torch.Tensor, names: tuple[str, ...]) -> torch.Tensor:
    fname = ".".join(expr.func.parts)
    args = [_eval(a, x, names) for a in expr.args]
    if fname in _UNARY and len(args) == 1:
        return _UNARY[fname](args[0])
    if fname in ("min", "max") and len(args) == 2:
        a, b = torch.broadcast_tensors(*args)
        return torch.minimum(a, b) if fname == "min" else torch.maximum(a, b)
    known = [*_UNARY, "min", "max"]
    raise _error(
        f"'{fname}' with {len(args)} argument(s) is not a function a property can use",
        expr.span,
        suggest(fname, known) or "functions: " + ", ".join(known),
    )
