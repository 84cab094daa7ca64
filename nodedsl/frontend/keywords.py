"""The reserved words of the language, and the hint given when one is used as a name.

Example:
    >>> "der" in KEYWORDS, "weight" in KEYWORDS
    (True, False)
"""

from __future__ import annotations

KEYWORDS = frozenset(
    [
        "import",
        "as",
        "model",
        "state",
        "input",
        "param",
        "net",
        "let",
        "der",
        "output",
        "constraint",
        "for",
        "in",
        "learn",
        "positive",
        "hamiltonian",
        "J",
        "R",
        "port",
        "sub",
        "couple",
        "connect",
        "dataset",
        "train",
        "weights",
        "port_hamiltonian",
        "when",
        "reset",
        "and",
        "or",
    ]
)


RESERVED_NOTES = {
    "R": ("'R' is the dissipation matrix of a port-Hamiltonian model: name a resistance e.g. 'Rs' or 'R_load'",),
    "J": ("'J' is the structure matrix of a port-Hamiltonian model: name an inertia e.g. 'Jm'",),
}
