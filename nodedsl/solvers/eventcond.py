"""Event conditions: comparisons combined with ``and`` / ``or``, and how an event is declared.

A condition is a tree over the columns of a *margin* function ``margins(t, x) -> [batch, m]``:
leaf ``Compare(i)`` is true where ``margins[:, i] >= 0`` (``> 0`` when ``strict``), ``All`` and
``Any`` combine leaves. ``a <= b`` has the margin ``b - a``, ``a >= b`` the margin ``a - b``, so a
leaf's zero crossing is where the comparison changes; the event fires when the whole condition
goes from false to true. Keeping the margins (not only the truth) is what lets the locator
refine a crossing by regula falsi and differentiate the event time.

Example:
    >>> import torch
    >>> cond = All((Compare(0), Compare(1, strict=True)))   # h <= 0 and v < 0: margins (-h, -v)
    >>> m = torch.tensor([[0.5, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    >>> truth(cond, m).tolist()
    [True, True, False]
    >>> leaves(cond)
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Margins = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Reset = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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

    ``reset(t, x)`` returns the whole state after the event (``[batch, n]``), computed from the
    state just before it; components a block does not reset are returned unchanged.

    Example:
        >>> import torch
        >>> ev = Event(lambda t, x: -x, Compare(0), lambda t, x: -x, name="cross")
        >>> truth(ev.condition, ev.margins(torch.tensor(0.0), torch.tensor([[1.0], [-1.0]]))).tolist()
        [False, True]
    """

    margins: Margins
    condition: Condition
    reset: Reset
    name: str = "event"


def leaf_truth(leaf: Compare, margins: torch.Tensor) -> torch.Tensor:
    """Where the leaf holds, ``[batch]`` booleans."""
    col = margins[:, leaf.index]
    return col > 0 if leaf.strict else col >= 0


def truth(cond: Condition, margins: torch.Tensor) -> torch.Tensor:
    """Where ``cond`` holds for each row of ``margins`` (``[batch, m]``), ``[batch]`` booleans."""
    if isinstance(cond, Compare):
        return leaf_truth(cond, margins)
    parts = [truth(p, margins) for p in cond.parts]
    out = parts[0]
    for p in parts[1:]:
        out = out & p if isinstance(cond, All) else out | p
    return out


def leaf_nodes(cond: Condition) -> list[Compare]:
    """The comparisons of ``cond`` in source order."""
    if isinstance(cond, Compare):
        return [cond]
    return [leaf for p in cond.parts for leaf in leaf_nodes(p)]


def leaves(cond: Condition) -> list[int]:
    """The margin columns ``cond`` reads, in source order."""
    return [leaf.index for leaf in leaf_nodes(cond)]
