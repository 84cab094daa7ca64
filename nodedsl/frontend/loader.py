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
from ..io.files import read_text
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


@dataclass
class _Frame:
    """A file whose imports are being loaded (the explicit stack replaces recursion: 1,000-deep chains load)."""

    path: Path
    name: str
    module: ast.Module
    via: ast.Import | None
    scope: dict[str, tuple[str, Any]] = field(default_factory=dict)
    next: int = 0


class _Loader:
    def __init__(self, root: Path):
        self.diags = Collector()
        self.src = Source(root=_display(root))
        self.by_path: dict[Path, str] = {}

    def read(self, p: Path, at: Span | None) -> str | None:
        """The text of ``p`` (a regular file, within the source-size limit), or None with a diagnostic."""
        name = _display(p)
        where = at or Span(name, 0, 0)
        if at is not None and p.suffix != ".node":  # never parse (and echo) a file that is not nodedsl source
            self.diags.error(
                "not-node-source", f"'{name}' is not a .node file", where, "imports name .node files or stdlib modules"
            )
            return None
        try:
            return read_text(p, "source-bytes", where, "file")
        except NodeDslError as err:
            for d in err.diagnostics:
                code = "import-not-found" if d.code == "file-not-found" and at else d.code
                self.diags.items.append(Diagnostic(code, d.message, d.span, d.notes))
            return None

    def enter(self, p: Path, at: ast.Import | None) -> _Frame | None:
        name = _display(p)
        text = self.read(p, at.span if at else None)
        if text is None:
            return None
        self.src.texts[name] = text
        try:
            module = parse_source(text, name)
        except NodeDslError as err:
            self.diags.items.extend(err.diagnostics)
            return None
        self.by_path[p] = name
        self.src.modules[name] = module
        return _Frame(p, name, module, at)

    def add_imported(self, frame: _Frame, imp: ast.Import, dep: str) -> None:
        dep_mod = self.src.modules[dep]
        items: tuple[ast.Model | ast.Dataset, ...] = (*dep_mod.models, *dep_mod.datasets)
        for item in items:
            visible = f"{imp.alias}.{item.name}" if imp.alias else item.name
            frame.scope[visible] = (dep, item)

    def finish(self, frame: _Frame) -> None:
        scope, name = frame.scope, frame.name
        own: tuple[ast.Model | ast.Dataset, ...] = (*frame.module.models, *frame.module.datasets)
        for item in own:
            if item.name in scope and scope[item.name][0] == name:
                self.diags.error(
                    "duplicate-name",
                    f"'{item.name}' is declared twice in this file",
                    item.span,
                    f"first declared at {scope[item.name][1].span}",
                )
                continue
            scope[item.name] = (name, item)
        self.src.scopes[name] = scope

    def step(self, stack: list[_Frame]) -> None:
        """Load the next import of the innermost file, or finish that file when it has none left."""
        frame = stack[-1]
        if frame.next >= len(frame.module.imports):
            self.finish(stack.pop())
            if stack and frame.via is not None:
                self.add_imported(stack[-1], frame.via, frame.name)
            return
        imp = frame.module.imports[frame.next]
        frame.next += 1
        try:
            target = _resolve(imp, frame.path)
        except (OSError, RuntimeError) as err:  # a symlink loop: RuntimeError before Python 3.13
            self.diags.error("unreadable-file", f"cannot resolve import '{imp.path}': {err}", imp.span)
            return
        on_stack = [f.path for f in stack]
        if target in on_stack:
            cycle = " -> ".join(_display(s) for s in on_stack[on_stack.index(target) :] + [target])
            self.diags.error("import-cycle", f"import cycle: {cycle}", imp.span)
        elif target in self.by_path:
            self.add_imported(frame, imp, self.by_path[target])
        else:
            child = self.enter(target, imp)
            if child is not None:
                stack.append(child)


def load_sources(path: str | Path) -> Source:
    """Read and parse ``path`` and its imports; raise :class:`NodeDslError` with every problem found."""
    try:
        root = Path(path).resolve()
    except (OSError, RuntimeError) as err:
        raise NodeDslError.single("unreadable-file", f"cannot resolve '{path}': {err}", Span(str(path), 0, 0)) from None
    loader = _Loader(root)
    first = loader.enter(root, None)
    stack = [first] if first is not None else []
    while stack:
        loader.step(stack)
    loader.diags.raise_if_errors()
    return loader.src


def source_from_text(text: str, file: str = "<string>") -> Source:
    """A one-file program from text (no imports allowed): for tests and the Python API."""
    return source_from_module(parse_source(text, file), text)


def source_from_module(module: ast.Module, text: str = "") -> Source:
    """A one-file program from an already built module (no imports allowed)."""
    file = module.file
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
