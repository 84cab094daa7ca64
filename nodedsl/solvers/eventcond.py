"""Evaluating event conditions (``nodedsl.core.events``) on batches of margins.

Example:
    >>> import torch
    >>> cond = All((Compare(0), Compare(1, strict=True)))   # h <= 0 and v < 0: margins (-h, -v)
    >>> m = torch.tensor([[0.5, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    >>> truth(cond, m).tolist()
    [True, True, False]
"""

from __future__ import annotations

import torch

from ..core.events import All, Any, Compare, Condition, Event, leaf_nodes

__all__ = ["All", "Any", "Compare", "Condition", "Event", "leaf_nodes", "leaf_truth", "truth"]


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
