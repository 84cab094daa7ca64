"""Lists of expressions as few torch.fx nodes.

* Expressions of one shape over different symbols (the same equation of repeated sub-models) are
  evaluated once on gathered columns, strided views where the columns are evenly spaced.
* The coupling map ``u = C y`` of a port-Hamiltonian composite is one small matmul per piece of
  ``y``, one matmul, or (large or learned maps) a gather and an ``index_add``.
* The output is assembled with one ``cat``, permuted only when the pieces interleave.
"""

from __future__ import annotations

import operator

import sympy as sp
import torch
from torch import fx

from ..symbolic.functions import NetCall
from ..symbolic.system import T
from . import ops
from .emit import Emitter
from .views import columns_read, split_views


def _shape_groups(exprs: list[sp.Expr], kind_of) -> tuple[list, list[int]]:
    """Expressions of the same shape over different symbols (repeated sub-models), grouped.

    Each group is ``(template, members, bindings)``: the template has placeholder symbols in place of
    each member's symbols (``bindings[m]``, in first-appearance order); evaluating the template once on
    gathered columns computes every member (one op per template node instead of one per member).
    Expressions with nets (each instance has its own net) or without symbols stay single."""
    found: dict = {}
    singles: list[int] = []
    for i, e in enumerate(exprs):
        if not e.free_symbols or e.has(NetCall):
            singles.append(i)
            continue
        order, seen = [], set()
        for node in sp.preorder_traversal(e):
            if isinstance(node, sp.Symbol) and node not in seen:
                seen.add(node)
                order.append(node)
        kinds = tuple(kind_of(s) for s in order)
        if None in kinds:
            singles.append(i)
            continue
        template = e.xreplace({s: sp.Symbol(f"_ph{k}", real=True) for k, s in enumerate(order)})
        key = (sp.srepr(template), kinds)
        entry = found.setdefault(key, (template, kinds, [], []))
        entry[2].append(i)
        entry[3].append(order)
    groups = []
    for template, kinds, members, bindings in found.values():
        if len(members) >= 2:
            groups.append((template, kinds, members, bindings))
        else:
            singles.extend(members)
    return groups, sorted(singles)


def _index(idx: list[int]):
    """A column selector: a (strided) slice, i.e. a view, when the indices are an arithmetic progression
    (the same member of repeated sub-models), else the index list (a gather)."""
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if step > 0 and idx == list(range(idx[0], idx[0] + step * len(idx), step)):
        return (Ellipsis, slice(idx[0], idx[0] + step * (len(idx) - 1) + 1, step))
    return (Ellipsis, idx)


_DENSE_MAX = 4096  # a numeric coupling map with at most this many entries is one matmul, else gather + index_add


