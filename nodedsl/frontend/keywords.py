"""The reserved words of the language, and the hint given when one is used as a name.

Example:
    >>> "der" in KEYWORDS, "weight" in KEYWORDS
    (True, False)
"""

from __future__ import annotations

from ..core.words import RESERVED

# the reserved words are declared with every other word of the language in nodedsl.core.words
KEYWORDS = RESERVED


RESERVED_NOTES = {
    "R": ("'R' is the dissipation matrix of a port-Hamiltonian model: name a resistance e.g. 'Rs' or 'R_load'",),
    "J": ("'J' is the structure matrix of a port-Hamiltonian model: name an inertia e.g. 'Jm'",),
}
