"""The symbolic stage: a checked model lowered to one flat SymPy :class:`System` (``lower``: general
models in ``instance``, port-Hamiltonian structure in ``porthamiltonian``), the builtins' SymPy
constructors (``builtins``), structural proofs (``prove``), symbolic derivatives (``derive``) and
display (``show``).

Example:
    >>> import nodedsl
    >>> nodedsl.loads("model M { state x = 1\\n der(x) = -x }").system("M").rhs
    [-x]
"""

from .lower import System, lower
from .prove import structure_diagnostics

__all__ = ["System", "lower", "structure_diagnostics"]
