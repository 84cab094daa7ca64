"""A torch.fx pass: the column slices of one input taken as ``split`` pieces instead of separate slices.

Each slice of a tensor costs, backward, a zero-filled gradient of the whole tensor into which the
slice's gradient is copied. When the slices of the state ``x`` are disjoint (the q, p of repeated
masses, the stretches of repeated springs), one ``split`` into contiguous runs, with interleaved runs
unflattened and unbound, gives the same values and its backward is one ``cat``/``stack`` instead.

Example:
    >>> import operator, torch
    >>> from torch import fx
    >>> g = fx.Graph()
    >>> x = g.placeholder("x")
    >>> a = g.call_function(operator.getitem, (x, (Ellipsis, slice(0, 4, 2))))
    >>> b = g.call_function(operator.getitem, (x, (Ellipsis, slice(1, 4, 2))))
    >>> _ = g.output(g.call_function(operator.add, (a, b)))
    >>> split_views(g, x, 4, interleaved=True)
    True
    >>> fx.GraphModule(torch.nn.Module(), g)(torch.arange(4.).reshape(1, 4))
    tensor([[1., 5.]])
"""

from __future__ import annotations

import operator

import torch
from torch import fx


def _columns(node: fx.Node, width: int):
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


def split_views(graph: fx.Graph, src: fx.Node, width: int, after: fx.Node | None = None,
                interleaved: bool = False) -> bool:
    """Rewrite the column slices of ``src`` (``[..., width]``) as one split placed after ``after`` (default
    ``src``); False, and the graph untouched, when they overlap or (unless ``interleaved``) when some
    are strided: unbinding an interleaved run measured slower, backward, than strided slices."""
    reads = []
    for user in list(src.users):
        cols = _columns(user, width)
        if cols is not None and user.users:
            reads.append((user, *cols))
    if len(reads) < 2:
        return False
    seen: set = set()
    for _, idx, _ in reads:
        if seen & set(idx):
            return False
        seen |= set(idx)
    first = {idx[0]: (node, idx, scalar) for node, idx, scalar in reads}
    plan, i = [], 0  # (width, [(node, offset in the run, scalar)], step)
    while i < width:
        if i not in first:
            j = i
            while j < width and j not in first and j not in seen:
                j += 1
            if j == i:  # column i is read, but not first by anyone: an interleaved run began earlier
                return False
            plan.append((j - i, [], 1))
            i = j
            continue
        node, idx, scalar = first[i]
        step = idx[1] - idx[0] if len(idx) > 1 else 1
        if step == 1:
            plan.append((len(idx), [(node, 0, scalar)], 1))
            i += len(idx)
            continue
        if interleaved is False:
            return False
        run = [(node, 0, scalar)]
        for o in range(1, step):  # siblings read i + o, i + o + step, ... with the same length
            sib = first.get(i + o)
            if sib is not None and sib[1] == list(range(i + o, i + o + step * len(idx), step)):
                run.append((sib[0], o, False))
            elif any(i + o + k * step in seen for k in range(len(idx))):
                return False
        plan.append((step * len(idx), run, step))
        i += step * len(idx)
    with graph.inserting_after(after or src):
        pieces = graph.call_function(torch.split, (src, [w for w, _, _ in plan]), {"dim": -1})
    anchor = pieces
    for k, (w, run, step) in enumerate(plan):
        if not run:
            continue
        with graph.inserting_after(anchor):
            piece = anchor = graph.call_function(operator.getitem, (pieces, k))
        if step > 1:  # nodes inserted after the anchor one at a time: each insert lands right after it
            with graph.inserting_after(anchor):
                anchor = graph.call_method("unflatten", (piece, -1, (w // step, step)))
            with graph.inserting_after(anchor):
                parts = anchor = graph.call_method("unbind", (anchor, -1))
        for node, offset, scalar in run:
            with graph.inserting_after(anchor):
                if step > 1:
                    new = graph.call_function(operator.getitem, (parts, offset))
                elif scalar:
                    new = graph.call_method("squeeze", (piece, -1))
                else:
                    new = piece
            if new is not piece:
                anchor = new
            node.replace_all_uses_with(new)
            graph.erase_node(node)
    return True
