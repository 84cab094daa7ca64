"""Fast tabular reading through pyarrow: CSV (multi-threaded C++ parser) and Parquet.

:func:`read_csv_table` is the fast path of :mod:`nodedsl.data.loading`: it returns whole columns and the
file line number of every row, or ``None`` when it cannot vouch for an exact, located reading (a ragged
row, a cell that is not a number, a blank line): the caller then falls back to the row-by-row reader of
:mod:`nodedsl.io.tables`, whose diagnostics name the line and column. Empty cells and ``NaN`` become NaN
(missing values), and so does a blank line (a row of gaps, whose missing ``t`` sends the caller to
the row reader, which skips it); the caller decides where gaps are allowed.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(p, "w").write("t,x\\n0,1\\n0.5,\\n")
    >>> tab = read_csv_table(p)
    >>> tab.header, tab.lines.tolist(), tab.columns["x"].tolist()
    (['t', 'x'], [2, 3], [1.0, nan])
    >>> _ = open(p, "w").write("t,x\\n0,1\\n\\n0.5,2\\n")  # a blank line is a row of gaps, t included
    >>> read_csv_table(p).columns["t"].tolist()
    [0.0, nan, 0.5]
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.diagnostics import NodeDslError
from .files import open_regular
from .tables import table_error

__all__ = ["Table", "read_csv_table", "read_hdf5_table", "read_parquet_table"]


_BLOCK = 8 << 20  # bytes per parse block


@dataclass
class Table:
    """Columns of a data file: ``columns[name]`` float64 (NaN where a cell is empty) or, for a column of
    text (trajectory ids), an object array of str; ``lines[r]`` the file line of row ``r`` (1-based)."""

    header: list[str]
    header_line: int
    columns: dict[str, np.ndarray]
    lines: np.ndarray


def _columns(table, header: list[str]) -> dict[str, np.ndarray] | None:
    import pyarrow as pa

    out: dict[str, np.ndarray] = {}
    for name, col in zip(header, table.columns, strict=True):
        kind = col.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
            out[name] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)  # nulls -> NaN
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            out[name] = np.asarray(col.to_pylist(), dtype=object)
        else:  # dates, booleans...: the row reader says which cell is not a number
            return None
    return out


def _mapped(fh):
    """The open file's bytes as a pyarrow buffer over a read-only memory map (no copy; the file is the
    descriptor whose size :func:`open_regular` checked). ValueError for an empty file."""
    import pyarrow as pa

    with fh:
        return pa.py_buffer(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))


def read_csv_table(path: str | Path, numeric: Sequence[str] = ()) -> Table | None:
    """The CSV file at ``path`` read by pyarrow, or None where the row reader must give the answer.

    ``numeric``: columns known to hold numbers (the time, outputs, inputs): parsed as float64 straight
    away, which spares pyarrow's type inference (a cell that is not a number then sends the file to the
    row reader, which locates it). Size limits and unreadable files are the same located errors as
    :func:`nodedsl.io.tables.read_rows`.
    """
    import pyarrow as pa
    from pyarrow import csv

    file = str(path)
    try:
        fh = open_regular(path, "csv-bytes", what="data file")
    except NodeDslError as err:
        d = err.diagnostics[0]
        if d.code == "file-not-found":
            raise NodeDslError([table_error(file, f"data file '{file}' does not exist")]) from None
        raise
    # Blank lines are rows here (ignore_empty_lines=False: a row of gaps or a ragged row, which the row
    # reader then locates), and no value holds a newline, so data row r is exactly line r + 2.
    parse = csv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False)
    read = csv.ReadOptions(block_size=_BLOCK)  # big blocks: the per-block setup cost halves the speed
    convert = csv.ConvertOptions(column_types={name: pa.float64() for name in numeric})
    try:  # an empty file (mmap refuses it) or ArrowInvalid: the row reader says what the file lacks
        data = _mapped(fh)  # parsing from memory is ~1.3x faster than through the Python file object
        table = csv.read_csv(pa.BufferReader(data), read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, OSError, ValueError):
        return None  # a ragged row, a bad encoding: located by the row reader
    header = [h.strip() for h in table.column_names]
    cols = _columns(table, header)
    if cols is None or len(set(header)) != len(header) or not header or not all(header):
        return None
    return Table(header, 1, cols, np.arange(2, table.num_rows + 2, dtype=np.int64))


def read_parquet_table(path: str | Path) -> Table:
    """A Parquet file's columns (row ``r`` reported as "row r+1"; Parquet has no lines)."""
    import pyarrow as pa
    from pyarrow import parquet

    file = str(path)
    fh = open_regular(path, "data-bytes", what="data file")
    try:
        table = parquet.read_table(pa.BufferReader(_mapped(fh)))
    except (pa.ArrowException, OSError, ValueError) as exc:
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
