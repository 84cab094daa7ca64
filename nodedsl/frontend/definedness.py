"""Can a general model's equations lose their value when lowered? A syntactic screen, no SymPy.

``nodedsl check`` looks for equations without a finite real value (``1 / (x - x)``, ``sqrt(-2)``,
``log(0)``) by lowering the model with SymPy and searching for ``zoo``/``nan``/``I``/``oo``. SymPy
only produces those when a subexpression evaluates to a singular *constant*; a state, parameter,
input, domain variable or ``t`` is a real symbol that SymPy never evaluates. So a model whose
divisors, partial-function arguments (``sqrt``, ``log``, ``tan``) and power bases are symbols,
non-zero numbers or products of them, and which calls only total functions, cannot have such a
value, and the check can skip SymPy (and its import). Anything else answers "maybe": the caller
lowers the model as before. The screen is conservative by construction; a test compares it with the
lowering on every example, the error corpus and generated models.

Example:
    >>> from nodedsl.frontend.check import check_source
    >>> from nodedsl.frontend.loader import source_from_text
    >>> checked, _ = check_source(source_from_text(
    ...     "model A { state x = 1\\n param k = 2\\n der(x) = -x / k }\\n"
    ...     "model B { state x = 1\\n let z = x - x\\n der(x) = 1 / z }", "m.node"))
    >>> [may_lack_value(i) for i in checked.root_models()]
    [False, True]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

from . import ast
from .model_info import ModelInfo

# builtins defined on every real argument (a value in, a finite real value out)
TOTAL = frozenset(
    {
        "sin", "cos", "exp", "tanh", "sigmoid", "softplus", "abs", "sign", "min", "max", "clip",
        "dot", "norm", "transpose", "skew", "psd", "diag", "sum", "prod",
    }
)  # fmt: skip
PARTIAL = frozenset({"sqrt", "log", "tan"})  # defined on symbols and positive numbers
_SYMBOL_KINDS = frozenset({"state", "param", "input"})


def may_lack_value(info: ModelInfo) -> bool:
    """True unless every equation of a model without sub-models is provably free of singular constants."""
    if info.subs or info.is_ph:
        return True
    symbols = {n for n, m in info.members.items() if m.kind in _SYMBOL_KINDS} | {"t"}
    symbols |= {d.var for c in info.model.decls(ast.Constraint) for d in c.domains}
    nets = {n for n, m in info.members.items() if m.kind == "net"}
    return not all(_safe(e, symbols, nets) for e in _expressions(info.model))


def _expressions(node: object) -> Iterator[ast.Expr]:
    """Every outermost expression of a declaration tree (dataclass fields, tuples)."""
    if isinstance(node, (ast.Num, ast.Name, ast.Call, ast.Index, ast.Array, ast.BinOp, ast.Neg)):
        yield node
    elif isinstance(node, tuple):
        for item in node:
            yield from _expressions(item)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            yield from _expressions(getattr(node, f.name))


def _symbolic(e: ast.Expr, symbols: set[str]) -> bool:
    """A real symbol (or an indexed component of one): SymPy never evaluates it."""
    if isinstance(e, ast.Index):
        return isinstance(e.index, ast.Num) and _symbolic(e.target, symbols)
    return isinstance(e, ast.Name) and len(e.parts) == 1 and e.parts[0] in symbols


def _nonzero(e: ast.Expr, symbols: set[str]) -> bool:
    """Never a zero constant: symbols, non-zero finite numbers, and their products, negations, powers."""
    if isinstance(e, ast.Num):
        return math.isfinite(e.value) and e.value != 0
    if isinstance(e, ast.Neg):
        return _nonzero(e.operand, symbols)
    if isinstance(e, ast.BinOp) and e.op == "*":
        return _nonzero(e.left, symbols) and _nonzero(e.right, symbols)
    if isinstance(e, ast.BinOp) and e.op == "^":
        return _nonzero(e.left, symbols) and isinstance(e.right, ast.Num) and math.isfinite(e.right.value)
    return _symbolic(e, symbols)


def _has_symbol(e: ast.Expr, symbols: set[str]) -> bool:
    if _symbolic(e, symbols):
        return True
    if isinstance(e, ast.Neg):
        return _has_symbol(e.operand, symbols)
    return isinstance(e, ast.BinOp) and (_has_symbol(e.left, symbols) or _has_symbol(e.right, symbols))


def _safe(e: ast.Expr, symbols: set[str], nets: set[str]) -> bool:
    """No subexpression can evaluate to a singular constant."""
    if isinstance(e, ast.Num):
        return math.isfinite(e.value)
    if isinstance(e, ast.Name):
        return True
    if isinstance(e, ast.Neg):
        return _safe(e.operand, symbols, nets)
    if isinstance(e, (ast.Index, ast.Array)):
        parts = (e.target, e.index) if isinstance(e, ast.Index) else e.items
        return all(_safe(p, symbols, nets) for p in parts)
    if isinstance(e, ast.Call):
        name = e.func.dotted
        if not all(_safe(a, symbols, nets) for a in e.args):
            return False
        if name in TOTAL or name in nets:
            return True
        return name in PARTIAL and len(e.args) == 1 and _domain_ok(e.args[0], symbols)
    if isinstance(e, ast.BinOp):
        if not (_safe(e.left, symbols, nets) and _safe(e.right, symbols, nets)):
            return False
        if e.op == "/":
            return _nonzero(e.right, symbols)
        if e.op == "^":
            natural = isinstance(e.right, ast.Num) and e.right.value >= 0 and e.right.value == int(e.right.value)
            return natural or _domain_ok(e.left, symbols)
        return e.op in ("+", "-", "*", "@")
    return False


def _domain_ok(e: ast.Expr, symbols: set[str]) -> bool:
    """A valid argument of sqrt/log/tan and a base of any power: symbolic, or a positive number."""
    if isinstance(e, ast.Num):
        return math.isfinite(e.value) and e.value > 0
    return _nonzero(e, symbols) and _has_symbol(e, symbols)
