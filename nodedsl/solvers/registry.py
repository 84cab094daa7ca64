"""Build a solver from its catalog entry (``nodedsl.core.solvers``): one builder per family.

Example:
    >>> solver = make_solver("rk4", step=0.05)
    >>> solver.name, solver.order, solver.options
    ('rk4', 4, {'step': 0.05})
    >>> make_solver("implicit_midpoint", step=0.1).options
    {'step': 0.1, 'tol': 1e-10, 'max_iter': 20}
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
from ..core.solvers import CATALOG, SolverSpec, check_options, describe_solver, solver_names, solver_spec
from ..core.tableaus import DIRK as DIRK_TABLEAUS
from ..core.tableaus import EXPLICIT
from .adaptive import Adaptive
from .base import Solver
from .explicit import ExplicitRK
from .implicit import DIRK
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


__all__ = ["BUILDERS", "SOLVERS", "SolverError", "SolverSpec", "describe_solver", "make_solver", "solver_names"]
