"""ODE solvers for nodedsl: fixed-step RK, adaptive (torchdiffeq), symplectic, implicit, Taylor-Lagrange.

Design after diffrax (a solver is validated data; one shared loop drives all
fixed-step methods; a result object carries trajectories and counters) and
torchdiffeq (one small file per family). See docs/solvers.md.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver, solve
    >>> solver = make_solver("rk4", step=0.05)
    >>> res = solve(lambda t, x: -x, torch.ones(2, 1), torch.linspace(0, 1, 3), solver=solver)
    >>> res.ys.shape, res.stats.nfe
    (torch.Size([3, 2, 1]), 80)
"""

from ..core.errors import SolverError
from ..core.tableaus import ButcherTableau
from .base import FixedStepSolver, Solver, step_grid, step_plan, time_eps
from .derivatives import jacobian, taylor_coefficients
from .etd import Semilinear, phi_functions
from .registry import SOLVERS, SolverSpec, describe_solver, make_solver, solver_from_text, solver_names
from .result import SolveResult, SolveStats
from .solve import Gradient, solve
from .taylor import TaylorLagrange

__all__ = [
    "SOLVERS",
    "ButcherTableau",
    "FixedStepSolver",
    "Gradient",
    "Semilinear",
    "SolveResult",
    "SolveStats",
    "Solver",
    "SolverError",
    "SolverSpec",
    "TaylorLagrange",
    "describe_solver",
    "jacobian",
    "make_solver",
    "phi_functions",
    "solve",
    "solver_from_text",
    "solver_names",
    "step_grid",
    "step_plan",
    "taylor_coefficients",
    "time_eps",
]
