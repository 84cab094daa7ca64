"""Diagnostics as data: every problem nodedsl reports is a :class:`Diagnostic`.

No stage prints; stages return or raise diagnostics and the CLI renders them.

Example:
    >>> d = Diagnostic("undefined-name", "unknown name 'thta'", Span("m.node", 3, 5, 3, 9),
    ...                notes=("did you mean 'theta'?",))
    >>> print(render(d, "a\\nb\\nder(thta) = 1\\n").splitlines()[0])
    m.node:3:5: error[undefined-name]: unknown name 'thta'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A source region: 1-based line and column of the start and of the end (end exclusive)."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        # a whole-file or command-line problem has no line: 'runs.csv', not 'runs.csv:0:0'
        return f"{self.file}:{self.line}:{self.col}" if self.line > 0 else self.file


NOWHERE = Span("<unknown>", 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One reported problem: a stable ``code``, a message, where it is, and extra notes."""

    code: str
    message: str
    span: Span = NOWHERE
    notes: tuple[str, ...] = ()
    severity: str = "error"


class NodeDslError(Exception):
    """Raised by a stage that cannot go on; carries every diagnostic collected so far."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(f"{first.span}: {first.message}" if first else "nodedsl error")

    @classmethod
    def single(cls, code: str, message: str, span: Span = NOWHERE, *notes: str) -> NodeDslError:
        return cls([Diagnostic(code, message, span, tuple(notes))])


class Collector:
    """Collects diagnostics so a stage can report all of them, not just the first."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, code: str, message: str, span: Span = NOWHERE, *notes: str) -> None:
        self.items.append(Diagnostic(code, message, span, tuple(n for n in notes if n)))

    def warn(self, code: str, message: str, span: Span = NOWHERE, *notes: str) -> None:
        self.items.append(Diagnostic(code, message, span, tuple(n for n in notes if n), "warning"))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise NodeDslError(self.items)


def suggest(name: str, candidates: Iterable[str]) -> str:
    """A 'did you mean' note for ``name`` among ``candidates`` ('' when nothing is close)."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=5, cutoff=0.6)
    if not close:
        return ""
    # among equally close candidates, the one sharing the longer prefix ('rk5': 'rk4', not 'srk')
    ratio = difflib.SequenceMatcher(None, name, close[0]).ratio()
    ties = [c for c in close if difflib.SequenceMatcher(None, name, c).ratio() == ratio]
    best = max(ties, key=lambda c: next((i for i, (a, b) in enumerate(zip(name, c)) if a != b), len(c)))
    return f"did you mean '{best}'?"


def render(diag: Diagnostic, source: str | None = None) -> str:
    """``file:line:col: error[code]: message``, the source line, a caret underline, then notes."""
    out = [f"{diag.span}: {diag.severity}[{diag.code}]: {diag.message}"]
    if source is not None and diag.span.line > 0:
        lines = source.splitlines()
        if diag.span.line <= len(lines):
            text = lines[diag.span.line - 1].expandtabs(1)
            start = max(diag.span.col, 1)
            if diag.span.end_line == diag.span.line and diag.span.end_col > start:
                width = diag.span.end_col - start
            else:
                width = 1
            width = max(1, min(width, max(1, len(text) - start + 1)))
            out.append(f"  {diag.span.line:>4} | {text}")
            out.append("       | " + " " * (start - 1) + "^" + "~" * (width - 1))
    for note in diag.notes:
        out.append(f"  note: {note}")
    return "\n".join(out)
