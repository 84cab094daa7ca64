"""What the checker produces: checked models (:class:`ModelInfo`) and the checked program.

The lowering, the proofs and the compiler read these; they carry no behaviour beyond lookups.

Example:
    >>> flat_names("q", (2,)), numel((2, 3))
    (['q[0]', 'q[1]'], 6)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import ast
from .loader import Source
from .shapes import Shape, constant_value

PH = "port_hamiltonian"


@dataclass
class Member:
    """A name declared in a model: its kind, size and declaration."""

    kind: str  # state input param net let output port sub var
    shape: Shape
    decl: Any  # the declaration (ast.State, ast.Param, ...; ast.Domain for a domain variable)


@dataclass
class ModelInfo:
    """A checked model: own members, checked sub-models, and its flattened interface."""

    file: str
    model: ast.Model
    members: dict[str, Member] = field(default_factory=dict)
    subs: dict[str, ModelInfo] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # own ports and sizes
    free_ports: dict[str, int] = field(default_factory=dict)  # ports of the composite (own + uncoupled sub ports)
    bad_ports: set[str] = field(default_factory=set)  # ports (also 'sub.port') whose declaration had errors
    states: list[tuple[str, Shape]] = field(default_factory=list)  # flattened, dotted
    inputs: list[tuple[str, Shape]] = field(default_factory=list)  # flattened incl. undriven sub inputs
    outputs: list[tuple[str, Shape]] = field(default_factory=list)  # declared outputs (own, dotted)
    driven: set[str] = field(default_factory=set)  # 'sub.input' names driven by a connect

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def is_ph(self) -> bool:
        return self.model.kind == PH

    def __repr__(self) -> str:  # the summary and the equations, not every field (notebooks, terminals)
        from .display import model_text

        return f"<{self.summary()}>\n{model_text(self.model)}"

    def _repr_latex_(self) -> str:
        from .display import model_latex

        return model_latex(self.model)

    def observed(self) -> list[tuple[str, Shape]]:
        """What data observes: declared outputs, or every non-latent state when the model declares none."""
        latent = {d.name for d in self.model.decls(ast.State) if d.latent}
        return self.outputs if self.outputs else [(n, s) for n, s in self.states if n not in latent]

    def latent_names(self) -> list[str]:
        """Flat names of the model's own latent states (``state h[4] latent``)."""
        return [nm for d in self.model.decls(ast.State) if d.latent for nm in flat_names(d.name, decl_shape(d.size))]

    def size(self, entries: list[tuple[str, Shape]]) -> int:
        return sum(numel(s) for _, s in entries)

    def counts(self) -> tuple[int, int, int, int]:
        """(params, learned params, nets, constraints) of the instance tree: this model's and its
        sub-models' (each sub-model instance counted), so a composite's summary shows what it learns."""
        params = self.model.decls(ast.Param)
        total = [
            len(params),
            sum(1 for p in params if p.learn is not None),
            len(self.model.decls(ast.Net)),
            len(self.model.decls(ast.Constraint)),
        ]
        for sub in self.subs.values():
            total = [a + b for a, b in zip(total, sub.counts())]
        return total[0], total[1], total[2], total[3]

    def summary(self) -> str:
        params, learned, nets, constraints = self.counts()
        parts = [
            f"{self.size(self.states)} states",
            f"{self.size(self.inputs)} inputs",
            f"{params} params ({learned} learned)",
            f"{nets} nets",
            f"{constraints} constraints",
        ]
        if self.subs:
            parts.append(f"{len(self.subs)} sub-models")
        if self.is_ph:
            parts.append(f"{len(self.free_ports)} ports")
        kind = " (port-Hamiltonian)" if self.is_ph else ""
        return f"{self.name}{kind}: " + ", ".join(parts)


@dataclass
class CheckedProgram:
    """The result of checking: every model reachable from the root file, by (file, name)."""

    source: Source
    infos: dict[tuple[str, str], ModelInfo] = field(default_factory=dict)
    configs: dict[str, object] = field(default_factory=dict)  # "dataset NAME" / "train NAME" -> pydantic config

    def model(self, name: str) -> ModelInfo | None:
        """A model visible in the root file's scope, or None."""
        entry = self.source.scopes.get(self.source.root, {}).get(name)
        if entry is None or not isinstance(entry[1], ast.Model):
            return None
        return self.infos.get((entry[0], entry[1].name))

    def root_models(self) -> list[ModelInfo]:
        mod = self.source.modules[self.source.root]
        return [self.infos[(self.source.root, m.name)] for m in mod.models if (self.source.root, m.name) in self.infos]


