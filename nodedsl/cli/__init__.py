"""The command line: one module per command group, shared helpers in ``common``.

``app`` and ``main`` are loaded on first use, so that importing :mod:`nodedsl.cli.entry` (the console
script) does not import typer before it knows the command needs it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import main as _main

        return getattr(_main, name)
    raise AttributeError(f"module 'nodedsl.cli' has no attribute {name!r}")
