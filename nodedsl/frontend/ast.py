"""The typed syntax tree: frozen dataclasses, each carrying its source :class:`Span`.

The parser (:mod:`nodedsl.frontend.parse`) builds these and nothing else; no Lark object escapes it.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> mod = parse_source("model M { state x = 1\\n der(x) = -x }", "m.node")
    >>> mod.models[0].body[1]
    Der(state='x', expr=Neg(operand=Name(parts=('x',))), index=None, low=None, high=None, element=None)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.diagnostics import Span
from .ast_events import Compare as Compare
from .ast_events import Comprehension as Comprehension
from .ast_events import Cond as Cond
from .ast_events import CondOp as CondOp
from .ast_events import Reset as Reset
from .ast_events import SdeKind as SdeKind
from .ast_events import Slice as Slice
from .ast_events import When as When


def _span() -> Span:
    return field(default=Span("<unknown>", 0, 0), repr=False, compare=False)


# ---------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Num:
    value: float
    text: str = ""
    span: Span = _span()


@dataclass(frozen=True)
class Name:
    parts: tuple[str, ...]
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call:
    func: Name
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Index:
    """``target[index]`` or, with ``col``, ``target[index, col]`` (an entry of a matrix)."""

    target: Expr
    index: Expr
    span: Span = _span()
    col: Expr | None = None


@dataclass(frozen=True)
class Array:
    items: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True)
class BinOp:
    op: str  # one of + - * / @ ^
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span = _span()


Expr = Num | Name | Call | Index | Slice | Comprehension | Array | BinOp | Neg


# ---------------------------------------------------------------- values (dataset/train/net options)
@dataclass(frozen=True)
class VNumber:
    value: float
    span: Span = _span()


@dataclass(frozen=True)
class VString:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class VName:
    name: str
    span: Span = _span()


@dataclass(frozen=True)
class VList:
    items: tuple[Value, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Entry:
    key: str
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class VMap:
    entries: tuple[Entry, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Arg:
    name: str | None
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class VCall:
    name: str
    args: tuple[Arg, ...]
    span: Span = _span()


@dataclass(frozen=True)
class VExpr:
    """A parenthesized expression as a block value: ``force = (0.5 * sin(omega * t))``."""

    expr: Expr
    span: Span = _span()


Value = VNumber | VString | VName | VList | VMap | VCall | VExpr


# ---------------------------------------------------------------- model declarations
@dataclass(frozen=True)
class State:
    name: str
    size: int | None
    init: Expr | None
    span: Span = _span()
    latent: bool = False  # `state h[4] latent`: never observed; estimated per training window


@dataclass(frozen=True)
class Input:
    name: str
    size: int | None
    default: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class Learn:
    kind: str  # "free" | "positive" | "interval"
    low: Expr | None = None
    high: Expr | None = None
    span: Span = _span()


@dataclass(frozen=True)
class Param:
    name: str
    size: int | None
    value: Expr
    learn: Learn | None
    span: Span = _span()


@dataclass(frozen=True)
class NetArg:
    name: str
    size: int | None
    span: Span = _span()


@dataclass(frozen=True)
class Net:
    name: str
    args: tuple[NetArg, ...]
    out: int
    options: tuple[Entry, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Let:
    name: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Der:
    """``der(x) = expr``, the index form ``der(x[i]) = expr for i in low..high``, or one row
    ``der(x[k]) = expr`` (both expanded into ``der(x) = [...]`` by :mod:`~nodedsl.frontend.indexform`)."""

    state: str
    expr: Expr
    span: Span = _span()
    index: str | None = None
    low: Expr | None = None
    high: Expr | None = None
    element: int | None = None  # der(x[3]) = ...: one row of a vector state


@dataclass(frozen=True)
class Noise:
    """``noise(x) = expr`` (``state`` set: diagonal noise of ``x``) or ``noise = MATRIX`` (general)."""

    state: str | None
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Output:
    name: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Domain:
    var: str
    low: Expr
    high: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Constraint:
    name: str | None
    lhs: Expr
    op: str  # == <= >= (a strict < or > parses, and the checker rejects it)
    rhs: Expr
    domains: tuple[Domain, ...]
    weight: Expr | None
    span: Span = _span()


@dataclass(frozen=True)
class Hamiltonian:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class JMatrix:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class RMatrix:
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class PortItem:
    key: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Port:
    name: str
    items: tuple[PortItem, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Override:
    name: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Sub:
    name: str
    model: Name
    overrides: tuple[Override, ...]
    weights: str | None
    span: Span = _span()


@dataclass(frozen=True)
class Couple:
    ports: tuple[Name, ...]
    matrix_name: str
    matrix: Expr | None  # None when learned
    learn: str | None  # "skew" for `C = learn skew`
    span: Span = _span()


@dataclass(frozen=True)
class Connect:
    source: Name
    target: Name
    span: Span = _span()


Decl = (
    State | Input | Param | Net | Let | Der | Noise | SdeKind | Output | Constraint | Hamiltonian | JMatrix | RMatrix
    | Port | Sub | Couple | Connect | When
)  # fmt: skip


@dataclass(frozen=True)
class Model:
    name: str
    kind: str | None  # None (general) or "port_hamiltonian"
    body: tuple[Decl, ...]
    span: Span = _span()
    kind_span: Span = _span()

    def decls(self, cls: type) -> list:
        """The declarations of one class, in source order."""
        return [d for d in self.body if isinstance(d, cls)]

    @property
    def is_port_hamiltonian(self) -> bool:
        return self.kind == "port_hamiltonian"


# ---------------------------------------------------------------- top level
@dataclass(frozen=True)
class Import:
    path: str
    alias: str | None
    span: Span = _span()


@dataclass(frozen=True)
class Dataset:
    name: str
    entries: tuple[Entry, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Train:
    model: str
    entries: tuple[Entry, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Measure:
    """``measure y = expr`` inside an observer: one measured quantity of the model's states."""

    name: str
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True)
class Observer:
    """``observer NAME for MODEL { measure ...; kind = ...; net T_inv(z[m]) -> n }`` (contract §11)."""

    name: str
    model: str
    measures: tuple[Measure, ...]
    entries: tuple[Entry, ...]
    nets: tuple[Net, ...]
    span: Span = _span()
    model_span: Span = _span()


@dataclass(frozen=True)
class Module:
    """One parsed file."""

    file: str
    imports: tuple[Import, ...]
    models: tuple[Model, ...]
    datasets: tuple[Dataset, ...]
    trains: tuple[Train, ...]
    observers: tuple[Observer, ...] = ()
