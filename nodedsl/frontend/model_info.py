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
from .shapes import Shape

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
        """What data observes: declared outputs, or every state when the model declares none."""
        return self.outputs if self.outputs else self.states

    def size(self, entries: list[tuple[str, Shape]]) -> int:
        return sum(numel(s) for _, s in entries)

    def summary(self) -> str:
        own = self.model
        params = own.decls(ast.Param)
        learned = sum(1 for p in params if p.learn is not None)
        parts = [
            f"{self.size(self.states)} states",
            f"{self.size(self.inputs)} inputs",
            f"{len(params)} params ({learned} learned)",
            f"{len(own.decls(ast.Net))} nets",
            f"{len(own.decls(ast.Constraint))} constraints",
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


def decl_shape(size: int | None) -> Shape:
    """The shape of a declaration's optional ``[size]``."""
    return () if size is None else (size,)


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
