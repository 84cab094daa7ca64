"""The one CSV reader: rows with their line numbers, and whole numeric columns, with located errors.

Training data (:mod:`nodedsl.data.loading`), ``nodedsl simulate``'s ``--times`` and ``--input`` files and
the energy plot all read CSV through here, so a problem is always a ``data-error`` naming the file, the
line (1-based, as an editor counts) and, for a cell, the column (1-based). Blank lines are skipped.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(p, "w").write("t, x\\n0, 1\\n\\n0.5, 2\\n")
    >>> [line for line, _ in read_rows(p)]
    [1, 2, 4]
    >>> {k: v.tolist() for k, v in read_columns(p).items()}
    {'t': [0.0, 0.5], 'x': [1.0, 2.0]}
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..core.diagnostics import Diagnostic, NodeDslError, Span

__all__ = ["read_columns", "read_rows", "table_error"]


def table_error(file: str | Path, message: str, line: int = 0, col: int = 0, *notes: str) -> Diagnostic:
    """A ``data-error`` at ``file:line:col`` (``line`` 0: the file as a whole; column 1 when only a line)."""
    return Diagnostic(
        "data-error", message, Span(str(file), line, col or (1 if line else 0)), tuple(n for n in notes if n)
    )


def read_rows(path: str | Path) -> list[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file, each with its line number; ``data-error`` if it cannot be read."""
    file = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            lines = list(csv.reader(fh))
    except FileNotFoundError:
        raise NodeDslError([table_error(file, f"data file '{file}' does not exist")]) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NodeDslError([table_error(file, f"cannot read data file '{file}': {exc}")]) from None
    return [(k + 1, row) for k, row in enumerate(lines) if any(c.strip() for c in row)]


def read_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A CSV file whose every cell is a number: header name -> column (float64).

    A row of the wrong length or a non-numeric cell is a ``data-error`` at its line and column.
    """
    file = str(path)
    rows = read_rows(path)
    if not rows:
        raise NodeDslError([table_error(file, f"'{file}' is empty", 1)])
    header = [h.strip() for h in rows[0][1]]
    values = np.full((len(rows) - 1, len(header)), np.nan)
    for i, (line, row) in enumerate(rows[1:]):
        if len(row) != len(header):
            raise NodeDslError([table_error(file, f"row has {len(row)} cells, header has {len(header)}", line)])
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise NodeDslError(
                    [table_error(file, f"column '{header[j]}': '{cell}' is not a number", line, j + 1)]
                ) from None
    return {h: values[:, j] for j, h in enumerate(header)}
