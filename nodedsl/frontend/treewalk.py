"""Walks of lark parse trees without recursion: generated models (10,000-term sums) must parse and check.

Lark's LALR parser is iterative, but a left-associative chain ``a + b + c + ...`` of n terms is a tree n
levels deep, and lark's ``Transformer`` and every later tree walk (check, lowering, compiling) recurse.
Three steps keep every later stage shallow:

* :func:`rebalance` rewrites long ``+``/``-`` and ``*``/``/`` chains into balanced trees of the same
  value (``a - b + c - d`` is ``(a - b) + (c - d)``; the sign of the right half's operators flips under a
  ``-``: ``a - (b - c)`` is ``a - b + c``), so a chain of n terms is ``log2 n`` deep;
* :func:`nesting_depth` measures what remains (calls, arrays, powers, unary minus nest for real), so the
  parser can refuse an expression deeper than the ``depth`` limit with a located diagnostic;
* :func:`transform` runs a lark ``Transformer`` bottom-up with an explicit stack.

Example:
    >>> from lark import Tree
    >>> chain = Tree("add", [Tree("add", [Tree("add", ["a", "b"]), "c"]), "d"])
    >>> rebalance(chain, min_terms=2)
    Tree('add', [Tree('add', ['a', 'b']), Tree('add', ['c', 'd'])])
"""

from __future__ import annotations

from typing import Any

from lark import Token, Tree
from lark.tree import Meta
from lark.visitors import Discard

__all__ = ["nesting_depth", "rebalance", "transform"]

# chains of these rules (left-associative, same precedence) are rebalanced; `@` is not: a mixed chain of
# `*` and `@` is not associative (a scalar times a matrix product is, a vector product is not)
_CHAINS = {"add": ("add", "sub_"), "sub_": ("add", "sub_"), "mul": ("mul", "div"), "div": ("mul", "div")}
_FLIP = {"add": "sub_", "sub_": "add", "mul": "div", "div": "mul"}


def _meta(first: Any, last: Any) -> Meta:
    """The span from the start of ``first`` to the end of ``last`` (trees or tokens)."""
    meta = Meta()
    a = first.meta if isinstance(first, Tree) else first
    b = last.meta if isinstance(last, Tree) else last
    if not getattr(a, "line", None) or not getattr(b, "end_line", None):
        return meta
    meta.line, meta.column = a.line, a.column
    meta.end_line, meta.end_column = b.end_line, b.end_column
    meta.start_pos, meta.end_pos = getattr(a, "start_pos", 0), getattr(b, "end_pos", 0)
    meta.empty = False
    return meta


def _build(terms: list, ops: list[str]) -> Any:
    """A balanced tree of ``terms[0] ops[0] terms[1] ops[1] ...`` (ops[i] joins terms[i] and terms[i+1])."""
    # recursion depth is only log2(len(terms))
    if len(terms) == 1:
        return terms[0]
    mid = len(terms) // 2
    left = _build(terms[:mid], ops[: mid - 1])
    join = ops[mid - 1]
    right_ops = [_FLIP[o] for o in ops[mid:]] if join in ("sub_", "div") else ops[mid:]
    right = _build(terms[mid:], right_ops)
    return Tree(join, [left, right], _meta(left, right))


def _chain(node: Tree) -> tuple[list, list[str]]:
    """The terms and operators of the left-associative chain that ends at ``node``."""
    family = _CHAINS[node.data]
    terms, ops = [], []
    while isinstance(node, Tree) and node.data in family:
        ops.append(node.data)
        terms.append(node.children[1])
        node = node.children[0]
    terms.append(node)
    terms.reverse()
    ops.reverse()
    return terms, ops


def rebalance(tree: Tree, min_terms: int = 32) -> Tree:
    """Rewrite every chain of at least ``min_terms`` terms as a balanced tree; returns the (new) root."""
    # the chain roots in pre-order with their slot; rewritten in reverse, so a chain nested in a term of
    # another one is rebuilt (in its parent's children, an original node) before the outer chain is read
    roots: list[tuple[Tree | None, int, Tree]] = []
    todo: list[tuple[Tree | None, int, Any]] = [(None, 0, tree)]
    while todo:
        parent, i, node = todo.pop()
        if not isinstance(node, Tree):
            continue
        inner = parent is not None and i == 0 and node.data in _CHAINS and parent.data in _CHAINS[node.data]
        if node.data in _CHAINS and not inner:
            roots.append((parent, i, node))
        todo.extend((node, j, c) for j, c in enumerate(node.children))
    for parent, i, node in reversed(roots):
        terms, ops = _chain(node)
        if len(terms) < min_terms:
            continue
        new = _build(terms, ops)
        if parent is None:
            tree = new
        else:
            parent.children[i] = new
    return tree


def nesting_depth(tree: Tree) -> tuple[int, Tree]:
    """The depth of the deepest path of ``tree`` and the deepest subtree found (for its location)."""
    best, where = 0, tree
    todo: list[tuple[Any, int]] = [(tree, 1)]
    while todo:
        node, depth = todo.pop()
        if not isinstance(node, Tree):
            continue
        if depth > best:
            best, where = depth, node
        todo.extend((c, depth + 1) for c in node.children)
    return best, where


def transform(transformer: Any, tree: Tree) -> Any:
    """``transformer.transform(tree)`` computed bottom-up with an explicit stack (no recursion)."""
    results: dict[int, Any] = {}
    todo: list[tuple[Tree, bool]] = [(tree, False)]
    visit_tokens = getattr(transformer, "__visit_tokens__", True)
    while todo:
        node, expanded = todo.pop()
        if not expanded:
            todo.append((node, True))
            todo.extend((c, False) for c in node.children if isinstance(c, Tree))
            continue
        children = []
        for c in node.children:
            if isinstance(c, Tree):
                res = results.pop(id(c))
            elif visit_tokens and isinstance(c, Token):
                res = transformer._call_userfunc_token(c)
            else:
                res = c
            if res is not Discard:
                children.append(res)
        results[id(node)] = transformer._call_userfunc(node, children)
    return results[id(tree)]
