"""Fast tabular reading through pyarrow: CSV (multi-threaded C++ parser) and Parquet.

:func:`read_csv_table` is the fast path of :mod:`nodedsl.data.loading`: it returns whole columns and the
file line number of every row, or ``None`` when it cannot vouch for an exact, located reading (quoted
cells, a ragged row, a cell that is not a number): the caller then falls back to the row-by-row reader of
:mod:`nodedsl.io.tables`, whose diagnostics name the line and column. Empty cells and ``NaN`` become NaN
(missing values); the caller decides where that is allowed.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(p, "w").write("t,x\\n0,1\\n\\n0.5,\\n")
    >>> tab = read_csv_table(p)
    >>> tab.header, tab.lines.tolist(), tab.columns["x"].tolist()
    (['t', 'x'], [2, 4], [1.0, nan])
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.diagnostics import NodeDslError
from .files import read_bytes
from .tables import table_error

__all__ = ["Table", "read_csv_table", "read_hdf5_table", "read_parquet_table"]


@dataclass
class Table:
    """Columns of a data file: ``columns[name]`` float64 (NaN where a cell is empty) or, for a column of
    text (trajectory ids), an object array of str; ``lines[r]`` the file line of row ``r`` (1-based)."""

    header: list[str]
    header_line: int
    columns: dict[str, np.ndarray]
    lines: np.ndarray


def _line_numbers(data: bytes, rows: int) -> tuple[int, np.ndarray] | None:
    """Header line and the line of each data row; None when the count does not match the rows read.

    Without blank lines (the usual file) row ``r`` is line ``r + 2``: a newline count shows it. A line
    of nothing but blanks and commas is skipped by the row reader (pyarrow rejects a blank-only line as
    ragged and reads a commas-only line as a row of gaps, whose empty ``t`` the row reader locates)."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines == rows + 1:
        return 1, np.arange(2, rows + 2, dtype=np.int64)
    nonblank = [k + 1 for k, ln in enumerate(data.split(b"\n")) if ln.strip(b" \t,\r")]
    if len(nonblank) != rows + 1:
        return None
    return nonblank[0], np.asarray(nonblank[1:], dtype=np.int64)


def _columns(table, header: list[str]) -> dict[str, np.ndarray] | None:
    import pyarrow as pa

    out: dict[str, np.ndarray] = {}
    for name, col in zip(header, table.columns, strict=True):
        kind = col.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            out[name] = col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls -> NaN
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            out[name] = np.asarray(col.to_pylist(), dtype=object)
        else:  # dates, booleans...: the row reader says which cell is not a number
            return None
    return out


def read_csv_table(path: str | Path) -> Table | None:
    """The CSV file at ``path`` read by pyarrow, or None where the row reader must give the answer.

    Size limits and unreadable files are the same located errors as :func:`nodedsl.io.tables.read_rows`.
    """
    import pyarrow as pa
    from pyarrow import csv

    file = str(path)
    try:
        data = read_bytes(path, "csv-bytes", what="data file")
    except NodeDslError as err:
        d = err.diagnostics[0]
        if d.code == "file-not-found":
            raise NodeDslError([table_error(file, f"data file '{file}' does not exist")]) from None
        raise
    if b'"' in data or b"\x00" in data:
        return None  # quoted cells may hold commas and newlines: the row reader counts lines exactly
    try:  # an empty file is ArrowInvalid too: the row reader says what the file lacks
        table = csv.read_csv(pa.BufferReader(data), parse_options=csv.ParseOptions(newlines_in_values=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return None  # a ragged row, a bad encoding: located by the row reader
    header = [h.strip() for h in table.column_names]
    located = _line_numbers(data, table.num_rows)
    cols = _columns(table, header) if located else None
    if located is None or cols is None or len(set(header)) != len(header):
        return None
    return Table(header, located[0], cols, located[1])


def read_parquet_table(path: str | Path) -> Table:
    """A Parquet file's columns (row ``r`` reported as "row r+1"; Parquet has no lines)."""
    import pyarrow as pa
    from pyarrow import parquet

    file = str(path)
    data = read_bytes(path, "data-bytes", what="data file")
    try:
        table = parquet.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise NodeDslError([table_error(file, f"cannot read Parquet file '{file}': {exc}")]) from None
    header = [str(h).strip() for h in table.column_names]
    cols = _columns(table, header)
    if cols is None:
        bad = [f"{n} ({c.type})" for n, c in zip(header, table.columns, strict=True) if not _numeric_or_text(c.type)]
        raise NodeDslError(
            [table_error(file, f"columns of an unsupported type: {', '.join(bad)}", 0, 0, "use numbers or text")]
        )
    return Table(header, 0, cols, np.arange(1, table.num_rows + 1, dtype=np.int64))


def _numeric_or_text(kind) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_null(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    )


def read_hdf5_table(path: str | Path) -> Table:
    """An HDF5 file whose root holds one 1-D dataset per column, all of one length (what
    ``h5py.File(p, "w").create_dataset("t", data=...)`` writes); rows reported as "row r+1".
    Needs h5py (the ``hdf5`` extra); HDF5 files are read as arrays, never unpickled."""
    file = str(path)
    try:
        import h5py
    except ImportError:
        raise NodeDslError(
            [table_error(file, "reading HDF5 needs h5py", 0, 0, "pip install 'nodedsl[hdf5]'")]
        ) from None
    from .files import check_regular

    check_regular(path, what="data file")
    columns: dict[str, np.ndarray] = {}
    try:
        with h5py.File(file, "r") as fh:
            for name, item in fh.items():
                if not isinstance(item, h5py.Dataset) or item.ndim != 1:
                    raise NodeDslError(
                        [table_error(file, f"'{name}' is not a 1-D dataset", 0, 0, "one 1-D dataset per column")]
                    )
                data = item[()]
                if data.dtype.kind in "iuf":
                    columns[name.strip()] = data.astype(np.float64)
                elif data.dtype.kind in "SOU":
                    columns[name.strip()] = np.asarray([_text(v) for v in data], dtype=object)
                else:
                    raise NodeDslError([table_error(file, f"column '{name}' has unsupported type {data.dtype}")])
    except OSError as exc:
        raise NodeDslError([table_error(file, f"cannot read HDF5 file '{file}': {exc}")]) from None
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise NodeDslError([table_error(file, f"columns of different lengths: {sorted(lengths)}")])
    rows = lengths.pop() if lengths else 0
    return Table(list(columns), 0, columns, np.arange(1, rows + 1, dtype=np.int64))


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
