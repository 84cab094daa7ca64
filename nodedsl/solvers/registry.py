"""Build a solver from its catalog entry (``nodedsl.core.solvers``): one builder per family.

Example:
    >>> solver = make_solver("rk4", step=0.05)
    >>> solver.name, solver.order, solver.options
    ('rk4', 4, {'step': 0.05})
    >>> make_solver("implicit_midpoint", step=0.1).options
    {'step': 0.1, 'tol': 1e-10, 'atol': 1e-12, 'max_iter': 20}
    >>> try:
    ...     make_solver("rk4", step=-1)
    ... except SolverError as err:
    ...     print(err.option, "|", err)
    step | option 'step' of solver 'rk4' must be > 0, got -1.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.errors import SolverError
from ..core.solvers import (
    CATALOG,
    SolverSpec,
    check_options,
    describe_solver,
    parse_solver_call,
    solver_names,
    solver_spec,
)
from ..core.tableaus import DIRK as DIRK_TABLEAUS
from ..core.tableaus import EXPLICIT
from .adaptive import Adaptive
from .base import Solver
from .etd import ETD
from .explicit import ExplicitRK
from .implicit import DIRK
from .radau import Radau5
from .rosenbrock import Rosenbrock
from .sde import SDESolver
from .symplectic import Leapfrog
from .taylor import TaylorLagrange

# family -> builder(name, checked options); every catalog family has exactly one (a test checks it)
BUILDERS: dict[str, Callable[..., Solver]] = {
    "explicit": lambda name, step: ExplicitRK(EXPLICIT[name], step),
    "adaptive": lambda name, **kw: Adaptive(name, int(CATALOG[name].order), **kw),
    "symplectic": lambda name, step: Leapfrog(step),
    "implicit": lambda name, **kw: DIRK(DIRK_TABLEAUS[name], **kw),
    "taylor": lambda name, **kw: TaylorLagrange(**kw),
    "sde": lambda name, **kw: SDESolver(name, **kw),
    "stiff": lambda name, **kw: Radau5(**kw) if name == "radau" else Rosenbrock(**kw),
    "exponential": lambda name, **kw: ETD(**kw),
}

# the catalog under its historical name (tests and the CLI iterate it)
SOLVERS: dict[str, SolverSpec] = CATALOG


def make_solver(name: str, **options: Any) -> Solver:
    """Build a solver from its name and keyword options, validating every option.

    Raises ``SolverError`` (with ``.option`` set) for an unknown name, an unknown option, a missing
    required option or a bad value.
    """
    spec = solver_spec(name)
    return BUILDERS[spec.family](spec.name, **check_options(spec.name, options))


# what `nodedsl simulate` has always used for error-controlled methods when no tolerance is given
SIMULATE_RTOL, SIMULATE_ATOL = 1e-9, 1e-11


def solver_from_text(
    text: str, *, rtol: float | None = None, atol: float | None = None, step: float | None = None,
    default_step: float = 0.01,
) -> Solver:  # fmt: skip
    """The solver of a command line: ``--solver "radau(rtol = 1e-8)"`` plus ``--rtol/--atol/--solver-step``.

    Options written in the call and flags must not both set the same option. Error-controlled
    methods default to ``rtol = 1e-9, atol = 1e-11``; fixed-step methods to ``default_step``.

    Example:
        >>> solver_from_text("radau(rtol = 1e-8)", atol=1e-12).options["atol"]
        1e-12
        >>> solver_from_text("rk4", default_step=0.05).options
        {'step': 0.05}
    """
    name, opts = parse_solver_call(text)
    known = {o.name for o in solver_spec(name).options}
    for key, value in (("rtol", rtol), ("atol", atol), ("step", step)):
        if value is None:
            continue
        if key in opts:
            raise SolverError(f"option '{key}' is set both in --solver and by --{key}", option=key)
        opts[key] = value
    if "rtol" in known and "max_steps" in known:
        opts.setdefault("rtol", SIMULATE_RTOL)
        opts.setdefault("atol", SIMULATE_ATOL)
    if "step" in known and "step" not in opts:
        opts["step"] = default_step
    return make_solver(name, **opts)


__all__ = [
    "BUILDERS",
    "SOLVERS",
    "SolverError",
    "SolverSpec",
    "describe_solver",
    "make_solver",
    "solver_from_text",
    "solver_names",
]
