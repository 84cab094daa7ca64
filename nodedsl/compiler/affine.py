"""The part of a field that is linear in the state, as one matrix product ``x @ M^T``.

A field such as ``der(a) = s * (b11 * a + b12 * b)``, ``der(b) = s * (b21 * a + b22 * b)`` (a linear
system with learned coefficients) would otherwise cost two products and one sum per entry of ``M``,
forward and backward; as ``x @ M^T`` it costs one ``matmul`` whatever its size, and ``M`` (built from
the parameters) is computed once per call. Along the flow ``M`` is a constant, so the Taylor-mode
coefficients (``_fxjet``) cost one ``matmul`` per order: ``benchmarks/taylor_coefficients.py`` and the
stiff problem of ``benchmarks/tlnode.py`` measure it. A matrix parameter's entries (``A @ x``, ``-2 * A @ x``)
are read as one view (or one gather) of its values, not one node per entry: a 20x20 ``A @ x`` is a
dozen nodes, as a 3x3 one.

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
    if len(xs) < 2:
        return None
    if sum(len(e.free_symbols & index.keys()) for e in exprs) < wanted and not _sums_of_products(exprs, index, params):
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
    if len(entries) >= wanted or kron_layout(_param_entries(entries, params), params) is not None:
        return entries, rest
    return None


def _sums_of_products(exprs: list, index: dict, params: dict) -> bool:
    """Whether a row is a sum of (parameter entry) x (state) terms, as a row of ``A @ X`` is."""
    known = index.keys() | params.keys()
    for e in exprs:
        terms = sp.Add.make_args(e)
        if len(terms) >= 2 and all(
            isinstance(a, sp.Mul) and len(a.free_symbols & index.keys()) == 1 and a.free_symbols <= known for a in terms
        ):
            return True
    return False


def kron_layout(entries: list, params: dict) -> tuple | None:
    """``(r0, c0, rows, cols, m, key, j0, scale)`` when the entries are ``s A ⊗ I_m`` placed at row ``r0`` and
    column ``c0`` (``der(Y) = s * A @ X`` for a ``rows x cols`` parameter ``A``, row-major from component
    ``j0``, and a ``cols x m`` state block ``X``); None otherwise."""
    found = [_scaled(v, params) for _, _, v in entries]
    if not entries or any(f is None for f in found):
        return None
    scale, key = found[0][0], _key(found[0][1])
    if any(c != scale or _key(w) != key for c, w in found):
        return None
    r0, c0 = min(r for r, _, _ in entries), min(c for _, c, _ in entries)
    first = sorted(c for r, c, _ in entries if r == r0)
    cols, m = len(first), (first[1] - first[0] if len(first) > 1 else 1)
    n_rows = len({r for r, _, _ in entries})
    if m < 1 or n_rows % m or len(entries) != n_rows * cols:
        return None
    rows = n_rows // m
    corner = [w for (r, c, _), (_, w) in zip(entries, found) if (r, c) == (r0, c0)]
    if not corner:
        return None
    j0 = corner[0][-1]
    for (r, c, _), (_, w) in zip(entries, found):
        i, k = divmod(r - r0, m)
        j, k2 = divmod(c - c0, m)
        if k != k2 or i >= rows or j >= cols or w[-1] != j0 + i * cols + j:
            return None
    return r0, c0, rows, cols, m, key, j0, scale


def _param_entries(entries: list, params: dict) -> list:
    """The entries that are (a number times) one parameter entry; at least :data:`MIN_ENTRIES` of them."""
    found = [e for e in entries if _scaled(e[2], params) is not None]
    return found if len(found) >= MIN_ENTRIES else []


def _key(where: tuple) -> tuple:
    return where[:2] if where[0] == "l" else ("k",)


def _scaled(v: sp.Expr, params: dict) -> tuple[float, tuple] | None:
    """``(c, where)`` when ``v`` is a number ``c`` times one parameter entry (``where`` its layout)."""
    c, rest = v.as_coeff_Mul()
    if rest in params and c != 0:
        return float(c), params[rest]
    return None


def linear_part(blocks: Blocks, x: fx.Node, entries: list, n_rows: int, n_cols: int) -> fx.Node:
    """``x @ M^T`` (``[batch, n_rows]``) for the entries ``(row, column, coefficient)`` of ``M``."""
    if all(c.is_Number for _, _, c in entries):
        return blocks.numeric_product(x, n_cols, list(range(n_cols)), list(range(n_rows)), entries)[0]
    g, em = blocks.g, blocks.em
    part = _param_entries(entries, em.params)
    kron = kron_layout(part, em.params)
    others = [e for e in entries if _scaled(e[2], em.params) is None]
    whole = kron is not None and kron[:4] == (0, 0, n_rows, n_cols)
    if kron is not None and (kron[4] > 1 or not (others or whole)):  # A @ X, or A @ (part of the state)
        product = _kron_product(em, x, kron, n_rows)
        if not others:
            return product  # other entries (-X): a second product (A @ x + y stays one gathered matrix)
        return g.call_function(operator.add, (product, linear_part(blocks, x, others, n_rows, n_cols)))
    whole = _whole_param(em, entries, n_rows, n_cols)
    if whole is not None:  # der(x) = A @ x: A's own entries, row-major, are the matrix
        return g.call_function(torch.matmul, (x, g.call_function(torch.transpose, (whole, 0, 1))))
    base = torch.zeros(n_cols * n_rows, dtype=torch.float64)
    index, values, gathered = [], [], {}
    for r, c, v in entries:
        if v.is_Number:
            base[c * n_rows + r] = float(v)
        elif _scaled(v, em.params) is not None:  # one gather per parameter, not one node per entry (A @ x)
            scale, where = _scaled(v, em.params)
            key = where[:2] if where[0] == "l" else ("k",)
            gathered.setdefault(key, ([], [], []))
            gathered[key][0].append(c * n_rows + r)
            gathered[key][1].append(where[-1])
            gathered[key][2].append(scale)
        else:
            index.append(c * n_rows + r)
            values.append(em.emit(v))
    if not gathered:  # entries that are expressions of parameters, one node each (k * g)
        return _product(blocks, x, base, index, values, n_rows, n_cols)
    pieces = [g.call_function(torch.stack, (values,))] if values else []
    for key, (positions, components, scales) in gathered.items():
        vec = _param_vector(em, key)
        comp = g.call_function(ops.like, (blocks.constant(torch.tensor(components, dtype=torch.long)), vec))
        piece = g.call_function(torch.index_select, (vec, 0, comp))
        if any(c != 1.0 for c in scales):  # 2 * A, -A: the numeric factors as one constant vector
            factor = g.call_function(ops.like, (blocks.constant(torch.tensor(scales, dtype=torch.float64)), vec))
            piece = g.call_function(operator.mul, (piece, factor))
        pieces.append(piece)
        index += positions
    ref = pieces[0]
    flat = pieces[0] if len(pieces) == 1 else g.call_function(torch.cat, (pieces,))
    if sorted(index) != list(range(len(base))):  # some entries numeric or zero: write into a base
        base_node = g.call_function(ops.like, (blocks.constant(base), ref))
        idx = g.call_function(ops.like, (blocks.constant(torch.tensor(index, dtype=torch.long)), ref))
        flat = g.call_function(ops.put, (base_node, idx, flat))
    elif index != list(range(len(base))):  # every entry a parameter value: only their order to fix
        order = sorted(range(len(index)), key=index.__getitem__)
        perm = g.call_function(ops.like, (blocks.constant(torch.tensor(order, dtype=torch.long)), ref))
        flat = g.call_function(torch.index_select, (flat, 0, perm))
    mt = g.call_function(torch.reshape, (flat, (n_cols, n_rows)))
    return g.call_function(torch.matmul, (x, mt))


def _product(blocks: Blocks, x: fx.Node, base, index: list, values: list, n_rows: int, n_cols: int) -> fx.Node:
    """``x @ M^T`` with ``M^T`` (flat) the numbers of ``base`` and ``values`` at ``index``."""
    g = blocks.g
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


def _kron_product(em, x: fx.Node, kron: tuple, n_rows: int) -> fx.Node:
    """``s A @ X`` (one batched matmul) for the layout of :func:`kron_layout`, zero outside its rows."""
    r0, c0, rows, cols, m, key, j0, scale = kron
    block = em.call(operator.getitem, x, (Ellipsis, slice(c0, c0 + cols * m)))
    piece = em.call(operator.getitem, _param_vector(em, key), slice(j0, j0 + rows * cols))
    a = em.call(torch.reshape, piece, (rows, cols))
    if scale != 1.0:
        a = em.call(operator.mul, a, scale)
    return em.call(ops.matrix_times, block, a, m, r0, n_rows - r0 - rows * m)


def _param_vector(em, key: tuple) -> fx.Node:
    """The node of a parameter's values: learned value ``key[1]``, or the known vector."""
    if key[0] == "k":
        return em.known()
    return em.call(operator.getitem, em.call(operator.getitem, em.p_node, 1), key[1])


