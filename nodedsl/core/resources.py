"""Where the grammar and the standard library live: inside the wheel or in the source tree."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # nodedsl/


def data_dir(name: str) -> Path:
    """``grammar`` or ``stdlib``: the wheel's copy (nodedsl/_data/NAME) or the checkout's (../NAME)."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"nodedsl installation is missing its '{name}' directory")
