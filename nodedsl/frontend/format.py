"""The canonical layout of ``.node`` source (``nodedsl fmt``): comments kept, meaning unchanged.

The formatter works on tokens, so every comment and every line break the author chose between
statements survives; it only rewrites the whitespace around tokens:

* four spaces of indentation per ``{ }`` block; a line continued inside ``( )`` or ``[ ]`` aligns
  with the column after the innermost open bracket (or hangs four spaces deeper when that bracket
  ends its line);
* one space around ``=``, comparisons, ``->`` and the binary operators ``+ - * / @``; none around
  ``^`` and ``.``, none after a unary sign, after ``(``/``[`` or before ``)``/``]``/``,``;
* a block whose braces are on different lines has its ``{`` last and its ``}`` alone on a line;
* at most one blank line in a row, none at the start of a block or before its ``}``;
* two spaces before a trailing comment;
* in a run of consecutive one-line declarations of the same keyword (``state``, ``input``,
  ``param``, ``let``, ``der``, ``output``, ``sub``) the ``=`` signs are aligned.

The input must parse; the output is checked to parse to the same syntax tree (spans aside), so the
formatter can never change what a file means.

Example:
    >>> print(format_source("model M{state x=1;param k=2\\n der(x)=-k*x^2}"), end="")
    model M {
        state x = 1; param k = 2
        der(x) = -k * x^2
    }
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core.diagnostics import NodeDslError, Span
from .parse import KEYWORDS, parse_source

_TOKEN = re.compile(
    r"""(?P<ws>[ \t\f\r]+)
      | (?P<nl>\n)
      | (?P<comment>\#[^\n]*)
      | (?P<string>"[^"\n]*")
      | (?P<number>([0-9]+(\.(?!\.)[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>->|==|<=|>=|\.\.|[-+*/@^=(){}\[\],;:.<>])
    """,
    re.VERBOSE,
)
_ALIGNED = frozenset(["state", "input", "param", "let", "der", "output", "sub"])
_BINARY = frozenset("+-*/@")
_OPEN, _CLOSE = "([{", ")]}"
_SPACED = frozenset(["=", "==", "<=", ">=", "<", ">", "->"])


@dataclass
class _Tok:
    kind: str  # name number string op comment nl
    text: str


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # the parse succeeded, so this cannot happen; keep the text rather than lose it
            raise ValueError(f"unexpected character {text[pos]!r} at offset {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(_Tok(kind, m.group().rstrip() if kind == "comment" else m.group()))
        pos = m.end()
    return out


def _split_blocks(toks: list[_Tok]) -> list[_Tok]:
    """Put a line break after ``{`` and before ``}`` of every block that spans several lines."""
    match: dict[int, int] = {}
    stack: list[int] = []
    for i, t in enumerate(toks):
        if t.text == "{" and t.kind == "op":
            stack.append(i)
        elif t.text == "}" and t.kind == "op" and stack:
            match[stack.pop()] = i
    after: set[int] = set()  # indices after which a newline goes
    for i, j in match.items():
        if not any(t.kind == "nl" for t in toks[i:j]):
            continue
        if toks[i + 1].kind not in ("nl", "comment"):
            after.add(i)
        if toks[j - 1].kind != "nl":
            after.add(j - 1)
    out: list[_Tok] = []
    for i, t in enumerate(toks):
        out.append(t)
        if i in after:
            out.append(_Tok("nl", "\n"))
    return out


def _unary(prev: _Tok | None) -> bool:
    """Is a ``-``/``+`` after ``prev`` a sign (not a binary operator)?"""
    if prev is None or prev.kind in ("nl", "comment"):
        return True
    if prev.kind == "name":
        return prev.text in KEYWORDS
    return prev.kind == "op" and prev.text not in (")", "]")


def _space(prev: _Tok, cur: _Tok, prev_unary: bool, kind_colon: bool) -> str:
    """The whitespace between two tokens on one line."""
    p, c = prev.text, cur.text
    if cur.kind == "comment":
        return "  "
    if prev.kind == "op":
        if p in "([." or p == "^" or prev_unary:
            return ""
        if p == "{":
            return "" if c == "}" else " "
    if cur.kind == "op":
        if c in ",;)]." or c == "^":
            return ""
        if c == ":":
            return " " if kind_colon else ""
        if c == "(":
            return "" if prev.kind == "name" else " "
        if c == "[":
            return "" if (prev.kind == "name" and p not in KEYWORDS) or p in ")]" else " "
    return " "


@dataclass
class _Line:
    indent: int
    parts: list[str]
    eq_at: int | None  # index in parts of the aligned '=' (None: not alignable)
    keyword: str | None
    blank: bool = False
    comment_only: bool = False
    continued: bool = False  # ends inside brackets, or continues a previous line

    def render(self, pad: int = 0) -> str:
        if self.blank:
            return ""
        text = ""
        for i, part in enumerate(self.parts):
            if i == self.eq_at and pad:
                text = text.rstrip(" ")
                text += " " * (pad - len(text))
            text += part
        return " " * self.indent + text


def _layout(toks: list[_Tok]) -> list[_Line]:
    lines: list[_Line] = []
    braces = 0
    # open ( or [: the column a continuation line starts at, and the indent of the line that opened it
    brackets: list[tuple[int, int]] = []
    i = 0
    while i < len(toks):
        j = i
        while j < len(toks) and toks[j].kind != "nl":
            j += 1
        row = toks[i:j]
        i = j + 1
        if not row:
            lines.append(_Line(0, [], None, None, blank=True))
            continue
        first = row[0].text if row[0].kind == "op" else ""
        continued = bool(brackets)
        if brackets:
            indent = brackets[-1][1] if first in (")", "]") else brackets[-1][0]
        else:
            indent = 4 * max(braces - (first == "}"), 0)
        keyword = row[0].text if row[0].kind == "name" and row[0].text in _ALIGNED and not brackets else None
        parts, eq_at = _join(row, brackets, indent, keyword is not None)
        for t in row:
            if t.kind == "op" and t.text == "{":
                braces += 1
            elif t.kind == "op" and t.text == "}":
                braces -= 1
        continued = continued or bool(brackets)
        only_comment = len(row) == 1 and row[0].kind == "comment"
        lines.append(_Line(indent, parts, eq_at, keyword, comment_only=only_comment, continued=continued))
    return lines


def _join(
    row: list[_Tok], brackets: list[tuple[int, int]], indent: int, alignable: bool
) -> tuple[list[str], int | None]:
    """The text pieces of one line (each with its leading space), and where the aligned '=' is."""
    parts: list[str] = []
    eq_at = None
    col = indent
    prev: _Tok | None = None
    prev_sign = False
    for k, t in enumerate(row):
        op = t.text if t.kind == "op" else ""
        sign = op in ("+", "-") and _unary(prev)
        gap = "" if prev is None else _space(prev, t, prev_sign, _kind_colon(row, k))
        if prev is not None and ((op and op in _BINARY and not sign) or _is_binary(prev, prev_sign)):
            gap = " "
        if op == "=" and eq_at is None and not brackets and alignable:
            eq_at = len(parts)
        parts.append(gap + t.text)
        col += len(gap) + len(t.text)
        if op in ("(", "["):
            hanging = k == len(row) - 1 or row[k + 1].kind == "comment"
            brackets.append((indent + 4 if hanging else col, indent))
        elif op in (")", "]") and brackets:
            brackets.pop()
        prev, prev_sign = t, sign
    return parts, eq_at


def _is_binary(t: _Tok, sign: bool) -> bool:
    return t.kind == "op" and t.text in _BINARY and not sign


def _kind_colon(row: list[_Tok], k: int) -> bool:
    """``model NAME : kind`` is written with spaces; ``constraint name: ...`` without."""
    return k == 2 and row[0].text == "model"


def _tidy_blank_lines(lines: list[_Line]) -> list[_Line]:
    out: list[_Line] = []
    for line in lines:
        if line.blank:
            if not out or out[-1].blank or out[-1].parts[-1].endswith("{"):
                continue
        elif line.parts and line.parts[0].lstrip().startswith("}") and out and out[-1].blank:
            out.pop()
        out.append(line)
    while out and out[-1].blank:
        out.pop()
    return out


def _align(lines: list[_Line]) -> list[str]:
    rendered = [ln.render() for ln in lines]
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.keyword is None or ln.eq_at is None or ln.continued:
            i += 1
            continue
        j = i
        while (
            j < len(lines)
            and lines[j].keyword == ln.keyword
            and lines[j].eq_at is not None
            and not lines[j].continued
            and lines[j].indent == ln.indent
        ):
            j += 1
        width = max(len("".join(lines[k].parts[: lines[k].eq_at]).rstrip(" ")) for k in range(i, j))
        for k in range(i, j):
            rendered[k] = lines[k].render(pad=width)
        i = max(j, i + 1)
    return rendered


def format_source(text: str, file: str = "<string>") -> str:
    """The canonical layout of ``text``; raises :class:`NodeDslError` when it does not parse.

    Example:
        >>> format_source("model M {\\n\\n\\n  state  q = 1 # position\\n}")
        'model M {\\n    state q = 1  # position\\n}\\n'
    """
    before = parse_source(text, file)
    toks = _split_blocks(_tokens(text.replace("\r\n", "\n")))
    out = "\n".join(_align(_tidy_blank_lines(_layout(toks)))).rstrip() + "\n"
    if out.strip() == "":
        out = ""
    after = parse_source(out, file) if out else None
    if after is not None and after != before:
        raise NodeDslError.single(
            "internal",
            "internal error: formatting would change the meaning of this file; it was left unchanged",
            Span(file, 0, 0),
            "please report this with the input that caused it",
        )
    return out
