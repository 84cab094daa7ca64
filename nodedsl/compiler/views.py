"""A torch.fx pass: the column slices of one input taken as ``split`` pieces instead of separate slices.

Each slice of a tensor costs, backward, a zero-filled gradient of the whole tensor into which the
slice's gradient is copied. When the slices of the state ``x`` are disjoint contiguous runs (the
states of one sub-model, a block of repeated springs), one ``split`` gives the same values and its
backward is one ``cat`` instead.

Example:
    >>> import operator, torch
    >>> from torch import fx
    >>> g = fx.Graph()
    >>> x = g.placeholder("x")
    >>> a = g.call_function(operator.getitem, (x, (Ellipsis, slice(0, 2))))
    >>> b = g.call_function(operator.getitem, (x, (Ellipsis, slice(2, 4))))
    >>> _ = g.output(g.call_function(operator.add, (a, b)))
    >>> split_views(g, x, 4)
    True
    >>> fx.GraphModule(torch.nn.Module(), g)(torch.arange(4.).reshape(1, 4))
    tensor([[2., 4.]])
"""

from __future__ import annotations

import operator

import torch
from torch import fx


def columns_read(node: fx.Node, width: int):
    """(indices, scalar) that ``node`` = ``src[..., index]`` reads, or None if it is not such a slice."""
    if node.op != "call_function" or node.target is not operator.getitem or len(node.args) != 2:
        return None
    where = node.args[1]
    if not (isinstance(where, tuple) and len(where) == 2 and where[0] is Ellipsis):
        return None
    if isinstance(where[1], int):
        return [where[1] % width], True
    if isinstance(where[1], slice):
        idx = list(range(width))[where[1]]
        return (idx, False) if idx else None
    return None


def split_views(graph: fx.Graph, src: fx.Node, width: int, after: fx.Node | None = None) -> bool:
    """Rewrite the column slices of ``src`` (``[..., width]``) as one split placed after ``after`` (default
    ``src``); False, and the graph untouched, when they overlap or some are strided: unbinding an
    interleaved run (``unflatten`` + ``unbind``) measured slower, backward, than the strided slices."""
    reads = []
    for user in list(src.users):
        cols = columns_read(user, width)
        if cols is not None and user.users:
            reads.append((user, *cols))
    if len(reads) < 2:
        return False
    seen: set = set()
    for _, idx, _ in reads:
        if seen & set(idx) or idx != list(range(idx[0], idx[0] + len(idx))):
            return False
        seen |= set(idx)
    first = {idx[0]: (node, idx, scalar) for node, idx, scalar in reads}
    plan, i = [], 0  # (width, read node or None for columns no one reads, scalar)
    while i < width:
        if i in first:
            node, idx, scalar = first[i]
            plan.append((len(idx), node, scalar))
            i += len(idx)
            continue
        j = i
        while j < width and j not in first:
            j += 1
        plan.append((j - i, None, False))
        i = j
    with graph.inserting_after(after or src):
        pieces = graph.call_function(torch.split, (src, [w for w, _, _ in plan]), {"dim": -1})
    anchor = pieces
    for k, (_, node, scalar) in enumerate(plan):
        if node is None:
            continue
        with graph.inserting_after(anchor):
            piece = anchor = graph.call_function(operator.getitem, (pieces, k))
        if scalar:
            with graph.inserting_after(anchor):
                piece = anchor = graph.call_method("squeeze", (piece, -1))
        node.replace_all_uses_with(piece)
        graph.erase_node(node)
    return True
