"""Layer 0, shared by every stage: diagnostics, the solver catalog, typed options, tableaus, builtins.

Pure Python (no torch, no SymPy), so the front end and the command line's help stay fast.

Example:
    >>> from nodedsl.core import Span, Diagnostic, solver_names
    >>> Diagnostic("undefined-name", "unknown name 'x'", Span("m.node", 3, 5)).code
    'undefined-name'
    >>> "rk4" in solver_names()
    True
"""

from .diagnostics import Collector, Diagnostic, NodeDslError, Span, render, suggest
from .errors import SolverError
from .solvers import CATALOG, SolverSpec, check_options, describe_solver, solver_names
from .version import __version__

__all__ = [
    "CATALOG",
    "Collector",
    "Diagnostic",
    "NodeDslError",
    "SolverError",
    "SolverSpec",
    "Span",
    "__version__",
    "check_options",
    "describe_solver",
    "render",
    "solver_names",
    "suggest",
]
