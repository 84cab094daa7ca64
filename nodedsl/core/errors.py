"""The one exception the solver layer raises for user-facing mistakes.

Example:
    >>> err = SolverError("step must be > 0, got -1", option="step")
    >>> err.option, str(err)
    ('step', 'step must be > 0, got -1')
"""

from __future__ import annotations


class SolverError(Exception):
    """A bad solver name, option, argument or an integration that cannot go on.

    ``option`` names the offending option (``"step"``, ``"gradient"``...) or is
    ``None``; the CLI uses it to point at the right token in the model source.
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option
        self.message = message
