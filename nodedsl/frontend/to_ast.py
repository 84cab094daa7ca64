"""The parse tree to :class:`nodedsl.frontend.ast` nodes: one Transformer method per grammar rule.

It also watches what the grammar cannot: a number literal or a constant subexpression beyond a double
(``1e999``, ``2^2^2^2^2^2``) is ``bad-constant``, and a size beyond the ``elements`` limit is
``too-large``, before any later stage allocates or computes it.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> parse_source("model M {\\n state x = 1\\n der(x) = -x * 2^3\\n}\\n").models[0].body[1].expr.op
    '*'
"""

from __future__ import annotations

import math
from typing import Any

from lark import Token, Transformer, v_args

from ..core.diagnostics import Collector, Span
from ..core.limits import limit, over_limit
from . import ast
from .keywords import KEYWORDS, RESERVED_NOTES
from .parse_events import EventsToAst, ObserversToAst


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)


def _arith(fn: Any) -> Any:
    def safe(*args: float) -> float | complex | None:
        try:
            return fn(*args)
        except OverflowError:
            return math.inf
        except (ZeroDivisionError, ValueError, TypeError):
            return None

    return safe


_OPS = {
    "+": _arith(lambda a, b: a + b),
    "-": _arith(lambda a, b: a - b),
    "*": _arith(lambda a, b: a * b),
    "/": _arith(lambda a, b: a / b),
    "^": _arith(lambda a, b: a**b),
    "@": _arith(lambda a, b: None),
    "neg": _arith(lambda a: -a),
}


def _bin(op: str) -> Any:
    """The transformer callback of a binary operator."""

    @v_args(meta=True)
    def build(self: _ToAst, meta: Any, items: list) -> ast.BinOp:
        node = ast.BinOp(op, items[0], items[1], self._span(meta))
        self._fold(node)
        return node

    return build