def _whole_param(em, entries: list, n_rows: int, n_cols: int) -> fx.Node | None:
    """``M`` (``[n_rows, n_cols]``) as a view of one parameter's values when every entry ``M[r, c]`` is
    ``s`` times its component ``j0 + r * n_cols + c`` (``s A @ x``, the whole state); else None."""
    if len(entries) != n_rows * n_cols:
        return None
    found = [_scaled(v, em.params) for _, _, v in entries]
    if any(f is None for f in found):
        return None
    scale = found[0][0]
    where = [w for _, w in found]
    key = where[0][:2] if where[0][0] == "l" else ("k",)
    if any(c != scale for c, _ in found) or any((w[:2] if w[0] == "l" else ("k",)) != key for w in where):
        return None
    j0 = min(w[-1] for w in where)
    if any(w[-1] != j0 + r * n_cols + c for (r, c, _), w in zip(entries, where)):
        return None
    vec = _param_vector(em, key)
    piece = em.call(operator.getitem, vec, slice(j0, j0 + n_rows * n_cols))
    m = em.call(torch.reshape, piece, (n_rows, n_cols))
    return m if scale == 1.0 else em.call(operator.mul, m, scale)


def add_rest(blocks: Blocks, product: fx.Node, rest: list) -> fx.Node:
    """``product + rest`` (the rows' remaining terms), or the product alone when they are all zero."""
    if all(r == 0 for r in rest):
        return product
    return blocks.g.call_function(operator.add, (product, blocks.assemble(blocks.block(rest), len(rest))))
