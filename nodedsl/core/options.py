"""Declarative, typed solver options and their validation.

Each solver declares its options as :class:`Option` data; :func:`validate`
turns the keyword arguments given to ``make_solver`` into checked values or
raises :class:`SolverError` naming the offending option.

Example:
    >>> opts = (Option("step", float, positive=True), Option("max_iter", int, default=20, minimum=1))
    >>> validate("demo", opts, {"step": 1})
    {'step': 1.0, 'max_iter': 20}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .diagnostics import suggest
from .errors import SolverError

REQUIRED: Any = object()  # sentinel: the option has no default


def close_match(name: str, candidates: Iterable[str]) -> str:
    """:func:`~nodedsl.core.diagnostics.suggest` in parentheses for an inline message: `` (did you mean
    'x'?)``, or ``''`` (one matching rule for every "did you mean")."""
    hint = suggest(name, candidates)
    return f" ({hint})" if hint else ""


@dataclass(frozen=True, slots=True)
class Option:
    """One keyword option: its type, default and bounds.

    ``positive``: a float must be finite and > 0. ``minimum``/``maximum``:
    inclusive bounds. ``none_ok``: ``None`` is accepted (the default is then
    usually ``None`` too).
    """

    name: str
    kind: type
    default: Any = REQUIRED
    positive: bool = False
    minimum: float | None = None
    maximum: float | None = None
    none_ok: bool = False
    doc: str = ""
    choices: tuple | None = None

    def describe(self) -> str:
        """``step: float > 0`` / ``max_iter: int >= 1 = 20`` style summary."""
        text = f"{self.name}: {self.kind.__name__}"
        if self.positive:
            text += " > 0"
        if self.minimum is not None and self.maximum is not None:
            text += f" in [{self.minimum:g}, {self.maximum:g}]"
        elif self.minimum is not None:
            text += f" >= {self.minimum:g}"
        elif self.maximum is not None:
            text += f" <= {self.maximum:g}"
        if self.choices:
            text += " in {" + ", ".join(map(str, self.choices)) + "}"
        if self.default is not REQUIRED:
            text += f" = {self.default!r}"
        return text

    def _hint(self, value: Any) -> str:
        """A close match among word choices (numeric choices are listed, not guessed at)."""
        words = [c for c in self.choices or () if isinstance(c, str)]
        return close_match(str(value), words) if words else ""

    def check(self, solver: str, value: Any) -> Any:
        """Return ``value`` converted to the option's type, or raise ``SolverError``."""
        if value is None and self.none_ok:
            return None
        # bool is an int subclass; True as a step size is always a mistake.
        is_bool = isinstance(value, bool)
        if self.kind is bool:
            ok = is_bool
        elif self.kind is int:
            ok = isinstance(value, int) and not is_bool
        elif self.kind is float:
            ok = isinstance(value, (int, float)) and not is_bool
        else:
            ok = isinstance(value, self.kind)
        if not ok:
            raise SolverError(
                f"option '{self.name}' of solver '{solver}' must be a {self.kind.__name__}, "
                f"got {type(value).__name__} {value!r}",
                option=self.name,
            )
        if self.kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise SolverError(
                    f"option '{self.name}' of solver '{solver}' must be finite, got {value!r}", option=self.name
                )
        if self.positive and value <= 0:
            raise SolverError(f"option '{self.name}' of solver '{solver}' must be > 0, got {value!r}", option=self.name)
        if self.minimum is not None and value < self.minimum:
            raise SolverError(
                f"option '{self.name}' of solver '{solver}' must be >= {self.minimum:g}, got {value!r}",
                option=self.name,
            )
        if self.maximum is not None and value > self.maximum:
            raise SolverError(
                f"option '{self.name}' of solver '{solver}' must be <= {self.maximum:g}, got {value!r}",
                option=self.name,
            )
        if self.choices is not None and value not in self.choices:
            raise SolverError(
                f"option '{self.name}' of solver '{solver}' must be one of "
                f"{', '.join(map(str, self.choices))}, got {value!r}{self._hint(value)}",
                option=self.name,
            )
        return value


def validate(solver: str, options: tuple[Option, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against ``options``: unknown, missing, mistyped or out-of-range -> ``SolverError``."""
    known = {o.name: o for o in options}
    for name in given:
        if name not in known:
            listing = ", ".join(known) or "none"
            raise SolverError(
                f"unknown option '{name}' for solver '{solver}'{close_match(name, known)}; valid options: {listing}",
                option=name,
            )
    values: dict[str, Any] = {}
    for opt in options:
        if opt.name in given:
            values[opt.name] = opt.check(solver, given[opt.name])
        elif opt.default is REQUIRED:
            raise SolverError(f"solver '{solver}' needs option '{opt.name}' ({opt.describe()})", option=opt.name)
        else:
            values[opt.name] = opt.default
    return values