def numel(shape: Shape) -> int:
    """Number of components of a shape."""
    n = 1
    for s in shape:
        n *= s
    return n


def flat_names(name: str, shape: Shape) -> list[str]:
    """Component names of a declared quantity: ``q`` -> ``q[0], q[1]`` for a vector."""
    if shape == ():
        return [name]
    if len(shape) == 1:
        return [f"{name}[{i}]" for i in range(shape[0])]
    return [f"{name}[{i},{j}]" for i in range(shape[0]) for j in range(shape[1])]


def decl_shape(size: int | tuple[int, ...] | None) -> Shape:
    """The shape of a declaration's optional ``[size]`` or ``[rows, cols]``."""
    if size is None:
        return ()
    return (size,) if isinstance(size, int) else tuple(size)


def value_shape(decl: Any) -> Shape:
    """A state's or parameter's shape: declared, else inferred from a matrix literal value."""
    if decl.size is not None:
        return decl_shape(decl.size)
    value = getattr(decl, "value", None) if isinstance(decl, ast.Param) else getattr(decl, "init", None)
    v = constant_value(value) if value is not None else None
    if isinstance(v, list) and v and all(isinstance(r, list) for r in v):
        return (len(v), len(v[0]))
    return ()  # a vector's size is written [n] (contract v1); only matrices are inferred


def domain_sizes(members: dict[str, Member], decl: ast.Constraint, var: str) -> set[int]:
    """Sizes a domain variable takes: a vector when it is passed whole to a net's vector argument."""
    sizes: set[int] = set()

    def visit(e: ast.Expr) -> None:
        if isinstance(e, ast.Call):
            member = members.get(e.func.dotted)
            if member is not None and member.kind == "net":
                for arg, formal in zip(e.args, member.decl.args):
                    if isinstance(arg, ast.Name) and arg.parts == (var,):
                        sizes.add(formal.size or 1)
            for a in e.args:
                visit(a)
        elif isinstance(e, ast.BinOp):
            visit(e.left)
            visit(e.right)
        elif isinstance(e, ast.Neg):
            visit(e.operand)
        elif isinstance(e, ast.Index):
            visit(e.target)
        elif isinstance(e, ast.Array):
            for i in e.items:
                visit(i)

    visit(decl.lhs)
    visit(decl.rhs)
    return sizes


def param_env(model: ast.Model, overrides: dict | None = None) -> tuple[dict[str, Any], list[ast.Param]]:
    """Parameter values of ``model`` (overrides first), each computed once the parameters it names are.

    A value may use other parameters of the model and the element-wise builtins; returns the values
    that are constant and the parameters that name each other in a cycle.

    Example:
        >>> from nodedsl.frontend.parse import parse_source
        >>> m = parse_source("model M { param N = 4; param c = 2 * (N + 1)^2; param a = b; param b = a }").models[0]
        >>> env, cyclic = param_env(m)
        >>> env, [p.name for p in cyclic]
        ({'N': 4.0, 'c': 50.0}, ['a', 'b'])
    """
    overrides = overrides or {}
    params = {p.name: p for p in model.decls(ast.Param)}
    env: dict[str, Any] = {n: v for n, v in overrides.items() if n in params}
    pending = [p for n, p in params.items() if n not in env]
    while pending:
        progress = False
        for p in list(pending):
            deps = _names(p.value) & set(params)
            if deps <= set(env):
                pending.remove(p)
                progress = True
                value = constant_value(p.value, env)
                if value is not None:
                    env[p.name] = value
        if not progress:
            break
    waiting = {p.name for p in pending}
    cyclic = [p for p in pending if _reaches(p.name, p.name, params, waiting)]
    return env, cyclic


def _names(e: Any) -> set[str]:
    """Single names used in an expression."""
    if isinstance(e, ast.Name):
        return {e.parts[0]} if len(e.parts) == 1 else set()
    out: set[str] = set()
    for value in vars(e).values() if hasattr(e, "__dict__") else ():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, (ast.Num, ast.Name, ast.Call, ast.Index, ast.Array, ast.BinOp, ast.Neg, ast.Slice)):
                out |= _names(item)
    return out


def _reaches(start: str, goal: str, params: dict, waiting: set[str]) -> bool:
    """Whether ``goal`` is reachable from ``start``'s dependencies among the waiting parameters."""
    seen, todo = set(), list(_names(params[start].value) & waiting)
    while todo:
        n = todo.pop()
        if n == goal:
            return True
        if n not in seen:
            seen.add(n)
            todo += list(_names(params[n].value) & waiting)
    return False
