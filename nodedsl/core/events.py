"""Event declarations as data: comparisons combined with ``and`` / ``or``, plus the reset map.

A condition is a tree over the columns of a *margin* function ``margins(t, x) -> [batch, m]``:
leaf ``Compare(i)`` holds where ``margins[:, i] >= 0`` (``> 0`` when ``strict``); ``All`` and
``Any`` combine parts. ``a <= b`` has the margin ``b - a`` and ``a >= b`` the margin ``a - b``, so a
leaf's zero crossing is where its comparison changes; an event fires when its whole condition goes
from false to true. The lowering builds these from ``when`` blocks, the compiler fills in the
callables, the solvers (``nodedsl.solvers.events``) evaluate and locate them. Torch-free.

Example:
    >>> cond = All((Compare(0), Compare(1, strict=True)))   # h <= 0 and v < 0: margins (-h, -v)
    >>> [leaf.index for leaf in leaf_nodes(cond)]
    [0, 1]
    >>> describe(cond, ["h <= 0", "v < 0"])
    'h <= 0 and v < 0'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any as _Any


@dataclass(frozen=True, slots=True)
class Compare:
    """Leaf: column ``index`` of the margins is ``>= 0`` (``> 0`` if ``strict``)."""

    index: int
    strict: bool = False


@dataclass(frozen=True, slots=True)
class All:
    """Every part holds (``and``)."""

    parts: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Any:
    """Some part holds (``or``)."""

    parts: tuple[Condition, ...]


Condition = Compare | All | Any


@dataclass(frozen=True)
class Event:
    """One ``when`` block: its margins, the condition over them, and the reset map.

    ``margins(t, x) -> [batch, m]``; ``reset(t, x)`` returns the whole state after the event
    (``[batch, n]``), computed from the state just before it, components it does not reset unchanged.

    Example:
        >>> ev = Event(lambda t, x: x, Compare(0), lambda t, x: x, name="cross")
        >>> ev.name, ev.condition
        ('cross', Compare(index=0, strict=False))
    """

    margins: Callable[[_Any, _Any], _Any]
    condition: Condition
    reset: Callable[[_Any, _Any], _Any]
    name: str = "event"


def leaf_nodes(cond: Condition) -> list[Compare]:
    """The comparisons of ``cond`` in source order."""
    if isinstance(cond, Compare):
        return [cond]
    return [leaf for p in cond.parts for leaf in leaf_nodes(p)]


def describe(cond: Condition, texts: list[str]) -> str:
    """``cond`` written out with ``texts[i]`` for leaf ``i`` (``or`` parts parenthesized inside ``and``)."""
    if isinstance(cond, Compare):
        return texts[cond.index]
    inner = [describe(p, texts) for p in cond.parts]
    if isinstance(cond, All):
        return " and ".join(f"({s})" if isinstance(p, Any) else s for s, p in zip(inner, cond.parts))
    return " or ".join(inner)
