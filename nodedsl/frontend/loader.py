"""Import resolution: a root file and everything it imports, parsed once each, as a :class:`Source`.

This is the only front-end module that reads files. Paths ending in ``.node`` (or containing a
``/``) are relative to the importing file; any other path names a stdlib module
(``import "mechanics"`` is ``stdlib/mechanics.node``).

Example:
    >>> src = load_sources("examples/two_masses.node")          # doctest: +SKIP
    >>> sorted(src.scopes[src.root])                               # doctest: +SKIP
    ['MassSpringDamper', 'MassSpringDamperTruth', 'Spring', 'TwoMasses', 'TwoMassesLearned', 'coupled', 'oscillations']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.diagnostics import Collector, Diagnostic, NodeDslError, Span
from ..core.resources import data_dir
from . import ast
from .parse import parse_source


@dataclass
class Source:
    """Every file of a program, parsed, with each file's scope of visible models and datasets."""

    root: str
    texts: dict[str, str] = field(default_factory=dict)
    modules: dict[str, ast.Module] = field(default_factory=dict)
    # scopes[file][visible name] = (defining file, Model | Dataset)
    scopes: dict[str, dict[str, tuple[str, Any]]] = field(default_factory=dict)


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _resolve(imp: ast.Import, importer: Path) -> Path:
    if imp.path.endswith(".node") or "/" in imp.path:
        return (importer.parent / imp.path).resolve()
    return (data_dir("stdlib") / f"{imp.path}.node").resolve()


def load_sources(path: str | Path) -> Source:
    """Read and parse ``path`` and its imports; raise :class:`NodeDslError` with every problem found."""
    diags = Collector()
    root = Path(path).resolve()
    src = Source(root=_display(root))
    by_path: dict[Path, str] = {}
    stack: list[Path] = []

    def visit(p: Path, at: Span | None) -> str | None:
        if p in by_path:
            return by_path[p]
        name = _display(p)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            diags.error(
                "import-not-found" if at else "file-not-found", f"cannot find file '{name}'", at or Span(name, 0, 0)
            )
            return None
        except (OSError, UnicodeDecodeError) as err:
            diags.error("unreadable-file", f"cannot read '{name}': {err}", at or Span(name, 0, 0))
            return None
        src.texts[name] = text
        try:
            module = parse_source(text, name)
        except NodeDslError as err:
            diags.items.extend(err.diagnostics)
            return None
        by_path[p] = name
        src.modules[name] = module
        stack.append(p)
        scope: dict[str, tuple[str, Any]] = {}
        for imp in module.imports:
            target = _resolve(imp, p)
            if target in stack:
                cycle = " -> ".join(_display(s) for s in stack[stack.index(target) :] + [target])
                diags.error("import-cycle", f"import cycle: {cycle}", imp.span)
                continue
            dep = visit(target, imp.span)
            if dep is None:
                continue
            dep_mod = src.modules[dep]
            items: tuple[ast.Model | ast.Dataset, ...] = (*dep_mod.models, *dep_mod.datasets)
            for item in items:
                visible = f"{imp.alias}.{item.name}" if imp.alias else item.name
                scope[visible] = (dep, item)
        own: tuple[ast.Model | ast.Dataset, ...] = (*module.models, *module.datasets)
        for item in own:
            if item.name in scope and scope[item.name][0] == name:
                diags.error(
                    "duplicate-name",
                    f"'{item.name}' is declared twice in this file",
                    item.span,
                    f"first declared at {scope[item.name][1].span}",
                )
                continue
            scope[item.name] = (name, item)
        src.scopes[name] = scope
        stack.pop()
        return name

    visit(root, None)
    diags.raise_if_errors()
    return src


def source_from_text(text: str, file: str = "<string>") -> Source:
    """A one-file program from text (no imports allowed): for tests and the Python API."""
    module = parse_source(text, file)
    if module.imports:
        raise NodeDslError.single(
            "import-not-found", "imports need a file on disk (use load())", module.imports[0].span
        )
    src = Source(root=file, texts={file: text}, modules={file: module})
    scope: dict[str, tuple[str, Any]] = {}
    diags: list[Diagnostic] = []
    own: tuple[ast.Model | ast.Dataset, ...] = (*module.models, *module.datasets)
    for item in own:
        if item.name in scope:
            diags.append(Diagnostic("duplicate-name", f"'{item.name}' is declared twice in this file", item.span))
        scope[item.name] = (file, item)
    if diags:
        raise NodeDslError(diags)
    src.scopes[file] = scope
    return src
