"""Resource limits: checked before anything is allocated, each raised by one environment variable.

A hostile or mistaken input (``state x[1000000000]``, a 50 MB source file, 10^8 output rows, an NPZ
header claiming 10^12 elements) must end in a located diagnostic that names the limit and how to raise
it, not in a hang or a memory blow-up. Every limit has a default sized for ordinary models on a laptop
and an environment variable ``NODEDSL_MAX_<NAME>`` that raises (or lowers) it for one command::

    NODEDSL_MAX_ELEMENTS=100000000 nodedsl check big.node

Example:
    >>> limit("elements") >= 1_000_000
    True
    >>> over_limit("elements", 10**12, "state x").message.split(":")[0]
    'state x has 1000000000000 elements'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .diagnostics import NOWHERE, Diagnostic, Span

__all__ = ["LIMITS", "Limit", "limit", "over_limit"]


@dataclass(frozen=True)
class Limit:
    """One limit: its default, what it counts and where it applies."""

    default: int
    unit: str
    what: str

    def env(self, name: str) -> str:
        return "NODEDSL_MAX_" + name.upper().replace("-", "_")


LIMITS: dict[str, Limit] = {
    "elements": Limit(10_000_000, "elements", "elements of one declaration (state, input, param, net input)"),
    "net-width": Limit(100_000, "units", "width of a hidden layer of a net"),
    "depth": Limit(200, "levels", "nesting of one expression (calls, brackets of arrays, powers, unary minus)"),
    "source-bytes": Limit(16 * 2**20, "bytes", "size of one .node source file"),
    "csv-bytes": Limit(256 * 2**20, "bytes", "size of one CSV file (parsed into Python rows: about 50x its size)"),
    "data-bytes": Limit(2 * 2**30, "bytes", "size of one data file (CSV, NPZ) or of the arrays it holds"),
    "rows": Limit(10_000_000, "rows", "rows of a simulation table or of a data file"),
    "steps": Limit(10_000_000, "steps", "steps of a fixed-step solver over one solve"),
}


def limit(name: str) -> int:
    """The limit ``name`` (a key of :data:`LIMITS`): its environment variable when set, else the default."""
    spec = LIMITS[name]
    raw = os.environ.get(spec.env(name), "").strip().replace("_", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return spec.default


def _short(value: int | str) -> str:
    text = str(value)
    return text if len(text) < 40 else f"{text[:20]}... ({len(text)} digits)"


def over_limit(name: str, value: int | str, subject: str, span: Span = NOWHERE) -> Diagnostic:
    """The ``too-large`` diagnostic of ``subject`` whose ``value`` exceeds the limit ``name``."""
    spec = LIMITS[name]
    return Diagnostic(
        "too-large",
        f"{subject} has {_short(value)} {spec.unit}: more than the limit of {limit(name)} ({spec.what})",
        span,
        (f"raise the limit with the environment variable {spec.env(name)}=N if this is intended",),
    )
