"""The command line: one module per command group, shared helpers in ``common``."""

from .main import app, main

__all__ = ["app", "main"]
