"""Syntax highlighting of ``.node`` files: a Pygments lexer (registered as the ``nodedsl`` lexer)."""

from .lexer import NodeDslLexer

__all__ = ["NodeDslLexer"]
