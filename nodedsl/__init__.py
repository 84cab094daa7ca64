"""nodedsl: a declarative modeling language for learning dynamical systems.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model Decay { state x = 1\\n param k = 0.5 learn positive\\n der(x) = -k * x }")
    >>> prog.model("Decay").parameter_values()["k"]   # doctest: +ELLIPSIS
    0.5...
"""

from .core.diagnostics import Diagnostic, NodeDslError, Span, render
from .program import Program, load, loads

__all__ = ["Diagnostic", "NodeDslError", "Program", "Span", "load", "loads", "render"]
__version__ = "0.1.0"
