"""nodedsl: a declarative modeling language for learning dynamical systems.

``Program``, ``load`` and ``loads`` are imported on first use (PEP 562), so ``import nodedsl`` and the
front end (``nodedsl.frontend``) stay free of torch, SymPy and matplotlib.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model Decay { state x = 1\\n param k = 0.5 learn positive\\n der(x) = -k * x }")
    >>> prog.model("Decay").parameter_values()["k"]   # doctest: +ELLIPSIS
    0.5...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .core.diagnostics import Diagnostic, NodeDslError, Span, render
from .core.version import __version__

if TYPE_CHECKING:
    from .program import Program, load, load_run, loads

__all__ = ["Diagnostic", "NodeDslError", "Program", "Span", "__version__", "load", "load_run", "loads", "render"]

_LAZY = {"Program", "load", "load_run", "loads"}


def __getattr__(name: str) -> Any:
    """``nodedsl.Program``, ``load``, ``load_run``, ``loads`` from :mod:`nodedsl.program`, imported on first use."""
    if name in _LAZY:
        from . import program

        value = getattr(program, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nodedsl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)
