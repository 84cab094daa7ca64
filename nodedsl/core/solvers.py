"""The solver catalog: every solver's name, family, order, summary and typed options, declared once.

This module is pure data (no torch): the checker validates ``solver = ...`` in a ``train`` or
``dataset`` block against it, the command line lists it, and ``nodedsl.solvers.registry`` builds a
solver from an entry by its ``family``. Adding a fixed-step or DIRK method is one tableau in
``core.tableaus``; adding a family is one entry here plus one builder in the registry.

Example:
    >>> CATALOG["rk4"].family, CATALOG["rk4"].order
    ('explicit', '4')
    >>> describe_solver("implicit_euler").split("; ")[-1]
    'options: step: float > 0, tol: float > 0 = 1e-10, atol: float > 0 = 1e-12, max_iter: int >= 1 = 20'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import SolverError
from .options import Option, close_match, validate
from .tableaus import DIRK as DIRK_TABLEAUS
from .tableaus import EXPLICIT


@dataclass(frozen=True, slots=True)
class SolverSpec:
    """A catalog entry: what the solver is and which options it takes (validated by ``check_options``)."""

    name: str
    summary: str
    order: str
    options: tuple[Option, ...]
    family: str


STEP = Option("step", float, positive=True, doc="largest step size; each output interval is split evenly")
TOL = Option("tol", float, default=1e-10, positive=True, doc="Newton's relative tolerance (weights atol + tol |y|)")
NEWTON_ATOL = Option("atol", float, default=1e-12, positive=True, doc="Newton's absolute tolerance per component")
MAX_ITER = Option("max_iter", int, default=20, minimum=1, doc="Newton iterations per stage")
ADAPTIVE_OPTIONS = (
    Option("rtol", float, default=1e-7, positive=True, doc="relative tolerance"),
    Option("atol", float, default=1e-9, positive=True, doc="absolute tolerance"),
    Option("max_steps", int, default=2**31 - 1, minimum=1, doc="steps allowed per output interval"),
    Option("first_step", float, default=None, positive=True, none_ok=True, doc="initial step (default: chosen)"),
)
STIFF_CHECK = Option("stiff_check", bool, default=True, doc="stop with a message when the problem turns out stiff")
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

SDE_OPTIONS = (
    STEP,
    Option("seed", int, default=None, minimum=0, none_ok=True, doc="Brownian path seed (default: the run's)"),
)
_SDE = {
    "euler_maruyama": ("0.5 (strong)", "Euler-Maruyama for Ito SDEs, any noise"),
    "milstein": ("1.0 (strong)", "Milstein for Ito SDEs, diagonal or additive noise"),
    "srk": ("1.5 (strong)", "stochastic Runge-Kutta (Roessler) for Ito SDEs, diagonal or additive noise"),
    "reversible_heun": ("0.5 (strong)", "reversible Heun (Stratonovich; Ito models with diagonal/additive noise)"),
}


_STIFF = {
    "radau": ("5", "Radau IIA order 5, adaptive, L-stable: simplified Newton with exact Jacobian (stiff problems)"),
    "rodas4": ("4", "Rosenbrock RODAS 4(3), adaptive, L-stable: one LU per step, no Newton (stiff problems)"),
}
ETD_OPTIONS = (
    Option("order", int, default=4, choices=(1, 2, 4), doc="1: exponential Euler, 2: ETD2RK, 4: ETDRK4"),
    STEP,
)
LINEAR_SOLVER = Option(
    "linear_solver",
    str,
    default="auto",
    choices=("auto", "dense", "sparse"),
    doc="LU of the Newton/stage matrices: dense batched, sparse (SuperLU, CPU), or auto (sparse when n > 200 "
    "and at most 10% of the Jacobian is nonzero)",
)
INTERPOLATE = Option(
    "interpolate",
    bool,
    default=False,
    doc="step freely and interpolate outputs (order 3) instead of ending a step at every output time",
)


def _catalog() -> dict[str, SolverSpec]:
    specs: list[SolverSpec] = []
    for name, tab in EXPLICIT.items():
        specs.append(SolverSpec(name, _EXPLICIT_SUMMARY[name] + " (fixed step)", str(tab.order), (STEP,), "explicit"))
    for name, (order, summary) in _ADAPTIVE.items():
        specs.append(SolverSpec(name, summary, str(order), ADAPTIVE_OPTIONS + (STIFF_CHECK,), "adaptive"))
    specs.append(
        SolverSpec(
            "leapfrog",
            "Stormer-Verlet, symplectic; for separable port-Hamiltonian models",
            "2",
            (STEP,),
            "symplectic",
        )
    )
    for name, tab in DIRK_TABLEAUS.items():
        summary = _DIRK_SUMMARY[name] + " (Newton, implicit gradients)"
        specs.append(SolverSpec(name, summary, str(tab.order), (STEP, TOL, NEWTON_ATOL, MAX_ITER), "implicit"))
    for name, (stiff_order, summary) in _STIFF.items():
        specs.append(SolverSpec(name, summary, stiff_order, ADAPTIVE_OPTIONS + (INTERPOLATE, LINEAR_SOLVER), "stiff"))
    specs.append(
        SolverSpec(
            "taylor", "Taylor-Lagrange step with learned midpoint (TL-NODE)", "p = order", TAYLOR_OPTIONS, "taylor"
        )
    )
    specs.append(
        SolverSpec(
            "etd",
            "exponential time differencing (Cox-Matthews): the linear part x' = A x exactly, "
            "the rest by Runge-Kutta (fixed step; semilinear stiff fields)",
            "1, 2 or 4 = order",
            ETD_OPTIONS,
            "exponential",
        )
    )
    for name, (sde_order, summary) in _SDE.items():
        specs.append(SolverSpec(name, summary + " (fixed step, via torchsde)", sde_order, SDE_OPTIONS, "sde"))
    return {spec.name: spec for spec in specs}


CATALOG: dict[str, SolverSpec] = _catalog()


def solver_names() -> list[str]:
    """Catalogued solver names, in catalog order (for help text and completion).

    Example:
        >>> solver_names()[:3]
        ['euler', 'midpoint', 'heun']
    """
    return list(CATALOG)


def solver_spec(name: str) -> SolverSpec:
    """The catalog entry of ``name``; ``SolverError`` (option ``solver``) with a close match otherwise."""
    spec = CATALOG.get(name) if isinstance(name, str) else None
    if spec is None:
        hint = close_match(name, CATALOG) if isinstance(name, str) else ""
        raise SolverError(f"unknown solver {name!r}{hint}; known solvers: {', '.join(CATALOG)}", option="solver")
    return spec


def check_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a solver's options without building it (no torch): the checked values, defaults filled.

    Example:
        >>> check_options("rk4", {"step": 1})
        {'step': 1.0}
    """
    spec = solver_spec(name)
    return validate(spec.name, spec.options, dict(options))


