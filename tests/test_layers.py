"""The import contract: stages import only earlier stages, and no module imports itself back.

Every import in ``nodedsl/`` (module level and inside functions alike: a lazy import is still a
dependency) is resolved to the module it names; each module belongs to a layer by its package, and an
import into a later layer fails the test, as does any import cycle between modules. The layering is the
pipeline of docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nodedsl"

# package (or top-level module) -> layer; a module may import its own layer and lower ones
LAYERS: dict[str, int] = {
    "core": 0,
    "io": 1,
    "frontend": 2,
    "highlight": 2,
    "symbolic": 3,
    "compiler": 4,
    "solvers": 5,
    "data": 6,
    "plots": 6,
    "train": 7,
    "program": 8,
    "simulate": 9,
    "export": 9,
    "analysis": 9,
    "sweep": 9,
    "lsp": 10,
    "cli": 11,
    "__init__": 12,  # nodedsl/__init__.py re-exports the API
}
# torch, sympy and matplotlib are not imported by these packages at all (a fast, torch-free `check`)
HEAVY = {"torch", "sympy", "matplotlib", "torchdiffeq", "torchsde"}
LIGHT_PACKAGES = {"core", "frontend", "highlight"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[0]]


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """(imported nodedsl module or external top-level name, line) for every import in the file."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if module != "__init__" else []
    package = here if is_pkg else here[:-1]
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if name.startswith("nodedsl."):
                    found.append((name[len("nodedsl.") :], node.lineno))
                elif name != "nodedsl":
                    found.append(("@" + name.split(".")[0], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod == "nodedsl" or mod.startswith("nodedsl."):
                    base = mod[len("nodedsl.") :] if mod != "nodedsl" else ""
                else:
                    found.append(("@" + mod.split(".")[0], node.lineno))
                    continue
            else:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.append((sub if sub in known else (base or "__init__"), node.lineno))
    return found


def _graph() -> dict[str, list[tuple[str, int]]]:
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def test_every_package_has_a_layer():
    missing = sorted({m.split(".")[0] for m in _modules()} - set(LAYERS))
    assert not missing, f"add these packages to LAYERS (and to docs/architecture.md): {missing}"


def test_no_import_of_a_later_stage():
    bad = []
    for module, imports in _graph().items():
        for target, line in imports:
            if target.startswith("@") or target == module:
                continue
            if _layer(target) > _layer(module):
                bad.append(f"nodedsl/{module.replace('.', '/')}.py:{line} imports {target}")
    assert not bad, "imports of a later stage:\n" + "\n".join(bad)


def test_light_packages_import_no_heavy_library():
    bad = []
    for module, imports in _graph().items():
        if module.split(".")[0] not in LIGHT_PACKAGES:
            continue
        for target, line in imports:
            if target.startswith("@") and target[1:] in HEAVY:
                bad.append(f"nodedsl/{module.replace('.', '/')}.py:{line} imports {target[1:]}")
    assert not bad, "the front end must stay free of torch/sympy/matplotlib:\n" + "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for module, imports in _graph().items():
        pkg_init = module.split(".")[0]
        edges = set()
        for target, _ in imports:
            if target.startswith("@") or target == module:
                continue
            # a package's __init__ re-exporting its own modules is not a cycle with them
            if "." not in target and target == pkg_init and module != pkg_init:
                continue
            edges.add(target)
        graph[module] = edges
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_modules_stay_small():
    big = []
    for module, path in _modules().items():
        n = len(path.read_text().splitlines())
        if n > 400:
            big.append(f"nodedsl/{module.replace('.', '/')}.py: {n} lines")
    assert not big, "modules over 400 lines:\n" + "\n".join(big)


def test_functions_stay_short():
    long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > 80:
                    long.append(f"nodedsl/{module.replace('.', '/')}.py:{node.lineno} {node.name}: {n} lines")
    assert not long, "functions over 80 lines:\n" + "\n".join(long)
