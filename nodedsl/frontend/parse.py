"""Source text to :class:`nodedsl.frontend.ast.Module`: a cached LALR parser and a trivial Transformer.

Syntax errors become :class:`~nodedsl.core.diagnostics.Diagnostic` objects with code ``syntax``
(or a more specific code from the catalogue of common mistakes in :mod:`~nodedsl.frontend.syntax_errors`).

Example:
    >>> mod = parse_source("model M {\\n state x = 1\\n der(x) = -x\\n}\\n", "m.node")
    >>> [type(d).__name__ for d in mod.models[0].body]
    ['State', 'Der']
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedInput, VisitError

from ..core.diagnostics import Collector, NodeDslError, Span
from ..core.limits import limit, over_limit
from ..core.resources import data_dir
from . import ast
from .syntax_errors import EXAMPLES, syntax_diagnostic
from .to_ast import KEYWORDS, _ToAst
from .treewalk import nesting_depth, rebalance, transform

__all__ = ["KEYWORDS", "parse_expression", "parse_source", "parse_value"]

_EXAMPLES = EXAMPLES  # the catalogue of common mistakes under the name tests/test_error_corpus.py imports


class _BracketNewlines:
    """Post-lexer: newlines inside ( ) and [ ] do not end a statement, so literals can span lines."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth > 0:
                continue
            yield tok


def _cache_file(start: str) -> str | bool:
    """Where Lark keeps its analysis of the grammar between processes (building the LALR tables is most
    of a cold ``nodedsl check``), or False for no cache.

    Lark stores the tables with pickle, so the file must be one only this user can have written: it
    lives in a private folder of the user's cache directory (mode 0700, owned by the user); anywhere else,
    or with ``NODEDSL_NO_GRAMMAR_CACHE`` set, the tables are rebuilt in each process. Lark names the file
    after a hash of the grammar and the options, so an edited grammar never reads a stale cache."""
    if os.environ.get("NODEDSL_NO_GRAMMAR_CACHE"):
        return False
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "nodedsl")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
    except OSError:
        return False
    if not hasattr(os, "getuid") or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return False
    return os.path.join(folder, f"grammar-{start}.lark-cache")


@lru_cache(maxsize=3)
def _parser(start: str = "start") -> Lark:
    text = (data_dir("grammar") / "nodedsl.lark").read_text(encoding="utf-8")
    return Lark(
        text,
        parser="lalr",
        start=start,
        postlex=_BracketNewlines(),
        propagate_positions=True,
        maybe_placeholders=True,
        cache=_cache_file(start),
    )


def parse_expression(text: str, file: str = "<expression>") -> ast.Expr:
    """One expression (the grammar's ``expr`` rule), e.g. a ``--input`` signal: it can only ever be an
    expression, never add a declaration, whatever it contains (a newline is a syntax error).

    Example:
        >>> parse_expression("sin(t) + 1").op
        '+'
    """
    return _parse(text, file, "expr")


def parse_value(text: str, file: str = "<value>") -> ast.Value:
    """One block value (the grammar's ``value`` rule), e.g. ``--solver "dopri5(rtol = 1e-10)"``.

    Example:
        >>> parse_value("rk4(step = 0.1)").name
        'rk4'
    """
    return _parse(text, file, "value")


def parse_source(text: str, file: str = "<string>") -> ast.Module:
    """Parse one file's text; raise :class:`NodeDslError` with located diagnostics on bad input."""
    return _parse(text, file, "start")


def _parse(text: str, file: str, start: str) -> Any:
    if "\x00" in text:
        raise NodeDslError.single("bad-encoding", "the file contains a NUL byte", Span(file, 1, 1))
    try:
        tree = _parser(start).parse(text if start != "start" or text.endswith("\n") else text + "\n")
    except UnexpectedInput as err:
        raise NodeDslError([syntax_diagnostic(err, text, file, _parser(start))]) from None
    tree = rebalance(tree)
    depth, deepest = nesting_depth(tree)
    if depth > limit("depth"):
        meta = deepest.meta
        span = (
            Span(file, meta.line, meta.column, meta.end_line, meta.end_column) if not meta.empty else Span(file, 1, 1)
        )
        raise NodeDslError([over_limit("depth", depth, "this expression", span)])
    diags = Collector()
    try:
        module = transform(_ToAst(file, diags), tree)
    except VisitError as err:  # a bug in a transformer method: still a located, coded diagnostic
        raise NodeDslError.single(
            "internal", f"could not build the syntax tree: {err.orig_exc}", Span(file, 1, 1)
        ) from None
    diags.raise_if_errors()
    return module
