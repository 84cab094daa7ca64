"""Completion candidates at a cursor: members after ``left.``, names in scope, builtins, keywords,
``train``/``dataset`` keys, solver names and their options.

Candidates are plain ``(label, kind, detail, documentation)`` tuples; the server turns them into
LSP items. ``kind`` is one of: member kinds (state, param, ...), model, dataset, builtin, constant,
keyword, key, solver, option.

Example:
    >>> from nodedsl.lsp.analysis import Analyzer
    >>> src = "model S { state q = 1\\n der(q) = -q }\\nmodel C { sub s = S()\\n let e = s.\\n}"
    >>> res = analyze_for_completion(Analyzer(), "/tmp/c.node", src, 4)
    >>> [(c[0], c[1]) for c in complete(res, "/tmp/c.node", 4, " let e = s.")]
    [('q', 'state')]
"""

from __future__ import annotations

import re

from ..core.solvers import CATALOG, describe_solver
from ..core.words import MODEL_BODY, TOP_LEVEL
from ..frontend import ast
from .analysis import Analysis, Analyzer
from .hover import signature
from .index import _block, _block_model, lookup_model, member_path, members

Item = tuple[str, str, str, str]

MODEL_KEYWORDS = list(MODEL_BODY)  # the words of the language are declared in nodedsl.core.words
TOP_KEYWORDS = TOP_LEVEL
# the keys when the pydantic block models cannot be imported (they are the checker's)
_DATASET_KEYS = ("model", "trajectories", "time", "initial", "inputs", "noise", "seed", "solver")
_OPTIMIZERS = ("adam", "adamw", "lbfgs", "gauss_newton", "kfac")
_DOTTED = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(\w*)$")


def block_keys(kind: str) -> list[str]:
    """The keys of a ``dataset`` or ``train`` block, as the checker's configuration models declare them."""
    try:
        from ..frontend import config

        cls = config.DatasetConfig if kind == "dataset" else config.TrainConfig
        return [k for k in cls.model_fields if not k.startswith("_")]
    except (ImportError, AttributeError):
        return list(_DATASET_KEYS) if kind == "dataset" else ["model", "data", "solver", "epochs", "optimizer"]


def _member_items(res: Analysis, file: str, model: ast.Model) -> list[Item]:
    info = res.info(file, model.name)
    out = []
    for name, t in members(res, file, model).items():
        m = info.members.get(name) if info else None
        detail = t.kind + (f" {m.shape}" if m is not None and m.shape else "")
        out.append((name, t.kind, detail, ""))
    return out


def _scope_items(res: Analysis, file: str, only: type | None = None) -> list[Item]:
    out = []
    for name, (_, item) in res.source.scopes.get(file, {}).items():
        kind = "model" if isinstance(item, ast.Model) else "dataset"
        if only is None or isinstance(item, only):
            out.append((name, kind, kind, ""))
    return out


def _builtin_items() -> list[Item]:
    from ..frontend.shapes import BUILTINS, CONSTANTS

    out = [(n, "builtin", signature(n), b.doc) for n, b in sorted(BUILTINS.items())]
    return out + [(n, "constant", "constant", "") for n in sorted(CONSTANTS)] + [("t", "constant", "time", "")]


def _solver_items() -> list[Item]:
    return [(n, "solver", spec.summary, describe_solver(n)) for n, spec in sorted(CATALOG.items())]


def _dotted(res: Analysis, file: str, block, parts: list[str]) -> list[Item]:
    """Completions after ``parts.``: a sub-model's members, or the models of an import alias."""
    prefix = ".".join(parts) + "."
    aliased = [(n[len(prefix) :], k, d, doc) for n, k, d, doc in _scope_items(res, file) if n.startswith(prefix)]
    if aliased:
        return aliased
    where: tuple[str, ast.Model] | None
    if isinstance(block, ast.Model):
        where = (file, block)
    else:
        where = _block_model(res, file, block) if block is not None else None
    if where is None:
        return []
    target = member_path(res, where[0], where[1], parts)
    if target is None or target.kind != "sub":
        return []
    found = lookup_model(res, target.file or "", target.decl.model.dotted)
    return _member_items(res, *found) if found else []


def _in_block(res: Analysis, file: str, block, before: str) -> list[Item]:
    """In a ``dataset``/``train`` block: keys at a line's start, solver names and options, names."""
    call = re.search(r"solver\s*=\s*(\w+)\([^)]*$", before)
    if call and call.group(1) in CATALOG:
        return [(o.name, "option", o.kind.__name__, o.doc) for o in CATALOG[call.group(1)].options]
    value = re.search(r"(\w+)\s*=\s*\w*$", before)
    if value is None and re.fullmatch(r"\s*\w*", before):
        kind = "dataset" if isinstance(block, ast.Dataset) else "train"
        return [(k, "key", f"{kind} key", "") for k in block_keys(kind)]
    key = value.group(1) if value else ""
    if key == "solver":
        return _solver_items()
    if key == "optimizer":
        return [(n, "keyword", "optimizer", "") for n in _OPTIMIZERS]
    if key == "data":
        return _scope_items(res, file, ast.Dataset)
    if key == "model":
        return _scope_items(res, file, ast.Model)
    bm = _block_model(res, file, block)
    return _member_items(res, *bm) if bm else []


def analyze_for_completion(analyzer: Analyzer, path: str, text: str, line: int) -> Analysis:
    """The analysis of ``text``; when it does not parse (a half-typed ``left.``), of ``text`` with the
    cursor's line blanked, so the blocks and members around the cursor are still known."""
    res = analyzer.analyze(path, text, proofs=False)
    if path in res.source.modules:
        return res
    lines = text.split("\n")
    if 0 < line <= len(lines):
        lines[line - 1] = ""
    patched = analyzer.analyze(path, "\n".join(lines), proofs=False)
    analyzer.buffers[path] = text
    return patched


def complete(res: Analysis, file: str, line: int, before: str) -> list[Item]:
    """Candidates on 1-based ``line`` whose text up to the cursor is ``before``."""
    mod = res.module(file)
    block = _block(mod, line, max(len(before), 1)) if mod is not None else None
    m = _DOTTED.search(before)
    if m:
        return _dotted(res, file, block, m.group(1).split("."))
    if block is None:
        return [(k, "keyword", "keyword", "") for k in TOP_KEYWORDS] + _scope_items(res, file)
    if not isinstance(block, ast.Model):
        return _in_block(res, file, block, before)
    if re.fullmatch(r"\s*\w*", before):
        return [(k, "keyword", "keyword", "") for k in MODEL_KEYWORDS] + _member_items(res, file, block)
    if re.search(r"\bsub\s+\w+\s*=\s*[\w.]*$", before):
        return _scope_items(res, file, ast.Model)
    return _member_items(res, file, block) + _builtin_items() + _scope_items(res, file, ast.Model)
