"""Incremental parsing for the language server: a file is cut into statements, each parsed once.

A file's top-level items (imports, datasets, train blocks) and each statement of a model body are
parsed on their own by :func:`nodedsl.frontend.parse.parse_source` (a statement inside a one-line
model shell), cached by their text, and moved to their line; after a one-line edit only the edited
statement is parsed again. The result is the same syntax tree, spans included, as a parse of the
whole file (a test checks this on every example); anything unusual (a syntax error, a statement
sharing a line with the model's braces) falls back to parsing the whole file, so diagnostics are
exactly the parser's.

Example:
    >>> p = IncrementalParser()
    >>> text = "model M {\\n    state x = 1\\n    der(x) = -x\\n}\\n"
    >>> p.parse(text, "m.node") == parse_source(text, "m.node")
    True
    >>> p.parse(text.replace("-x", "-2 * x"), "m.node").models[0].body[1].span.line
    3
"""

from __future__ import annotations

import dataclasses
import re

from ..core.diagnostics import NodeDslError, Span
from ..frontend import ast
from ..frontend.parse import parse_source

# blanks are not tokens: columns come from positions (half the matches, on a 1,000-sub-model file)
_TOKEN = re.compile(r'#[^\n]*|"[^"\n]*"|\n|[{}()\[\];]|[^\s{}()\[\];#"]+')
_SHELL = "model __chunk__ {\n"


class _Fallback(Exception):
    """This text is parsed whole."""


def _shift(node, lines: int):
    """``node`` with every span moved down by ``lines`` (frozen dataclasses rebuilt)."""
    if isinstance(node, Span):
        if node.line <= 0:
            return node
        return Span(node.file, node.line + lines, node.col, node.end_line + lines if node.end_line else 0, node.end_col)
    if isinstance(node, tuple):
        return tuple(_shift(n, lines) for n in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, Span | tuple) or dataclasses.is_dataclass(value):
                changes[f.name] = _shift(value, lines)
        return dataclasses.replace(node, **changes)
    return node


def _chunks(text: str) -> list[tuple[str, int, int, str]]:
    """(kind, first line, column, text) of each top-level item and each model statement, 1-based.

    kind: ``header`` (``model M {``, its statements follow as ``stmt``), or ``top`` for any other
    top-level item, however many lines it spans (``partial`` at an unclosed end)."""
    out: list[tuple[str, int, int, str]] = []
    braces = brackets = 0
    in_model = False
    line, line_start, start, start_line, start_col, start_braces = 1, 0, -1, 0, 0, 0
    for m in _TOKEN.finditer(text):
        tok, pos = m.group(), m.start()
        ends = tok == "\n" or (tok == ";" and brackets == 0)
        if ends and start >= 0 and brackets == 0 and (braces == 0 or (in_model and braces == 1)):
            kind = "top" if braces == 0 else "header" if start_braces == 0 else "stmt"
            out.append((kind, start_line, start_col, text[start:pos]))
            start = -1
        if tok == "\n":
            line, line_start = line + 1, pos + 1
            continue
        if start < 0 and not ends and not tok.startswith("#") and not (braces == 1 and tok == "}"):
            start, start_line, start_col, start_braces = pos, line, pos - line_start + 1, braces
            if braces == 0:
                in_model = tok == "model"
        if tok in ("(", "["):
            brackets += 1
        elif tok in (")", "]"):
            brackets = max(0, brackets - 1)
        elif tok == "{":
            braces += 1
        elif tok == "}":
            braces -= 1
    if start >= 0:
        out.append(("top" if braces == 0 else "partial", start_line, start_col, text[start:]))
    return out


class IncrementalParser:
    """Parses files statement by statement, remembering every statement's parse by its text."""

    def __init__(self) -> None:
        self._stmts: dict[tuple[str, int, str], object] = {}
        self._tops: dict[tuple[str, str], ast.Module] = {}
        self._moved: dict[tuple, object] = {}

    def parse(self, text: str, file: str) -> ast.Module:
        """The syntax tree of ``text``; raises NodeDslError exactly as ``parse_source`` does."""
        try:
            return self._parse(text, file)
        except (_Fallback, NodeDslError):
            return parse_source(text, file)

    def _stmt(self, chunk: str, col: int, file: str, line: int):
        key = (file, col, chunk)
        if key not in self._stmts:
            body = parse_source(_SHELL + " " * (col - 1) + chunk + "\n}\n", file).models[0].body
            if len(body) != 1:
                raise _Fallback
            self._stmts[key] = body[0]
        moved = (key, line)
        if moved not in self._moved:
            self._moved[moved] = _shift(self._stmts[key], line - 2)
        return self._moved[moved]

    def _top(self, chunk: str, col: int, file: str, line: int) -> ast.Module:
        key = (file, " " * (col - 1) + chunk)
        if key not in self._tops:
            self._tops[key] = parse_source(key[1] + "\n", file)
        return _shift(self._tops[key], line - 1)

    def _parse(self, text: str, file: str) -> ast.Module:
        if len(self._stmts) > 100_000 or len(self._moved) > 100_000:
            self._stmts.clear()
            self._moved.clear()
        imports: list = []
        models: list = []
        datasets: list = []
        trains: list = []
        observers: list = []
        chunks = _chunks(text)
        lines = text.split("\n")
        for kind, line, col, _ in chunks:  # an item must start its line (or follow a ';' in a model)
            before = lines[line - 1][: col - 1].strip()
            if before and not (kind == "stmt" and before.endswith(";")):
                raise _Fallback
        i = 0
        while i < len(chunks):
            kind, line, col, chunk = chunks[i]
            i += 1
            if kind == "top":
                mod = self._top(chunk, col, file, line)
                imports += mod.imports
                models += mod.models
                datasets += mod.datasets
                trains += mod.trains
                observers += mod.observers
                continue
            if kind != "header" or not chunk.rstrip().endswith("{"):
                raise _Fallback
            header = self._top(chunk.rstrip() + "}", col, file, line).models[0]
            body = []
            while i < len(chunks) and chunks[i][0] == "stmt":
                _, sline, scol, stmt = chunks[i]
                body.append(self._stmt(stmt, scol, file, sline))
                i += 1
            end = _close(text, chunks[i - 1] if body else (kind, line, col, chunk))
            models.append(dataclasses.replace(header, body=tuple(body), span=Span(file, line, col, *end)))
        return ast.Module(file, tuple(imports), tuple(models), tuple(datasets), tuple(trains), tuple(observers))


def _close(text: str, last: tuple[str, int, int, str]) -> tuple[int, int]:
    """The end (line, column after the ``}``) of the model whose last statement is ``last``."""
    lines = text.split("\n")
    line = last[1] + last[3].count("\n")
    col = (last[2] + len(last[3])) if "\n" not in last[3] else len(last[3].rsplit("\n", 1)[1]) + 1
    while line <= len(lines):
        rest = lines[line - 1][col - 1 :]
        code = rest.split("#", 1)[0]
        if "}" in code:
            return line, col + code.index("}") + 1
        if code.strip() and code.strip() != ";":
            raise _Fallback
        line, col = line + 1, 1
    raise _Fallback
