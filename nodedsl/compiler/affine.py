"""The part of a field that is linear in the state, as one matrix product ``x @ M^T``.

A field such as ``der(a) = s * (b11 * a + b12 * b)``, ``der(b) = s * (b21 * a + b22 * b)`` (a linear
system with learned coefficients) would otherwise cost two products and one sum per entry of ``M``,
forward and backward; as ``x @ M^T`` it costs one ``matmul`` whatever its size, and ``M`` (built from
the parameters) is computed once per call. Along the flow ``M`` is a constant, so the Taylor-mode
coefficients (``_fxjet``) cost one ``matmul`` per order: ``benchmarks/taylor_coefficients.py`` and the
stiff problem of ``benchmarks/tlnode.py`` measure it.

A row is *affine* when each of its derivatives with respect to the states is an expression of the
parameters only (no state, time, input or net). The split is used when the affine rows give a dense
enough matrix (at least :data:`MIN_ENTRIES` entries and half of the matrix): for a few sparse terms
(``der(q) = p / m``) separate products are as cheap and keep the compiler's other layouts.

Example:
    >>> import sympy as sp
    >>> a, b, k = sp.symbols("a b k")
    >>> entries, rest = affine_split([k * a + b, a - k * b + 1], [a, b], {k: ("k", 0)})
    >>> [(r, c, str(v)) for r, c, v in entries], rest
    ([(0, 0, 'k'), (0, 1, '1'), (1, 0, '1'), (1, 1, '-k')], [0, 1])
"""

from __future__ import annotations

import operator

import sympy as sp
import torch
from torch import fx

from ..symbolic.functions import NetCall
from . import ops
from .blocks import Blocks

MIN_ENTRIES = 4


def affine_split(exprs: list[sp.Expr], xs: list[sp.Symbol], params: dict) -> tuple[list, list] | None:
    """``(entries, rest)`` with ``exprs[i] = sum_j M[i, j] xs[j] + rest[i]``, the entries ``(i, j, M[i, j])``
    of the affine rows (other rows are all ``rest``); None when the matrix would be small or sparse."""
    index = {s: j for j, s in enumerate(xs)}
    wanted = max(MIN_ENTRIES, len(exprs) * len(xs) / 2)
    if len(xs) < 2 or sum(len(e.free_symbols & index.keys()) for e in exprs) < wanted:
        return None  # cheap bound first: no differentiation for the usual sparse field
    allowed = set(params)
    entries, rest = [], []
    for i, e in enumerate(exprs):
        states = sorted(e.free_symbols & index.keys(), key=index.__getitem__)
        row = []
        for s in states:
            d = sp.diff(e, s)
            if d == 0 or d.free_symbols - allowed or d.has(NetCall, sp.Derivative, sp.Subs):
                row = None
                break
            row.append((i, index[s], d))
        if row:
            entries += row
            rest.append(e.xreplace({s: sp.Integer(0) for s in states}))
        else:
            rest.append(e)
    return (entries, rest) if len(entries) >= wanted else None


def linear_part(blocks: Blocks, x: fx.Node, entries: list, n_rows: int, n_cols: int) -> fx.Node:
    """``x @ M^T`` (``[batch, n_rows]``) for the entries ``(row, column, coefficient)`` of ``M``."""
    if all(c.is_Number for _, _, c in entries):
        return blocks.numeric_product(x, n_cols, list(range(n_cols)), list(range(n_rows)), entries)[0]
    g, em = blocks.g, blocks.em
    base = torch.zeros(n_cols * n_rows, dtype=torch.float64)
    index, values = [], []
    for r, c, v in entries:
        if v.is_Number:
            base[c * n_rows + r] = float(v)
        else:
            index.append(c * n_rows + r)
            values.append(em.emit(v))
    if len(index) == len(base):  # every entry a parameter expression: no base to write into
        order = sorted(range(len(index)), key=index.__getitem__)
        flat = g.call_function(torch.stack, ([values[k] for k in order],))
    else:
        ref = values[0]
        base_node = g.call_function(ops.like, (blocks.constant(base), ref))
        idx = g.call_function(ops.like, (blocks.constant(torch.tensor(index, dtype=torch.long)), ref))
        flat = g.call_function(ops.matrix, (base_node, idx, *values))
    mt = g.call_function(torch.reshape, (flat, (n_cols, n_rows)))
    return g.call_function(torch.matmul, (x, mt))


def add_rest(blocks: Blocks, product: fx.Node, rest: list) -> fx.Node:
    """``product + rest`` (the rows' remaining terms), or the product alone when they are all zero."""
    if all(r == 0 for r in rest):
        return product
    return blocks.g.call_function(operator.add, (product, blocks.assemble(blocks.block(rest), len(rest))))
