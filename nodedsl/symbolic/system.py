"""The lowered objects: a flat SymPy :class:`System` and its parts (parameters, constraints, ports).

Example:
    >>> num(2.0), num(0.5), flat_value([1, [2, 3]], 3)
    (2, 0.500000000000000, [1.0, 2.0, 3.0])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..core.diagnostics import Span
from ..frontend.netspec import NetSpec
from .events import EventSym
from .noise import NoiseSym

T = sp.Symbol("t", real=True)


@dataclass
class ParamSym:
    """A parameter: component symbols, initial value, and how it is trained (None: known)."""

    name: str
    shape: tuple[int, ...]
    symbols: list[sp.Symbol]
    value: list[float]
    learn: str | None = None  # free | positive | interval | skew
    low: float | None = None
    high: float | None = None


@dataclass
class ConstraintSym:
    name: str
    kind: str  # eq | ineq  (residual == 0, or residual <= 0)
    residual: list[sp.Expr]
    domains: list[tuple[str, list[sp.Symbol], float, float]]
    weight: float
    uses_state: bool
    span: Span

    @property
    def magnitude(self) -> list[sp.Expr]:
        """Per component, the sum of the absolute values of the residual's terms (``|a| + |b|`` for
        ``a - b``): the scale the augmented Lagrangian normalizes the residual by."""
        return [sp.Add(*(sp.Abs(term) for term in sp.Add.make_args(r))) for r in self.residual]


@dataclass
class PortSym:
    name: str
    inputs: list[sp.Symbol]
    G: sp.Matrix  # n_states x size (zero for a stateless port)
    output: list[sp.Expr] = field(default_factory=list)  # y = G^T grad H, or a stateless port's y = f(u)
    static: bool = False  # a stateless port (`y = f(u)`: a resistor, a source)


@dataclass
class PHParts:
    """Port-Hamiltonian structure of an instance: H, grad H, free ports, and the pieces of J and R."""

    H: sp.Expr
    grad: list[sp.Expr]
    ports: list[PortSym]  # free ports (not coupled)
    dissipation: sp.Expr  # grad H^T R grad H
    x: list[sp.Symbol]
    own_J: sp.Matrix
    own_R: sp.Matrix
    subs: list[PHParts]
    couplings: list[tuple[list[str], sp.Matrix]]
    own_ports: list[PortSym] = field(default_factory=list)  # declared here, coupled or not (for assemble)
    supplied: sp.Expr = sp.Integer(0)  # power delivered by coupled sources (stateless ports with y free of u)

    def assemble(self) -> tuple[sp.Matrix, sp.Matrix, dict[str, sp.Matrix]]:
        """The composite J (with G C G^T terms), R and every port's G over all states (dense; for display
        and tests of small systems: the compiler never needs them). Stateless ports have G = 0: what
        they do to the states (a resistor's damping, a source's drive) is in the field, not in J and R."""
        n, k = len(self.x), self.own_J.rows
        J, R = sp.zeros(n, n), sp.zeros(n, n)
        J[:k, :k], R[:k, :k] = self.own_J, self.own_R
        gs: dict[str, sp.Matrix] = {}
        for p in self.own_ports:
            gs[p.name] = p.G.col_join(sp.zeros(n - k, p.G.cols))
        offset = k
        for sub in self.subs:
            sj, sr, sg = sub.assemble()
            m = len(sub.x)
            J[offset : offset + m, offset : offset + m] = sj
            R[offset : offset + m, offset : offset + m] = sr
            for name, G in sg.items():
                gs[name] = sp.zeros(offset, G.cols).col_join(G).col_join(sp.zeros(n - offset - m, G.cols))
            offset += m
        for names, C in self.couplings:
            Gc = sp.Matrix.hstack(*[gs[nm] for nm in names])
            J += Gc * C * Gc.T
        return J, R, gs

    @property
    def J(self) -> sp.Matrix:
        return self.assemble()[0]

    @property
    def R(self) -> sp.Matrix:
        return self.assemble()[1]


@dataclass
class Staged:
    """A coupled port-Hamiltonian composite before ``u = C y`` is substituted (what the compiler vectorizes).

    ``rhs`` is the field with the coupled port inputs ``inputs`` still free; ``outputs`` are the
    coupled ports' ``y``; ``entries`` are the nonzero ``(row, column, coefficient)`` of the block
    diagonal map ``inputs = M outputs`` gathered from every ``couple`` of the tree."""

    rhs: list[sp.Expr]
    inputs: list[sp.Symbol]
    outputs: list[sp.Expr]
    entries: list[tuple[int, int, sp.Expr]]


@dataclass
class System:
    """A flat system of ODEs in SymPy, ready for the compiler and for ``show``."""

    name: str
    states: list[sp.Symbol]
    x0: list[float]
    inputs: list[sp.Symbol]
    u0: list[float]
    params: list[ParamSym]
    nets: dict[str, NetSpec]
    rhs: list[sp.Expr]
    outputs: list[sp.Expr]
    output_names: list[str]
    constraints: list[ConstraintSym]
    ph: PHParts | None = None
    symplectic_split: int | None = None
    staged: Staged | None = None
    noise: NoiseSym | None = None  # the diffusion of an SDE model (symbolic/noise.py)
    events: list[EventSym] = field(default_factory=list)  # one per when block (symbolic/events.py)

    @property
    def state_names(self) -> list[str]:
        return [s.name for s in self.states]

    def __repr__(self) -> str:  # the lowered equations (terminals, notebooks), not the dataclass fields
        rows = [f"d/dt {s} = {sp.sstr(e)}" for s, e in zip(self.states, self.rhs)]
        rows += [f"{n} = {sp.sstr(e)}" for n, e in zip(self.output_names, self.outputs) if n not in self.state_names]
        return f"System {self.name}\n" + "\n".join("  " + r for r in rows)

    def _repr_latex_(self) -> str:
        rows = [f"\\frac{{d}}{{dt}} {sp.latex(s)} &= {sp.latex(e)}" for s, e in zip(self.states, self.rhs)]
        rows += [
            f"\\mathrm{{{n}}} &= {sp.latex(e)}".replace("_", "\\_", n.count("_"))
            for n, e in zip(self.output_names, self.outputs)
            if n not in self.state_names
        ]
        return "$$\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}$$"

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]


@dataclass
class Collected:
    """What the instances of a tree contribute to the flat system, gathered in order."""

    states: list[sp.Symbol] = field(default_factory=list)
    x0: list[float] = field(default_factory=list)
    params: list[ParamSym] = field(default_factory=list)
    nets: dict[str, NetSpec] = field(default_factory=dict)
    constraints: list[ConstraintSym] = field(default_factory=list)
    inputs: list[tuple[sp.Symbol, float]] = field(default_factory=list)
    rhs: dict[sp.Symbol, sp.Expr] = field(default_factory=dict)


def num(v: float) -> sp.Expr:
    """A float as a SymPy number: an Integer when it is one (so expressions print ``2*x``, not ``2.0*x``)."""
    return sp.Integer(int(v)) if float(v).is_integer() and abs(v) < 1e15 else sp.Float(v)


def flat_value(value, n: int) -> list[float]:
    """A constant (scalar broadcast, vector, or nested list) as n floats."""
    if isinstance(value, list):
        out = []
        for v in value:
            out.extend(flat_value(v, 1) if not isinstance(v, list) else flat_value(v, len(v)))
        return out
    return [float(value)] * n
