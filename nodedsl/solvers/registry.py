"""The solver registry: names, typed options, one-line descriptions, ``make_solver``.

Example:
    >>> solver = make_solver("rk4", step=0.05)
    >>> solver.name, solver.order, solver.options
    ('rk4', 4, {'step': 0.05})
    >>> describe_solver("rk4")
    'rk4: classical 4-stage Runge-Kutta (fixed step); order 4; options: step: float > 0'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .adaptive import Adaptive
from .base import Solver
from .errors import SolverError
from .explicit import ExplicitRK
from .implicit import DIRK
from .options import Option, close_match, validate
from .symplectic import Leapfrog
from .tableaus import DIRK as DIRK_TABLEAUS
from .tableaus import EXPLICIT
from .taylor import TaylorLagrange


@dataclass(frozen=True, slots=True)
class SolverSpec:
    """A registry entry: how to validate options and build the solver."""

    name: str
    summary: str
    order: str
    options: tuple[Option, ...]
    build: Callable[..., Solver]
    family: str


STEP = Option("step", float, positive=True, doc="largest step size; each output interval is split evenly")
TOL = Option("tol", float, default=1e-10, positive=True, doc="Newton tolerance on the scaled residual")
MAX_ITER = Option("max_iter", int, default=20, minimum=1, doc="Newton iterations per stage")
ADAPTIVE_OPTIONS = (
    Option("rtol", float, default=1e-7, positive=True, doc="relative tolerance"),
    Option("atol", float, default=1e-9, positive=True, doc="absolute tolerance"),
    Option("max_steps", int, default=2**31 - 1, minimum=1, doc="steps allowed per output interval"),
    Option("first_step", float, default=None, positive=True, none_ok=True, doc="initial step (default: chosen)"),
)
TAYLOR_OPTIONS = (
    Option("order", int, default=3, minimum=1, maximum=8, doc="Taylor order p"),
    STEP,
    Option("remainder", bool, default=True, doc="learned Lagrange remainder (TL-NODE) or plain Taylor"),
    Option("hidden", int, default=16, minimum=1, doc="hidden width of the midpoint network Gamma"),
    Option(
        "gamma",
        str,
        default="vector",
        choices=("vector", "matrix"),
        doc="Gamma's form: one factor per state, or an n x n matrix acting on h f(x)",
    ),
    Option("state_dim", int, default=None, minimum=1, none_ok=True, doc="build Gamma now for this state size"),
)

_EXPLICIT_SUMMARY = {
    "euler": "forward Euler",
    "midpoint": "explicit midpoint",
    "heun": "Heun's method, the explicit trapezoid rule",
    "ralston": "Ralston's 2-stage method (minimal error bound)",
    "rk4": "classical 4-stage Runge-Kutta",
    "rk38": "Kutta's 3/8-rule Runge-Kutta (torchdiffeq's 'rk4')",
}
_DIRK_SUMMARY = {
    "implicit_euler": "backward Euler, L-stable, for stiff problems",
    "implicit_midpoint": "implicit midpoint, symplectic and A-stable",
    "sdirk2": "Alexander's 2-stage SDIRK, L-stable",
    "sdirk3": "Crouzeix's 2-stage SDIRK, A-stable",
}
_ADAPTIVE = {
    "dopri5": (5, "Dormand-Prince 5(4) adaptive, via torchdiffeq"),
    "bosh3": (3, "Bogacki-Shampine 3(2) adaptive, via torchdiffeq"),
    "adaptive_heun": (2, "Heun-Euler 2(1) adaptive, via torchdiffeq"),
    "dopri8": (8, "Dormand-Prince 8(7) adaptive, via torchdiffeq"),
}


def _registry() -> dict[str, SolverSpec]:
    specs: list[SolverSpec] = []
    for name, tab in EXPLICIT.items():
        specs.append(
            SolverSpec(
                name,
                _EXPLICIT_SUMMARY[name] + " (fixed step)",
                str(tab.order),
                (STEP,),
                lambda step, _tab=tab: ExplicitRK(_tab, step),
                "explicit",
            )
        )
    for name, (order, summary) in _ADAPTIVE.items():
        specs.append(
            SolverSpec(
                name,
                summary,
                str(order),
                ADAPTIVE_OPTIONS,
                lambda _name=name, _order=order, **kw: Adaptive(_name, _order, **kw),
                "adaptive",
            )
        )
    specs.append(
        SolverSpec(
            "leapfrog", "Stormer-Verlet, symplectic; needs field.symplectic_split", "2", (STEP,), Leapfrog, "symplectic"
        )
    )
    for name, tab in DIRK_TABLEAUS.items():
        specs.append(
            SolverSpec(
                name,
                _DIRK_SUMMARY[name] + " (Newton, implicit gradients)",
                str(tab.order),
                (STEP, TOL, MAX_ITER),
                lambda _tab=tab, **kw: DIRK(_tab, **kw),
                "implicit",
            )
        )
    specs.append(
        SolverSpec(
            "taylor",
            "Taylor-Lagrange step with learned midpoint (TL-NODE)",
            "p = order",
            TAYLOR_OPTIONS,
            lambda **kw: TaylorLagrange(**kw),
            "taylor",
        )
    )
    return {spec.name: spec for spec in specs}


SOLVERS: dict[str, SolverSpec] = _registry()


def solver_names() -> list[str]:
    """Registered solver names, in registry order (for help text).

    Example:
        >>> solver_names()[:3]
        ['euler', 'midpoint', 'heun']
    """
    return list(SOLVERS)


def _spec(name: str) -> SolverSpec:
    spec = SOLVERS.get(name) if isinstance(name, str) else None
    if spec is None:
        hint = close_match(name, SOLVERS) if isinstance(name, str) else ""
        raise SolverError(f"unknown solver {name!r}{hint}; known solvers: {', '.join(SOLVERS)}", option="solver")
    return spec


def describe_solver(name: str) -> str:
    """One line: what the solver is, its order and its options with types, bounds and defaults.

    Example:
        >>> describe_solver("implicit_euler").split("; ")[-1]
        'options: step: float > 0, tol: float > 0 = 1e-10, max_iter: int >= 1 = 20'
    """
    spec = _spec(name)
    opts = ", ".join(o.describe() for o in spec.options)
    return f"{spec.name}: {spec.summary}; order {spec.order}; options: {opts}"


def make_solver(name: str, **options: Any) -> Solver:
    """Build a solver from its name and keyword options, validating every option.

    Raises ``SolverError`` (with ``.option`` set) for an unknown name, an
    unknown option, a missing required option or a bad value.

    Example:
        >>> make_solver("implicit_midpoint", step=0.1).options
        {'step': 0.1, 'tol': 1e-10, 'max_iter': 20}
        >>> try:
        ...     make_solver("rk4", step=-1)
        ... except SolverError as err:
        ...     print(err.option, "|", err)
        step | option 'step' of solver 'rk4' must be > 0, got -1.0
    """
    spec = _spec(name)
    return spec.build(**validate(spec.name, spec.options, options))
