"""The Pygments lexer for ``.node`` files, found by ``pygmentize -l nodedsl`` and Sphinx/MkDocs through
the ``pygments.lexers`` entry point.

Example:
    >>> from pygments.token import Keyword, Number
    >>> toks = list(NodeDslLexer().get_tokens("state x = 1.5e-3"))
    >>> toks[0], toks[-2]
    ((Token.Keyword.Declaration, 'state'), (Token.Literal.Number.Float, '1.5e-3'))
"""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from ..core.words import ALL_WORDS, BLOCKS, DECLARATIONS

__all__ = ["NodeDslLexer"]

# every other word of nodedsl.core.words (port_hamiltonian has a class of its own)
OTHER = tuple(sorted(ALL_WORDS - set(DECLARATIONS) - set(BLOCKS) - {"port_hamiltonian"}))
BUILTINS = (
    "abs", "clip", "cos", "diag", "dot", "exp", "log", "max", "min", "norm", "psd", "sigmoid", "sign", "sin",
    "skew", "softplus", "solve", "sqrt", "tan", "tanh", "transpose", "sum", "prod",
)  # fmt: skip


class NodeDslLexer(RegexLexer):
    """Lexer for the nodedsl modeling language (``.node``)."""

    name = "nodedsl"
    aliases: ClassVar[list[str]] = ["nodedsl", "node-dsl"]
    filenames: ClassVar[list[str]] = ["*.node"]
    mimetypes: ClassVar[list[str]] = ["text/x-nodedsl"]
    url = "https://github.com/nodedsl/nodedsl"

    tokens: ClassVar[dict] = {
        "root": [
            (r"[ \t\f\r]+", Whitespace),
            (r"\n", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"[^"\n]*"', String.Double),
            (r"(model|dataset|observer)(\s+)([A-Za-z_]\w*)", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"(train)(\s+)([A-Za-z_][\w.]*)", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"(net)(\s+)([A-Za-z_]\w*)", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (words(DECLARATIONS + BLOCKS, suffix=r"\b"), Keyword.Declaration),
            (words(OTHER, suffix=r"\b"), Keyword),
            (r"port_hamiltonian\b", Keyword.Type),
            (words(BUILTINS, suffix=r"\b(?=\s*\()"), Name.Builtin),
            (r"(pi|t)\b", Name.Builtin.Pseudo),
            (r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"[A-Za-z_]\w*", Name),
            (r"->|==|<=|>=|\.\.|[-+*/@^=<>]", Operator),
            (r"[()\[\]{},;:.]", Punctuation),
            (r".", Text),
        ]
    }
