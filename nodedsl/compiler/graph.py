"""SymPy expressions to a torch.fx graph (``emit``: the SymPy dispatch; ``ops``: the op vocabulary;
``blocks``: the layout).

The generated function has the signature ``fn(t, x, u, z, params, nets)`` and returns a
``[batch, len(exprs)]`` tensor; ``params`` is ``(known, learned)``: one flat vector of the known
parameters (repeated sub-models read theirs as strided views of it) and a tuple of learned values.
Common subexpressions are eliminated with ``sympy.cse`` first; each distinct net call is evaluated
once. No user text reaches the generated code: node names are generic and every value comes in
through the placeholders.

Example:
    >>> import sympy as sp, torch
    >>> x0 = sp.Symbol("x0")
    >>> fn = build_function([sp.sin(x0) * 2], {"x": [x0], "u": [], "z": []}, {}, [])
    >>> fn(torch.tensor(0.), torch.zeros(3, 1), torch.zeros(3, 0), torch.zeros(3, 0), (None, ()), ()).shape
    torch.Size([3, 1])
"""

from __future__ import annotations

import operator

import sympy as sp
import torch
from torch import fx

from ..symbolic.system import T
from .affine import add_rest, affine_split, linear_part
from .blocks import Blocks, contiguous_reads
from .emit import Emitter, UncompilableError
from .views import split_views

__all__ = ["UncompilableError", "build_function"]


def _fold_linear(exprs: list, inputs: list, entries: list) -> tuple[list, list, list]:
    """Field expressions that are numeric combinations of coupled inputs (a spring's ``u_1 - u_0``)
    become rows of the coupling map themselves (``c^T C``), and inputs no expression reads any more
    are dropped: the product computes those equations directly, one op fewer per group."""
    index = {s: i for i, s in enumerate(inputs)}
    by_row: dict = {}
    for r, c, v in entries:
        by_row.setdefault(r, []).append((c, v))
    inputs, entries, out = list(inputs), list(entries), list(exprs)
    for k, e in enumerate(exprs):
        if e in index or not e.free_symbols or not e.free_symbols <= index.keys():
            continue
        combo = []
        for term in sp.Add.make_args(e):
            c, rest = term.as_coeff_Mul()
            if rest not in index:
                break
            combo.append((index[rest], c))
        else:
            row = len(inputs)
            inputs.append(sp.Symbol(f"_coupled{row}", real=True))
            entries += [(row, col, c * v) for i, c in combo for col, v in by_row.get(i, [])]
            out[k] = inputs[row]
    used = set().union(*(e.free_symbols for e in out))
    keep = {old: new for new, old in enumerate(i for i, s in enumerate(inputs) if s in used)}
    return out, [s for s in inputs if s in used], [(keep[r], c, v) for r, c, v in entries if r in keep]


def build_function(
    exprs: list[sp.Expr], groups: dict[str, list[sp.Symbol]], params: dict, nets: list[str], staged=None
) -> fx.GraphModule:
    """Compile ``exprs`` of the symbols in ``groups`` (x, u, z columns) to ``fn(t, x, u, z, params, nets)``.

    ``params`` maps each parameter symbol to ``("k", i)`` (entry i of the known vector) or
    ``("l", k, j)`` (component j of learned value k). With ``staged`` (a coupled port-Hamiltonian
    composite, :class:`nodedsl.symbolic.lower.Staged`) the port outputs ``y`` are computed first, the coupled
    inputs ``u = C y`` as one linear map, then ``staged.rhs``: repeated sub-models stay repeated
    (one op per template node) instead of being unrolled by the substitution of ``u``."""
    graph = fx.Graph()
    t, x, u, z = (graph.placeholder(n) for n in ("t", "x", "u", "z"))
    p_node, nets_node = graph.placeholder("params"), graph.placeholder("nets")
    symbols: dict = {"t": t, T: t}
    columns: dict = {}
    for name, node in (("x", x), ("u", u), ("z", z)):
        for i, s in enumerate(groups.get(name, [])):
            symbols[s] = graph.call_function(operator.getitem, (node, (Ellipsis, i)))
            columns[s] = (node, i)
    em = Emitter(graph, symbols, nets, params, x_node=x, p_node=p_node, nets_node=nets_node, columns=columns)
    root = torch.nn.Module()
    blocks = Blocks(graph, em, root, {x: "x", u: "u", z: "z"})
    if staged is not None:
        # y = c * y' with c a number: compute each distinct y' once and fold c into the map (a spring's two
        # ends report -f and f)
        distinct, where = [], {}
        scale, column = [], []
        for y_expr in staged.outputs:
            c, rest = y_expr.as_coeff_Mul()
            if c == 0:
                c, rest = sp.Integer(1), y_expr
            if rest not in where and -rest in where:  # a sum and its negation (-k s - k3 s^3)
                c, rest = -c, -rest
            if rest not in where:
                where[rest] = len(distinct)
                distinct.append(rest)
            scale.append(c)
            column.append(where[rest])
        entries = [(r, column[c], v * scale[c]) for r, c, v in staged.entries]
        exprs, inputs, entries = _fold_linear(list(staged.rhs), list(staged.inputs), entries)
        ys = blocks.block(distinct, min_size=2)  # grouped as the field will group them: one p/m, shared
        products = blocks.per_piece(ys, entries, len(inputs))
        if products is None:
            y, order = blocks.combine(ys)
            position = {orig: k for k, orig in enumerate(order)}
            products = blocks.linear(y, [(r, position[c], v) for r, c, v in entries], len(inputs), len(order))
        # coupled inputs (the products' columns) and free ones (u: the ends of a chain) are one kind, so the
        # sub-models whose port is free stay in their group; the group gathers its columns across nodes
        blocks.kinds[u] = "w"
        for w, rows in products:
            blocks.kinds[w] = "w"
            for j, r in enumerate(rows):
                s = inputs[r]
                symbols[s] = graph.call_function(operator.getitem, (w, (Ellipsis, j)))
                columns[s] = (w, j)
    affine = None if staged is not None else affine_split(list(exprs), groups.get("x", []), params)
    if affine is None:
        graph.output(blocks.assemble(blocks.block(list(exprs)), len(exprs)))
    else:  # a dense linear part: one matmul (see _fxaffine)
        entries, rest = affine
        product = linear_part(blocks, x, entries, len(exprs), len(groups["x"]))
        graph.output(add_rest(blocks, product, rest))
    graph.eliminate_dead_code()  # e.g. a net's forward value when only its derivative is used
    split_views(graph, x, len(groups.get("x", [])), after=nets_node)
    for product, const, width in blocks.products:
        contiguous_reads(graph, root, product, const, width)
    graph.lint()
    return fx.GraphModule(root, graph)