def describe_solver(name: str) -> str:
    """One line: what the solver is, its order and its options with types, bounds and defaults.

    Example:
        >>> describe_solver("rk4")
        'rk4: classical 4-stage Runge-Kutta (fixed step); order 4; options: step: float > 0'
    """
    spec = solver_spec(name)
    opts = ", ".join(o.describe() for o in spec.options)
    return f"{spec.name}: {spec.summary}; order {spec.order}; options: {opts}"


_CALL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$", re.S)
_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S(?:.*\S)?)\s*$", re.S)


def _option_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        return text
    raise SolverError(f"cannot read option value {text!r}", option="solver")


def parse_solver_call(text: str) -> tuple[str, dict[str, Any]]:
    """``"radau(rtol = 1e-8, atol = 1e-10)"`` -> ``("radau", {...})``: the train block's solver syntax,
    for the command line. Values are numbers, ``true``/``false``, ``none`` or words; nothing is evaluated.
    Names and options are validated later by ``check_options``; malformed text raises ``SolverError``.

    Example:
        >>> parse_solver_call("radau(rtol = 1e-8, atol = 1e-10)")
        ('radau', {'rtol': 1e-08, 'atol': 1e-10})
        >>> parse_solver_call("rk4")
        ('rk4', {})
    """
    m = _CALL.match(text) if isinstance(text, str) else None
    if m is None:
        raise SolverError(f"cannot read solver {text!r}; write name or name(key = value, ...)", option="solver")
    name, body = m.group(1), m.group(2)
    options: dict[str, Any] = {}
    for item in [] if body is None or not body.strip() else body.split(","):
        kv = _ITEM.match(item)
        if kv is None:
            raise SolverError(f"cannot read solver option {item.strip()!r}; write key = value", option="solver")
        if kv.group(1) in options:
            raise SolverError(f"solver option '{kv.group(1)}' is given twice", option=kv.group(1))
        options[kv.group(1)] = _option_value(kv.group(2))
    return name, options
