"""The words of the language, declared once: the checker's reserved names, the highlighters' classes
and the language server's completions all read them from here (a test holds the TextMate grammar to
them too).

``RESERVED`` words can never name anything; ``CONTEXTUAL`` words are special only where the grammar
expects them (``noise(x) = ...``, ``sde = stratonovich``, ``state h latent``, ``observer O for M``, ``measure y = ...``,
``weight = ...``) and stay usable as names elsewhere, but editors highlight them everywhere.

Example:
    >>> "der" in RESERVED, "latent" in RESERVED, "latent" in ALL_WORDS
    (True, False, True)
"""

from __future__ import annotations

__all__ = ["ALL_WORDS", "BLOCKS", "CONTEXTUAL", "DECLARATIONS", "MODEL_BODY", "RESERVED", "TOP_LEVEL"]

BLOCKS = ("model", "dataset", "train", "observer")
DECLARATIONS = (
    "state", "input", "param", "net", "let", "output", "constraint", "port", "sub", "couple", "connect", "measure",
)  # fmt: skip
TOP_LEVEL = ("import", *BLOCKS)
# what may open a line inside a model body (completion offers these first)
MODEL_BODY = (
    "state", "input", "param", "net", "let", "der", "noise", "sde", "output", "constraint", "hamiltonian", "J", "R",
    "port", "sub", "couple", "connect", "when", "reset",
)  # fmt: skip
RESERVED = frozenset(
    [
        "import", "as", "model", "state", "input", "param", "net", "let", "der", "output", "constraint", "for",
        "in", "learn", "positive", "hamiltonian", "J", "R", "port", "sub", "couple", "connect", "dataset",
        "train", "weights", "port_hamiltonian", "when", "reset", "and", "or",
    ]
)  # fmt: skip
CONTEXTUAL = frozenset(["noise", "sde", "weight", "latent", "observer", "measure"])
ALL_WORDS = RESERVED | CONTEXTUAL
