"""The language server's model of a program: open buffers over files on disk, parsed once per text.

:class:`Analyzer` loads a document and its imports like :func:`nodedsl.frontend.loader.load_sources`,
but reads open editor buffers before the disk and keeps every parse keyed by the file's text, so
after an edit only the edited file is parsed again (and of it only the edited statements, see
:mod:`nodedsl.lsp.incremental`); then it checks the program with
:func:`nodedsl.frontend.check.check_source` and, when the front end finds no error, runs the
structural proofs ``nodedsl check`` runs (cached per model by its syntax tree). File names in
spans are absolute paths, so a span is a location in the editor.

Example:
    >>> an = Analyzer()
    >>> res = an.analyze("/tmp/a.node", "model M { state x = 1\\n der(x) = -y }")
    >>> [(d.code, d.span.line, d.span.col) for d in res.diagnostics]
    [('undefined-name', 2, 12)]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.diagnostics import Collector, Diagnostic, NodeDslError, Span
from ..core.resources import data_dir
from ..frontend import ast
from ..frontend.check import CheckedProgram, ModelInfo, check_source
from ..frontend.loader import Source
from .incremental import IncrementalParser


@dataclass
class Analysis:
    """One document's program: its files (root first), the checked models and every diagnostic."""

    root: str
    source: Source
    checked: CheckedProgram | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def module(self, file: str) -> ast.Module | None:
        return self.source.modules.get(file)

    def info(self, file: str, model: str) -> ModelInfo | None:
        return self.checked.infos.get((file, model)) if self.checked else None


def resolve_import(imp: ast.Import, importer: str) -> str:
    """The absolute path an ``import`` names (as the loader resolves it)."""
    if imp.path.endswith(".node") or "/" in imp.path:
        return str((Path(importer).parent / imp.path).resolve())
    return str((data_dir("stdlib") / f"{imp.path}.node").resolve())


class Analyzer:
    """Parses and checks documents; remembers parses by text and proofs by model."""

    def __init__(self) -> None:
        self.buffers: dict[str, str] = {}  # absolute path -> text of an open editor buffer
        self._parses: dict[tuple[str, str], ast.Module | NodeDslError] = {}
        self._proofs: dict[str, list[Diagnostic]] = {}
        self._incremental = IncrementalParser()

    def _text(self, path: str) -> str:
        if path in self.buffers:
            return self.buffers[path]
        return Path(path).read_text(encoding="utf-8")

    def parse(self, path: str, text: str) -> ast.Module:
        """The syntax tree of ``text`` (cached by the text's hash); raises NodeDslError."""
        key = (path, hashlib.blake2b(text.encode(), digest_size=16).hexdigest())
        hit = self._parses.get(key)
        if hit is None:
            try:
                hit = self._incremental.parse(text, path)
            except NodeDslError as err:
                hit = err
            if len(self._parses) > 512:  # old versions of edited buffers
                self._parses.clear()
            self._parses[key] = hit
        if isinstance(hit, NodeDslError):
            raise hit
        return hit

    def load(self, root: str, text: str | None = None) -> tuple[Source, list[Diagnostic]]:
        """The root document and its imports; problems are returned, not raised."""
        if text is not None:
            self.buffers[root] = text
        diags = Collector()
        src = Source(root=root)
        stack: list[str] = []

        def visit(path: str, at: Span | None) -> bool:
            if path in src.modules:
                return True
            try:
                body = self._text(path)
            except (OSError, UnicodeDecodeError) as err:
                code = "import-not-found" if at and isinstance(err, FileNotFoundError) else "unreadable-file"
                diags.error(
                    code, f"cannot read '{path}': {getattr(err, 'strerror', None) or err}", at or Span(path, 0, 0)
                )
                return False
            src.texts[path] = body
            try:
                module = self.parse(path, body)
            except NodeDslError as err:
                diags.items.extend(err.diagnostics)
                return False
            src.modules[path] = module
            stack.append(path)
            scope: dict[str, tuple[str, Any]] = {}
            for imp in module.imports:
                target = resolve_import(imp, path)
                if target in stack:
                    cycle = " -> ".join(stack[stack.index(target) :] + [target])
                    diags.error("import-cycle", f"import cycle: {cycle}", imp.span)
                    continue
                if not visit(target, imp.span):
                    continue
                dep = src.modules[target]
                exported: list[Any] = [*dep.models, *dep.datasets]
                for item in exported:
                    scope[f"{imp.alias}.{item.name}" if imp.alias else item.name] = (target, item)
            own: list[Any] = [*module.models, *module.datasets]
            for item in own:
                if item.name in scope and scope[item.name][0] == path:
                    first = scope[item.name][1].span
                    diags.error(
                        "duplicate-name",
                        f"'{item.name}' is declared twice in this file",
                        item.span,
                        f"first declared at {first}",
                    )
                    continue
                scope[item.name] = (path, item)
            src.scopes[path] = scope
            stack.pop()
            return True

        visit(root, None)
        return src, diags.items

    def analyze(self, root: str, text: str | None = None, *, proofs: bool = True) -> Analysis:
        """Load, check and (when the front end is clean) prove ``root``; never raises NodeDslError."""
        source, diags = self.load(root, text)
        if any(d.severity == "error" for d in diags) or root not in source.modules:
            return Analysis(root, source, None, diags)
        checked, more = check_source(source)
        diags = diags + list(more)
        if proofs and not any(d.severity == "error" for d in diags):
            for info in checked.infos.values():
                diags += self._prove(info)
        return Analysis(root, source, checked, diags)

    def _prove(self, info: ModelInfo) -> list[Diagnostic]:
        """``nodedsl check``'s structural and value proofs of one model, cached by its declarations."""
        h = hashlib.blake2b(digest_size=16)

        def visit(i: ModelInfo) -> None:
            h.update(f"{i.file}\0{i.model!r}\0".encode())
            for sub in i.subs.values():
                visit(sub)

        visit(info)
        key = h.hexdigest()
        if key not in self._proofs:
            self._proofs[key] = _proofs(info)
        return self._proofs[key]


def _proofs(info: ModelInfo) -> list[Diagnostic]:
    """What ``nodedsl check`` adds after the front end, for one model (the same functions)."""
    from .. import program  # SymPy loads on the first proof that needs it, not when the server starts

    try:
        return list(program._structure_diagnostics(info)) + list(program._value_diagnostics(info))
    except NodeDslError as err:
        return list(err.diagnostics)
    except Exception as err:  # a bug in a proof must not take the server down
        return [Diagnostic("internal", f"internal error: {type(err).__name__}: {err}", info.model.span)]
