"""Transformer rules of the v2 syntax (indexed ``der``, ``noise``, ``when`` blocks, matrix entries,
slices, comprehensions, observers): mixins of :class:`nodedsl.frontend.to_ast._ToAst`, one AST constructor
per rule.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> parse_source("model M { state h = 1; der(h) = -1; when h <= 0 or h >= 2 { } }").models[0].body[2].cond.op
    'or'
"""

from __future__ import annotations

from typing import Any

from lark import Token, v_args

from ..core.diagnostics import Span
from . import ast


class EventsToAst:
    """The v2 rules; the host class provides ``file``, ``diags``, ``_span`` and ``_decl_name``."""

    file: str
    diags: Any
    _span: Any
    _decl_name: Any

    def _tok(self, tok: Token) -> Span:
        return Span(self.file, tok.line or 0, tok.column or 0, tok.end_line or 0, tok.end_column or 0)

    @v_args(meta=True)
    def noise(self, meta, items):
        return ast.Noise(None if items[1] is None else str(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def sde(self, meta, items):
        return ast.SdeKind(str(items[1]), self._span(meta))

    @v_args(meta=True)
    def der(self, meta, items):
        tok = items[2]
        if tok is not None and tok.type == "NUMBER":  # one row: der(x[3]) = ...
            if items[4] is not None:
                self.diags.error("bad-index-form", "a single row der(x[3]) takes no 'for'", self._tok(items[4]))
            if not str(tok).isdigit():
                self.diags.error("bad-index", f"a row index is a whole number, got '{tok}'", self._tok(tok))
                return ast.Der(str(items[1]), items[3], self._span(meta), "?", items[3], items[3])
            return ast.Der(str(items[1]), items[3], self._span(meta), element=int(str(tok)))
        index = str(items[2]) if items[2] is not None else None
        if items[4] is not None and index is None:
            self.diags.error(
                "bad-index-form",
                "a 'for' after der(x) needs the indexed form der(x[i]) = ... for i in a..b",
                self._tok(items[4]),
            )
        if index is not None and items[4] is None:
            self.diags.error(
                "bad-index-form",
                f"der({items[1]}[{index}]) needs 'for {index} in a..b' after the expression",
                self._span(meta),
            )
        if index is not None and items[5] is not None and str(items[5]) != index:
            self.diags.error(
                "bad-index-form",
                f"the loop variable '{items[5]}' is not the index '{index}' of der({items[1]}[{index}])",
                self._tok(items[5]),
            )
        return ast.Der(str(items[1]), items[3], self._span(meta), index, items[7], items[9])

    @v_args(meta=True)
    def when(self, meta, items):
        resets = tuple(i for i in items[2:] if isinstance(i, ast.Reset))
        return ast.When(items[1], resets, self._span(meta))

    @v_args(meta=True)
    def reset(self, meta, items):
        return ast.Reset(str(items[1]), items[2], self._span(meta))

    @v_args(meta=True)
    def cond_atom(self, meta, items):
        op = str(items[1]) if items[1] is not None else None
        return ast.Compare(items[0], op, items[2], self._span(meta))

    @staticmethod
    def _cond(op: str) -> Any:
        @v_args(meta=True)
        def build(self: Any, meta: Any, items: list) -> ast.CondOp:
            parts: list[Any] = []
            for part in (i for i in items if not isinstance(i, Token)):
                parts.extend(part.parts if isinstance(part, ast.CondOp) and part.op == op else [part])
            return ast.CondOp(op, tuple(parts), self._span(meta))

        return build

    cond_or, cond_all = _cond("or"), _cond("and")

    @v_args(meta=True)
    def index(self, meta, items):
        if len(items) > 3:
            self.diags.error("bad-index", f"at most two indices (row, column), got {len(items) - 1}", self._span(meta))
        return ast.Index(items[0], items[1], self._span(meta), items[2] if len(items) > 2 else None)

    @v_args(meta=True)
    def slice(self, meta, items):
        return ast.Slice(items[0], items[1], items[2], self._span(meta))

    @v_args(meta=True)
    def comprehension(self, meta, items):
        return ast.Comprehension(items[0], self._decl_name(items[2]), items[4], items[6], self._span(meta))


class ObserversToAst:
    """The ``observer NAME for MODEL { ... }`` block; the host class provides ``_span`` and ``_decl_name``."""

    file: str
    _span: Any
    _decl_name: Any

    @v_args(meta=True)
    def observer(self, meta, items):
        body = items[4:]
        return ast.Observer(
            self._decl_name(items[1]),
            str(items[3]),
            tuple(i for i in body if isinstance(i, ast.Measure)),
            tuple(i for i in body if isinstance(i, ast.Entry)),
            tuple(i for i in body if isinstance(i, ast.Net)),
            self._span(meta),
            Span(self.file, items[3].line or 0, items[3].column or 0, items[3].end_line or 0, items[3].end_column or 0),
        )

    @v_args(meta=True)
    def measure(self, meta, items):
        return ast.Measure(self._decl_name(items[1]), items[2], self._span(meta))