class Blocks:
    """Emits lists of expressions as ``[batch, k]`` nodes, repeated-shape groups evaluated once."""

    def __init__(self, graph: fx.Graph, em: Emitter, root: torch.nn.Module, kinds: dict):
        self.g, self.em, self.root = graph, em, root
        self.kinds = kinds  # column source node -> "x" | "u" | "z" | "w" (coupled and free inputs of a composite)
        self.cache: dict = {}  # the member expressions of a group -> its node (shared by blocks)
        self.count = 0
        self.vectors: dict = {}  # (kind, columns) -> symbol of the gathered vector
        self.products: list = []  # (matmul node, constant's name, width): columns free to reorder
        self.zero = graph.call_function(
            torch.zeros_like, (graph.call_function(operator.getitem, (em.x_node, (Ellipsis, 0))),)
        )

    def kind_of(self, s):
        if s in self.em.columns:
            return self.kinds[self.em.columns[s][0]]
        if s in self.em.params:
            return "k" if self.em.params[s][0] == "k" else "l"
        return "t" if s == T else None

    def constant(self, value: torch.Tensor) -> fx.Node:
        name = f"_const{len(self.root._buffers)}"
        self.root.register_buffer(name, value)
        return self.g.get_attr(name)

    def select(self, node: fx.Node, idx: list[int]) -> fx.Node:
        """Columns ``idx`` of ``node``: a strided view when they are evenly spaced, else ``index_select``
        with a constant index (Python-list indexing builds an index tensor on every call)."""
        where = _index(idx)
        if isinstance(where[1], slice):
            return self.g.call_function(operator.getitem, (node, where))
        index = self.g.call_function(ops.like, (self.constant(torch.tensor(idx, dtype=torch.long)), node))
        return self.g.call_function(torch.index_select, (node, -1, index))

    def _vector(self, kind: str, column: tuple) -> sp.Symbol:
        """The symbol standing for the gathered ``column`` (one gather per distinct column list)."""
        if (kind, column) not in self.vectors:
            sym = sp.Symbol(f"_vec{len(self.vectors)}", real=True)
            self.vectors[(kind, column)] = sym
            self.em.symbols[sym] = self._gather(kind, list(column))
        return self.vectors[(kind, column)]

    def _gather(self, kind: str, column: list) -> fx.Node:
        em, g = self.em, self.g
        if kind == "t":
            return em.symbols["t"]
        if kind == "k":
            known = em.known()
            return self.select(known, [em.params[c][1] for c in column])
        if kind == "l":
            return g.call_function(torch.stack, ([em.param(c) for c in column],))
        runs: list = []  # (source node, its columns) in member order: inputs may come from several nodes
        for c in column:
            node, col = em.columns[c]
            if runs and runs[-1][0] is node:
                runs[-1][1].append(col)
            else:
                runs.append((node, [col]))
        parts = [self.select(node, cols) for node, cols in runs]
        return parts[0] if len(parts) == 1 else g.call_function(torch.cat, (parts,), {"dim": -1})

    def block(self, exprs: list[sp.Expr], min_size: int = 4) -> list[tuple[fx.Node, list[int], bool]]:
        """``exprs`` as pieces ``(node, expression indices, scalar)``: ``[batch, k]`` nodes for groups of
        repeated shape, ``[batch]`` ones for single expressions."""
        em, g = self.em, self.g
        batch = {"x", "u", "z"}
        shaped, singles = (
            _shape_groups(exprs, self.kind_of) if len(exprs) >= min_size else ([], list(range(len(exprs))))
        )
        pieces: list = []
        for template, kinds, members, bindings in shaped:
            key = tuple(exprs[i] for i in members)
            if key not in self.cache:
                # each placeholder becomes the symbol of its gathered columns, so that groups gathering the
                # same columns share those gathers and their common subexpressions through the memo
                vec = {
                    sp.Symbol(f"_ph{k}", real=True): self._vector(kind, tuple(b[k] for b in bindings))
                    for k, kind in enumerate(kinds)
                }
                node = em.emit(template.xreplace(vec))
                if not any(k in batch or k.startswith("w") for k in kinds) or not isinstance(node, fx.Node):
                    # batch and width from zeros: a group of time alone (der(a) = t, der(d) = t) is one value
                    node = g.call_function(
                        operator.add, (g.call_function(ops.zeros_cols, (em.x_node, len(members))), node)
                    )
                self.cache[key] = node
            pieces.append((self.cache[key], members, False))
        batch_syms = {s for s in em.columns}
        single_exprs = [exprs[i] for i in singles]
        self.count += 1  # fresh names per block: the emitter's memo outlives a block
        replacements, reduced = sp.cse(
            single_exprs, symbols=sp.numbered_symbols(f"_cse{self.count}_"), optimizations=None
        )
        for sym, value in replacements:
            em.memo[sym] = em.emit(value)
        cols = []
        for original, e in zip(single_exprs, reduced):
            node = em.emit(e)
            if not (original.free_symbols & batch_syms) or not isinstance(node, fx.Node):
                node = g.call_function(operator.add, (self.zero, node))
            cols.append(node)
        return pieces + [(node, [i], True) for node, i in zip(cols, singles)]

    def _vectors(self, pieces: list) -> list[tuple[fx.Node, list[int]]]:
        """The vector pieces, with the scalar ones stacked into one more."""
        vectors = [(node, members) for node, members, scalar in pieces if not scalar]
        scalars = [(node, members[0]) for node, members, scalar in pieces if scalar]
        if scalars:
            vectors.append(
                (self.g.call_function(torch.stack, ([n for n, _ in scalars],), {"dim": -1}), [i for _, i in scalars])
            )
        return vectors

    def combine(self, pieces: list) -> tuple[fx.Node, list[int]]:
        """Pieces as one ``[batch, k]`` node whose column k is expression ``order[k]``."""
        g = self.g
        vectors = self._vectors(pieces)
        if not vectors:
            return g.call_function(operator.getitem, (self.em.x_node, (Ellipsis, slice(0, 0)))), []
        out = (
            vectors[0][0]
            if len(vectors) == 1
            else g.call_function(torch.cat, ([node for node, _ in vectors],), {"dim": -1})
        )
        return out, [i for _, members in vectors for i in members]

    def assemble(self, pieces: list, n: int) -> fx.Node:
        """Pieces in expression order: one ``cat`` when they tile the columns in runs (scalars stacked
        per run), else a ``cat`` then one permuting ``index_select`` (measured cheaper, forward and
        backward, than stacking interleaved pieces or writing them into strided slices)."""
        g = self.g
        owner = {i: k for k, (_, members, _) in enumerate(pieces) for i in members}
        segments, i = [], 0
        while i < n:
            node, members, scalar = pieces[owner[i]]
            if scalar:
                run = []
                while i < n and pieces[owner[i]][2]:
                    run.append(pieces[owner[i]][0])
                    i += 1
                segments.append(g.call_function(torch.stack, (run,), {"dim": -1}))
            elif members == list(range(i, i + len(members))):
                segments.append(node)
                i += len(members)
            else:
                out, order = self.combine(pieces)
                return self.select(out, sorted(range(len(order)), key=order.__getitem__))
        if not segments:
            return self.combine(pieces)[0]
        return segments[0] if len(segments) == 1 else g.call_function(torch.cat, (segments,), {"dim": -1})

    def per_piece(self, pieces: list, entries: list, n_out: int) -> list | None:
        """``M y`` as one small matmul per piece of ``y`` (no ``cat``), when the pieces drive disjoint rows
        (a chain: the springs' forces drive the masses, the masses' velocities the springs); else None."""
        if not entries or not all(c.is_Number for _, _, c in entries):
            return None
        vectors = self._vectors(pieces)
        where = {c: (k, j) for k, (_, members) in enumerate(vectors) for j, c in enumerate(members)}
        rows: list[set] = [set() for _ in vectors]
        for r, c, _ in entries:
            rows[where[c][0]].add(r)
        if sum(len(r) for r in rows) != len(set().union(*rows)) or any(
            len(r) * len(v[1]) > _DENSE_MAX for r, v in zip(rows, vectors)
        ):
            return None
        out = []
        for k, (node, members) in enumerate(vectors):
            if rows[k]:
                mine = [(r, where[c][1], v) for r, c, v in entries if where[c][0] == k]
                out.append(self.numeric_product(node, len(members), list(range(len(members))), sorted(rows[k]), mine))
        return self._undriven(out, vectors[0][0], n_out)

    def numeric_product(
        self, node: fx.Node, width: int, cols: list[int], rows: list[int], entries: list
    ) -> tuple[fx.Node, list[int]]:
        """``node[..., cols] @ M`` (``node`` has ``width`` columns) for the numeric entries
        ``(row, column, value)``: column j of the result is row ``rows[j]`` of the map."""
        m = torch.zeros(len(cols), len(rows), dtype=torch.float64)
        for r, c, v in entries:
            m[cols.index(c), rows.index(r)] += float(v)
        const = self.constant(m)
        # a whole-tensor slice would cost a zero-filled gradient backward
        picked = node if cols == list(range(width)) else self.select(node, cols)
        product = self.g.call_function(torch.matmul, (picked, self.g.call_function(ops.like, (const, node))))
        self.products.append((product, const.target, len(rows)))
        return product, rows

    def _undriven(self, pieces: list, ref: fx.Node, n_out: int) -> list:
        """``pieces`` and, for inputs that no coupling drives, zeros."""
        zero_rows = sorted(set(range(n_out)) - {r for _, rows in pieces for r in rows})
        if zero_rows:
            pieces.append((self.g.call_function(ops.zeros_cols, (ref, len(zero_rows))), zero_rows))
        return pieces

    def linear(self, y: fx.Node, entries: list[tuple[int, int, sp.Expr]], n_out: int, n_in: int) -> list:
        """``M y`` for the ``(row, column, coefficient)`` entries of ``M`` (numbers or parameter expressions),
        as pieces ``(node [batch, k], rows)``: column j of node is row ``rows[j]`` of ``M y``.

        A small numeric map is one matmul over its nonzero rows and columns (measured on the 10-body
        chain: faster than one product per connected block, and than the sparse form); a large or
        learned one is a gather, a product with the coefficients and an ``index_add``."""
        g = self.g
        numeric = all(c.is_Number for _, _, c in entries)
        rows = sorted({r for r, _, _ in entries})
        cols = sorted({c for _, c, _ in entries})
        if not numeric or len(rows) * len(cols) > _DENSE_MAX:
            rs, cs, coefs = zip(*entries)
            picked = self.select(y, list(cs))
            if numeric:
                if any(float(c) != 1.0 for c in coefs):
                    vec = self.constant(torch.tensor([float(c) for c in coefs], dtype=torch.float64))
                    picked = g.call_function(operator.mul, (picked, g.call_function(ops.like, (vec, y))))
            else:
                vec = g.call_function(torch.stack, ([self.em.tensor(self.em.emit(c)) for c in coefs],))
                picked = g.call_function(operator.mul, (picked, vec))
            index = g.call_function(ops.like, (self.constant(torch.tensor(rs, dtype=torch.long)), y))
            return [(g.call_function(ops.scatter_cols, (y, picked, index, n_out)), list(range(n_out)))]
        return self._undriven([self.numeric_product(y, n_in, cols, rows, entries)] if entries else [], y, n_out)


def contiguous_reads(graph: fx.Graph, root: torch.nn.Module, product: fx.Node, const: str, width: int) -> None:
    """Reorder the output columns of ``y @ const`` so that each slice read from it is contiguous, then
    read them through one split (no zero-filled gradient per slice, backward)."""
    reads = [(user, columns_read(user, width)) for user in product.users]
    if not reads or any(cols is None for _, cols in reads):
        return
    flat = [i for _, (idx, _) in reads for i in idx]
    if len(set(flat)) != len(flat):
        return
    order = flat + sorted(set(range(width)) - set(flat))
    root.register_buffer(const, root._buffers[const][:, order].contiguous())
    if len(reads) == 1 and flat == list(range(width)) and not reads[0][1][1]:
        reads[0][0].replace_all_uses_with(product)  # the whole product, in order: no slice at all
        graph.erase_node(reads[0][0])
        return
    pos = 0
    for user, (idx, scalar) in reads:
        user.args = (product, (Ellipsis, pos if scalar else slice(pos, pos + len(idx))))
        pos += len(idx)
    split_views(graph, product, width)