class _ToAst(EventsToAst, ObserversToAst, Transformer):
    """One method per grammar rule, each one AST constructor."""

    def __init__(self, file: str, diags: Collector):
        super().__init__()
        self.file = file
        self.diags = diags
        self._consts: dict[int, float] = {}  # id(node) -> value of constant subexpressions
        self._keep: list[Any] = []  # the nodes behind those ids stay alive while the ids are in use

    def _fold(self, node: ast.BinOp | ast.Neg) -> None:
        """Track the value of constant arithmetic; a constant beyond a double (``2^2^2^2^2^2``) is
        ``bad-constant`` here, before SymPy would try to compute it exactly (hours, gigabytes)."""
        args = [
            self._consts.get(id(x))
            for x in ((node.left, node.right) if isinstance(node, ast.BinOp) else (node.operand,))
        ]
        if any(a is None for a in args):
            return
        value = _OPS[node.op if isinstance(node, ast.BinOp) else "neg"](*args)
        if value is None:
            return
        if isinstance(value, complex) or value != value:
            return
        if not math.isfinite(value):
            self.diags.error(
                "bad-constant",
                "this constant is too large to represent (a double's maximum is about 1.8e308)",
                node.span,
            )
            return
        self._consts[id(node)] = value
        self._keep.append(node)

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.file, 0, 0)
        return Span(self.file, meta.line, meta.column, meta.end_line, meta.end_column)

    def _decl_name(self, tok: Token) -> str:
        if str(tok) in KEYWORDS:
            self.diags.error(
                "reserved-name",
                f"'{tok}' is a reserved keyword and cannot be used as a name",
                _tok_span(self.file, tok),
                *RESERVED_NOTES.get(str(tok), ()),
            )
        return str(tok)

    def _int(self, tok: Token, what: str) -> int:
        text = str(tok)
        if not text.isdigit() or text.strip("0") == "":
            self.diags.error("bad-size", f"{what} must be a positive integer, got '{text}'", _tok_span(self.file, tok))
            return 1
        if len(text.lstrip("0")) > 18 or int(text) > limit("elements"):
            self.diags.items.append(over_limit("elements", text, "this declaration", _tok_span(self.file, tok)))
            return 1
        return int(text)

    # ---- top level
    def start(self, items):
        mods = [i for i in items if isinstance(i, ast.Model)]
        return ast.Module(
            self.file,
            tuple(i for i in items if isinstance(i, ast.Import)),
            tuple(mods),
            tuple(i for i in items if isinstance(i, ast.Dataset)),
            tuple(i for i in items if isinstance(i, ast.Train)),
            tuple(i for i in items if isinstance(i, ast.Observer)),
        )

    @v_args(meta=True)
    def import_stmt(self, meta, items):
        path = str(items[1])[1:-1]
        alias = self._decl_name(items[3]) if len(items) > 3 and items[3] is not None else None
        return ast.Import(path, alias, self._span(meta))

    @v_args(meta=True)
    def model(self, meta, items):
        name, kind = items[1], items[2]
        body = tuple(i for i in items[3:] if not isinstance(i, Token))
        kind_span = _tok_span(self.file, kind) if kind is not None else Span(self.file, 0, 0)
        return ast.Model(
            self._decl_name(name), str(kind) if kind is not None else None, body, self._span(meta), kind_span
        )

    # ---- declarations
    def size(self, items):
        dims = tuple(self._int(tok, "a size") for tok in items)
        return dims[0] if len(dims) == 1 else dims

    @v_args(meta=True)
    def state(self, meta, items):
        return ast.State(self._decl_name(items[1]), items[2], items[4], self._span(meta), items[3] is not None)

    @v_args(meta=True)
    def input(self, meta, items):
        return ast.Input(self._decl_name(items[1]), items[2], items[3], self._span(meta))

    @v_args(meta=True)
    def param(self, meta, items):
        return ast.Param(self._decl_name(items[1]), items[2], items[3], items[4], self._span(meta))

    @v_args(meta=True)
    def learn_free(self, meta, items):
        return ast.Learn("free", span=self._span(meta))

    @v_args(meta=True)
    def learn_positive(self, meta, items):
        return ast.Learn("positive", span=self._span(meta))

    @v_args(meta=True)
    def learn_interval(self, meta, items):
        return ast.Learn("interval", items[2], items[3], self._span(meta))

    @v_args(meta=True)
    def net(self, meta, items):
        args = tuple(i for i in items[2:] if isinstance(i, ast.NetArg))
        arrow = next(i for i, x in enumerate(items) if isinstance(x, Token) and x.type == "ARROW")
        out = self._int(items[arrow + 1], "a net's output size")
        opts = items[arrow + 2] or ()
        return ast.Net(self._decl_name(items[1]), args, out, opts, self._span(meta))

    @v_args(meta=True)
    def net_arg(self, meta, items):
        return ast.NetArg(self._decl_name(items[0]), items[1], self._span(meta))

    def options(self, items):
        return tuple(items)

    @v_args(meta=True)
    def option(self, meta, items):
        return ast.Entry(items[0], items[1], self._span(meta))

    @v_args(meta=True)
    def let(self, meta, items):
        return ast.Let(self._decl_name(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def output(self, meta, items):
        return ast.Output(self._decl_name(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def constraint(self, meta, items):
        name = self._decl_name(items[1]) if items[1] is not None else None
        lhs, op, rhs, domains, weight = items[2], str(items[3]), items[4], items[5], items[6]
        return ast.Constraint(name, lhs, op, rhs, domains or (), weight, self._span(meta))

    def for_clause(self, items):
        return tuple(items[1:])

    @v_args(meta=True)
    def domain(self, meta, items):
        return ast.Domain(self._decl_name(items[0]), items[2], items[3], self._span(meta))

    def weight_clause(self, items):
        return items[1]

    @v_args(meta=True)
    def hamiltonian(self, meta, items):
        return ast.Hamiltonian(items[1], self._span(meta))

    @v_args(meta=True)
    def jmat(self, meta, items):
        return ast.JMatrix(items[1], self._span(meta))

    @v_args(meta=True)
    def rmat(self, meta, items):
        return ast.RMatrix(items[1], self._span(meta))

    @v_args(meta=True)
    def port(self, meta, items):
        return ast.Port(self._decl_name(items[1]), tuple(items[2:]), self._span(meta))

    @v_args(meta=True)
    def port_item(self, meta, items):
        return ast.PortItem(str(items[0]), items[1], self._span(meta))

    @v_args(meta=True)
    def sub(self, meta, items):
        overrides = tuple(i for i in items[3:] if isinstance(i, ast.Override))
        weights = next((str(i)[1:-1] for i in items if isinstance(i, Token) and i.type == "STRING"), None)
        return ast.Sub(self._decl_name(items[1]), items[2], overrides, weights, self._span(meta))

    @v_args(meta=True)
    def override(self, meta, items):
        return ast.Override(str(items[0]), items[1], self._span(meta))

    @v_args(meta=True)
    def couple(self, meta, items):
        ports = tuple(i for i in items if isinstance(i, ast.Name))
        rest = items[1 + len(ports) :]
        name, value = str(rest[0]), rest[1]
        if isinstance(value, tuple) and value and value[0] == "learn":
            return ast.Couple(ports, name, None, value[1], self._span(meta))
        return ast.Couple(ports, name, value, None, self._span(meta))

    def learn_skew(self, items):
        return ("learn", str(items[1]))

    @v_args(meta=True)
    def connect(self, meta, items):
        return ast.Connect(items[1], items[3], self._span(meta))

    # ---- data and training
    @v_args(meta=True)
    def dataset(self, meta, items):
        return ast.Dataset(self._decl_name(items[1]), tuple(items[2:]), self._span(meta))

    @v_args(meta=True)
    def train(self, meta, items):
        return ast.Train(items[1].dotted, tuple(items[2:]), self._span(meta))

    @v_args(meta=True)
    def entry(self, meta, items):
        return ast.Entry(items[0], items[1], self._span(meta))

    def key(self, items):
        return ".".join(str(t) for t in items)

    @v_args(meta=True)
    def v_number(self, meta, items):
        return ast.VNumber(self._float(items[0], self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def v_neg_number(self, meta, items):
        return ast.VNumber(-self._float(items[0], self._span(meta)), self._span(meta))

    @v_args(meta=True)
    def v_string(self, meta, items):
        return ast.VString(str(items[0])[1:-1], self._span(meta))

    @v_args(meta=True)
    def v_name(self, meta, items):
        return ast.VName(items[0].dotted, self._span(meta))

    @v_args(meta=True)
    def v_list(self, meta, items):
        return ast.VList(tuple(i for i in items if i is not None), self._span(meta))

    @v_args(meta=True)
    def v_map(self, meta, items):
        return ast.VMap(tuple(items), self._span(meta))

    @v_args(meta=True)
    def v_call(self, meta, items):
        return ast.VCall(items[0].dotted, tuple(i for i in items[1:] if i is not None), self._span(meta))

    @v_args(meta=True)
    def v_expr(self, meta, items):
        return ast.VExpr(items[0], self._span(meta))

    @v_args(meta=True)
    def pos_arg(self, meta, items):
        return ast.Arg(None, items[0], self._span(meta))

    @v_args(meta=True)
    def kw_arg(self, meta, items):
        return ast.Arg(str(items[0]), items[1], self._span(meta))

    # ---- expressions

    add, sub_, mul, div, matmul, pow = _bin("+"), _bin("-"), _bin("*"), _bin("/"), _bin("@"), _bin("^")

    @v_args(meta=True)
    def neg(self, meta, items):
        node = ast.Neg(items[0], self._span(meta))
        self._fold(node)
        return node

    def _float(self, tok: Token, span: Span) -> float:
        """The value of a number literal; ``bad-constant`` when it overflows a double (``1e999``)."""
        value = float(tok)
        if not math.isfinite(value):
            self.diags.error(
                "bad-constant",
                f"the number {tok} is too large to represent (a double's maximum is about 1.8e308)",
                span,
            )
            return 0.0
        return value

    @v_args(meta=True)
    def number(self, meta, items):
        node = ast.Num(self._float(items[0], self._span(meta)), str(items[0]), self._span(meta))
        self._consts[id(node)] = node.value
        self._keep.append(node)
        return node

    @v_args(meta=True)
    def name(self, meta, items):
        return items[0]

    @v_args(meta=True)
    def dotted(self, meta, items):
        return ast.Name(tuple(str(t) for t in items), self._span(meta))

    @v_args(meta=True)
    def call(self, meta, items):
        return ast.Call(items[0], tuple(i for i in items[1:] if i is not None), self._span(meta))

    @v_args(meta=True)
    def array(self, meta, items):
        return ast.Array(tuple(items), self._span(meta))
