"""Syntax errors: Lark's parse errors -> located diagnostics, with a catalogue of common mistakes.

Lark's ``match_examples`` (and, as a fallback, the LALR state at the error) maps an error to one of the
catalogue's codes (``missing-equals``, ``unclosed-brace``...) and its explanation; anything else is
``syntax`` or ``unexpected-character``.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> try:
    ...     parse_source("model M { param g 9.81 }", "m.node")
    ... except Exception as err:
    ...     print(err.diagnostics[0].code)
    missing-equals
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..core.diagnostics import Diagnostic, Span

# Lark's match_examples: a catalogue of common mistakes, each mapped to a code and an explanation.
EXAMPLES: dict[tuple[str, str], list[str]] = {
    ("missing-equals", "missing '=' in this declaration"): [
        "model M { param g 9.81 }",
        "model M { let e x }",
        "model M { state x 1 }",
        "model M { der(x) x }",
        "model M { output y x }",
        "model M { hamiltonian p }",
        "model M { J [[0]] }",
        "dataset d { seed 0 }",
        "train M { epochs 10 }",
    ],
    ("unclosed-brace", "a '{' is never closed: add '}' at the end of the block"): [
        "model M { state x = 1",
        "model M { state x = 1\n",
        "dataset d { seed = 0\n",
        "train M { epochs = 1\n",
        "model M {\n",
    ],
    ("der-syntax", "write the state derivative as der(x) = expression"): [
        "model M { der x = 1 }",
        "model M { der x }",
        "model M { der[x] = 1 }",
    ],
    ("comparison-outside-constraint", "'==', '<=' and '>=' are only allowed in a constraint"): [
        "model M { let a = x == 1 }",
        "model M { der(x) == 1 }",
        "model M { der(x) = x <= 1 }",
        "model M { output y = x >= 0 }",
        "model M { let a = x <= 1 }",
        "model M { param a == 1 }",
    ],
    (
        "unexpected-statement",
        "a model statement starts with a keyword (state, input, param, net, let, der, "
        "output, constraint, hamiltonian, J, R, port, sub, couple, connect)",
    ): [
        "model M { x = 1 }",
        "model M { foo x = 1 }",
        "model M { theta' = 1 }",
    ],
    ("unbalanced-brackets", "unbalanced parentheses or brackets"): [
        "model M { let a = (x + 1 }",
        "model M { let a = [x, 1 }",
        "model M { let a = x + 1) }",
        "model M { let a = f(x }",
    ],
    (
        "value-arithmetic",
        "arithmetic in a dataset or train value goes in parentheses: force = (0.5 * sin(omega * t))",
    ): [
        "dataset d { inputs = { f = 0.5 * t } }",
        "dataset d { inputs = { f = 0.5 * sin(t) } }",
        "dataset d { inputs = { f = sin(t) * 2 } }",
        "dataset d { inputs = { f = sin(t) + 1 } }",
        "dataset d { inputs = { f = t / 2 } }",
        "dataset d { seed = 1 + 2 }",
        "train M { epochs = 10 * 2 }",
    ],
    ("missing-operand", "an operator is missing its operand"): [
        "model M { let a = x + }",
        "model M { let a = * x }",
        "model M { let a = x * / y }",
    ],
    ("net-syntax", "declare a net as: net NAME(args) -> SIZE { options }"): [
        "model M { net f(x) { hidden = [8] } }",
        "model M { net f(x) }",
        "model M { net f -> 1 }",
        "model M { net f() -> 1 }",
    ],
}


def _variants(examples: dict[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    """Each example also with a newline after '{' and after one or two earlier statements.

    Lark matches an error by its parser state including the stack depth, which a leading newline or
    earlier statements change."""
    out = {}
    for label, items in examples.items():
        more = []
        for ex in items:
            more.append(ex)
            if "{ " in ex:
                head, rest = ex.split("{ ", 1)
                first = "state a = 1" if head.startswith("model") else "seed = 1"
                more.append(f"{head}{{\n  {rest}")
                more.append(f"{head}{{\n  {first}\n  {rest}")
                more.append(f"{head}{{\n  {first}\n  {first}\n  {rest}")
        out[label] = more
    return out


EXAMPLES = _variants(EXAMPLES)

_TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "end of line",
    "$END": "end of file",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "EQUAL": "'='",
    "COMMA": "','",
    "COLON": "':'",
    "SEMICOLON": "';'",
    "DOT": "'.'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "CIRCUMFLEX": "'^'",
    "AT": "'@'",
    "ARROW": "'->'",
    "CMP": "a comparison",
    "JKW": "'J'",
    "RKW": "'R'",
}


def _word(term: str) -> str:
    if term in _TOKEN_WORDS:
        return _TOKEN_WORDS[term]
    if term.isupper() and term.isalpha():
        return f"'{term.lower()}'"
    return term


def _expected(terms: Iterable[str]) -> str:
    terms = [t for t in terms if not t.startswith("__")]
    if len(terms) > 1:  # the post-lexer makes end of line acceptable everywhere; it is rarely the fix
        terms = [t for t in terms if t != "_NL"]
    words = sorted({_word(t) for t in terms})
    if not words:
        return ""
    if len(words) > 8:
        words = words[:8] + ["..."]
    return "expected " + ", ".join(words)


@lru_cache(maxsize=1)
def _catalogue_by_state(parser: Lark) -> dict:
    """The catalogue keyed by the LALR state at the error and the offending token type.

    ``match_examples`` also compares the parser's stack depth, which earlier declarations and
    nesting change; the state alone recognizes a mistake wherever it is made."""
    table: dict = {}
    for label, examples in EXAMPLES.items():
        for text in examples:
            try:
                parser.parse(text)
            except UnexpectedToken as ex:
                table.setdefault((ex.state.position, ex.token.type), label)
                table.setdefault((ex.state.position, None), label)
            except UnexpectedInput:
                continue
    return table


def syntax_diagnostic(err: UnexpectedInput, text: str, file: str, parser: Lark) -> Diagnostic:
    """The diagnostic of a Lark parse error: located, with a specific code when the catalogue knows it."""
    line, col = getattr(err, "line", 0) or 0, getattr(err, "column", 0) or 0
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = text.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    code, message = "syntax", "invalid syntax"
    if isinstance(err, UnexpectedCharacters):
        pos = err.pos_in_stream if err.pos_in_stream is not None else -1
        ch = text[pos] if 0 <= pos < len(text) else "?"
        code, message = "unexpected-character", f"unexpected character {ch!r}"
        if ch in "<>":
            code = "strict-comparison"
            message += f": a constraint compares with '{ch}=', not a strict '{ch}'"
    elif isinstance(err, UnexpectedToken):
        tok = err.token
        shown = "end of file" if tok.type == "$END" else ("end of line" if tok.type == "_NL" else f"'{tok}'")
        message = f"unexpected {shown}"
    label = None
    try:
        examples: Any = EXAMPLES  # lark's stub wants a generic label type
        label = err.match_examples(parser.parse, examples, use_accepts=True, token_type_match_fallback=True)
        if label is None and isinstance(err, UnexpectedToken):
            table = _catalogue_by_state(parser)
            position = err.state.position
            label = table.get((position, err.token.type)) or table.get((position, None))
    except Exception:  # the catalogue is a hint only; never let it hide the real error
        label = None
    notes = []
    if (
        label is None
        and isinstance(err, UnexpectedToken)
        and err.token.type == "$END"
        and "RBRACE" in (err.expected or ())
    ):
        label = ("unclosed-brace", "a '{' is never closed: add '}' at the end of the block")
    if label is not None:
        code, hint = label
        message = f"{message}: {hint}" if code != "syntax" else message
    expected = getattr(err, "expected", None) or getattr(err, "allowed", None)
    if code == "strict-comparison":
        notes.append(
            f"write '{ch}=': a penalty can only drive a violation to zero, which a strict inequality never "
            "reaches; for a margin, write e.g. x >= 0.01"
        )
    elif expected:
        notes.append(_expected(expected))
    end_col = col + 1
    if isinstance(err, UnexpectedToken) and err.token.type not in ("$END", "_NL"):
        end_col = col + max(1, len(str(err.token)))
    return Diagnostic(code, message, Span(file, line, col, line, end_col), tuple(n for n in notes if n))
