"""The package version, defined once (pyproject.toml reads it through hatch's version source)."""

__version__ = "0.2.0.dev0"
