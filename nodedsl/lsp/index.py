"""Names in source: what a name at a position refers to, and every place that refers to a declaration.

Each file's tokens carry their positions; a name is resolved in the block that contains it: a model
member (``theta``), a member of a sub-model through the dotted path (``left.q``, ``a.b.force``),
an override's key (``Spring(k = 1)``), a model or dataset visible in the file (imports and aliases
included), or a builtin function or constant.

Example:
    >>> from nodedsl.lsp.analysis import Analyzer
    >>> res = Analyzer().analyze("/tmp/m.node", "model M { state x = 1\\n der(x) = -x }")
    >>> t = resolve(res, "/tmp/m.node", 2, 6)
    >>> (t.kind, t.name, t.span.line, t.span.col)
    ('state', 'x', 1, 17)
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from ..core.diagnostics import Span
from ..frontend import ast
from ..frontend.shapes import BUILTINS, CONSTANTS
from .analysis import Analysis

_TOKEN = re.compile(
    r'(?P<comment>#[^\n]*)|(?P<string>"[^"\n]*")|(?P<number>([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?)'
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>->|==|<=|>=|\S)"
)
_NAMED = (ast.State, ast.Input, ast.Param, ast.Net, ast.Let, ast.Output, ast.Port, ast.Sub)
_KIND = {
    ast.State: "state",
    ast.Input: "input",
    ast.Param: "param",
    ast.Net: "net",
    ast.Let: "let",
    ast.Output: "output",
    ast.Port: "port",
    ast.Sub: "sub",
}


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str
    line: int  # 1-based
    col: int  # 1-based
    offset: int


@lru_cache(maxsize=64)
def tokens(text: str) -> tuple[Tok, ...]:
    """Every token of ``text`` but whitespace, with 1-based positions (comments included)."""
    out = []
    line, line_start = 1, 0
    for m in _TOKEN.finditer(text):
        while True:
            nl = text.find("\n", line_start, m.start())
            if nl < 0:
                break
            line, line_start = line + 1, nl + 1
        out.append(Tok(m.lastgroup or "", m.group(), line, m.start() - line_start + 1, m.start()))
    return tuple(out)


@dataclass(frozen=True)
class Target:
    """What a name refers to: a declaration (with the span of its name) or a builtin."""

    kind: str  # state input param net let output port sub model dataset builtin constant
    name: str
    file: str | None = None
    span: Span | None = None  # the declared name's span
    decl: Any = None
    model: ast.Model | None = None  # the model declaring a member

    def key(self) -> tuple:
        return (self.kind, self.file, self.span.line if self.span else 0, self.span.col if self.span else 0)


@lru_cache(maxsize=64)
def _starts(text: str) -> list[tuple[int, int]]:
    return [(t.line, t.col) for t in tokens(text)]


def name_span(file: str, text: str, decl_span: Span, name: str) -> Span:
    """The span of ``name`` where ``decl_span`` declares it (its first occurrence after the keyword)."""
    toks = tokens(text)
    for k in range(bisect.bisect_left(_starts(text), (decl_span.line, decl_span.col)) + 1, len(toks)):
        t = toks[k]
        if (t.line, t.col) > (decl_span.end_line, decl_span.end_col):
            break
        if t.kind == "name" and t.text == name:
            return Span(file, t.line, t.col, t.line, t.col + len(name))
    return decl_span


def _inside(span: Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def members(res: Analysis, file: str, model: ast.Model) -> dict[str, Target]:
    """The named declarations of ``model``, each with the span of its name."""
    cache = res.__dict__.setdefault("_members", {})
    if (file, id(model)) in cache:
        return cache[(file, id(model))]
    text = res.source.texts.get(file, "")
    out: dict[str, Target] = {}
    cache[(file, id(model))] = out
    for d in model.body:
        if isinstance(d, _NAMED):
            out[d.name] = Target(_KIND[type(d)], d.name, file, name_span(file, text, d.span, d.name), d, model)
    return out


def lookup_model(res: Analysis, file: str, dotted: str) -> tuple[str, ast.Model] | None:
    entry = res.source.scopes.get(file, {}).get(dotted)
    if entry is None or not isinstance(entry[1], ast.Model):
        return None
    return entry[0], entry[1]


def top_target(res: Analysis, file: str, dotted: str) -> Target | None:
    """A model or dataset visible in ``file`` under ``dotted`` (``Spring``, ``mech.Mass``)."""
    entry = res.source.scopes.get(file, {}).get(dotted)
    if entry is None:
        return None
    where, item = entry[0], cast(Any, entry[1])
    kind = "model" if isinstance(item, ast.Model) else "dataset"
    span = name_span(where, res.source.texts.get(where, ""), item.span, item.name)
    return Target(kind, item.name, where, span, item, item if kind == "model" else None)


def member_path(res: Analysis, file: str, model: ast.Model, parts: list[str]) -> Target | None:
    """``parts[0]`` in ``model``, then each next part in the model of the sub-model before it."""
    target: Target | None = None
    for i, part in enumerate(parts):
        if i > 0:
            if target is None or target.kind != "sub":
                return None
            found = lookup_model(res, file, target.decl.model.dotted)
            if found is None:
                return None
            file, model = found
        target = members(res, file, model).get(part)
        if target is None:
            return None
    return target


def _chain(toks: tuple[Tok, ...], i: int) -> tuple[list[str], int]:
    """The dotted name up to token ``i`` (``left.q`` at ``q``), and the index of its first token."""
    parts = [toks[i].text]
    j = i
    while j >= 2 and toks[j - 1].text == "." and toks[j - 2].kind == "name":
        parts.insert(0, toks[j - 2].text)
        j -= 2
    return parts, j


def _block(mod: ast.Module, line: int, col: int) -> Any:
    items: list[Any] = [*mod.models, *mod.datasets, *mod.trains, *mod.observers]
    for item in items:
        if _inside(item.span, line, col):
            return item
    return None


def _call_model(res: Analysis, file: str, toks: tuple[Tok, ...], j: int) -> tuple[str, ast.Model] | None:
    """The model called in ``sub s = Model(... key = ...)`` when token ``j`` is an override key."""
    depth = 0
    k = j - 1
    while k >= 0 and toks[k].line >= toks[j].line - 20:
        t = toks[k].text
        if t in (")", "]"):
            depth += 1
        elif t in ("(", "["):
            if depth == 0:
                if t != "(" or k == 0 or toks[k - 1].kind != "name":
                    return None
                parts, _ = _chain(toks, k - 1)
                return lookup_model(res, file, ".".join(parts))
            depth -= 1
        k -= 1
    return None


def _block_model(res: Analysis, file: str, block) -> tuple[str, ast.Model] | None:
    """The model a dataset, train or observer block is about (``model =``, the train's target, ``for M``)."""
    if isinstance(block, (ast.Train, ast.Observer)):
        return lookup_model(res, file, block.model)
    for e in block.entries:
        if e.key == "model" and isinstance(e.value, ast.VName):
            return lookup_model(res, file, e.value.name)
    return None


def token_at(toks: tuple[Tok, ...], line: int, col: int) -> int | None:
    """The index of the name token under (or just before) the cursor."""
    near = [
        k for k, t in enumerate(toks) if t.line == line and t.kind == "name" and t.col <= col <= t.col + len(t.text)
    ]
    inside = [k for k in near if col < toks[k].col + len(toks[k].text)]
    found = inside or near
    return found[0] if found else None


def resolve(res: Analysis, file: str, line: int, col: int) -> Target | None:
    """The declaration the name at 1-based ``line``/``col`` of ``file`` refers to, or None."""
    mod = res.module(file)
    text = res.source.texts.get(file)
    if mod is None or text is None:
        return None
    toks = tokens(text)
    i = token_at(toks, line, col)
    if i is None:
        return None
    return resolve_token(res, file, mod, toks, i)


def resolve_token(res: Analysis, file: str, mod: ast.Module, toks: tuple[Tok, ...], i: int) -> Target | None:
    parts, j = _chain(toks, i)
    dotted = ".".join(parts)
    block = _block(mod, toks[i].line, toks[i].col)
    nxt = toks[i + 1].text if i + 1 < len(toks) else ""
    if block is not None and nxt == "=" and j == i:  # a key: an override or a block entry
        called = _call_model(res, file, toks, j)
        if called is not None:
            return members(res, called[0], called[1]).get(parts[0])
    if isinstance(block, ast.Model):
        if toks[i].line == block.span.line and j == i and toks[i].text == block.name:
            return top_target(res, file, block.name)
        found = member_path(res, file, block, parts)
        if found is not None:
            return found
    elif block is not None:
        if isinstance(block, ast.Train) and toks[j - 1].text == "train" and toks[j - 1].line == toks[i].line:
            return top_target(res, file, dotted)
        if isinstance(block, ast.Dataset) and j == i and toks[i].text == block.name and toks[i].line == block.span.line:
            return top_target(res, file, block.name)
        bm = _block_model(res, file, block)
        if bm is not None and nxt != "(":
            found = member_path(res, bm[0], bm[1], parts)
            if found is not None:
                return found
    top = top_target(res, file, dotted)
    if top is not None:
        return top
    if j == i and dotted in BUILTINS:
        return Target("builtin", dotted)
    if j == i and (dotted in CONSTANTS or dotted == "t"):
        return Target("constant", dotted)
    return None


def references(res: Analysis, target: Target) -> list[Span]:
    """Every span, in every file of the program, of a name that refers to ``target`` (its own included)."""
    if target.span is None:
        return []
    out: list[Span] = []
    want = target.key()
    for file, mod in res.source.modules.items():
        toks = tokens(res.source.texts[file])
        for i, t in enumerate(toks):
            if t.kind != "name" or (t.text != target.name and not target.name.endswith("." + t.text)):
                continue
            found = resolve_token(res, file, mod, toks, i)
            if found is not None and found.key() == want:
                out.append(Span(file, t.line, t.col, t.line, t.col + len(t.text)))
    return out
