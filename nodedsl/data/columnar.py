"""Columnar trajectory data: pyarrow's columns (CSV fast path, Parquet) made into :class:`Trajectories`.

:func:`nodedsl.data.loading.load_csv` tries :func:`from_table` first and falls back to its row reader
for the located message when a cell is not what the column needs; :func:`load_parquet` has no row
reader, so :func:`_cell_problems` names the column and the first bad row itself. An empty or NaN cell
in an output column is a missing observation (masked out of the loss), anywhere else an error.

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> p = os.path.join(tempfile.mkdtemp(), "d.parquet")
    >>> pq.write_table(pa.table({"t": [0.0, 0.5, 1.0], "x": [1.0, None, 3.0]}), p)
    >>> tr = load_parquet(p, ("x",))
    >>> tr.y[0, :, 0].tolist(), tr.n_missing
    ([1.0, 2.0, 3.0], 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from ..core.limits import limit, over_limit
from ..io.arrow import read_hdf5_table, read_parquet_table
from .trajectories import Plan, Trajectories, _err, assemble, check_times, plan_columns

__all__ = ["csv_plan", "from_table", "load_parquet", "pad_and_assemble", "parse_cell", "value_columns"]


def parse_cell(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def value_columns(columns, output_names, input_names, state_names) -> list[str]:
    # `simulate` marks events in an `event` column: not data unless the model names something so
    names = {*output_names, *input_names, *(state_names or ())}
    return [c for c in columns if c not in ("t", "trajectory") and (c != "event" or c in names)]


def pad_and_assemble(
    file, members, ids, times, values, lines, plan, value_cols, output_names, input_names, state_names, defaults
) -> Trajectories:
    """``[N, T]`` arrays from each trajectory's row indices (short ones repeat their last row).

    ``members`` is a list of row-index arrays, or the int ``T`` when the rows are already ``N``
    trajectories of ``T`` rows each, one after another (the usual file): then the columns are
    reshaped, not gathered."""
    if isinstance(members, int):
        n, T = len(ids), members
        lengths = np.full(n, T)
    else:
        lengths = np.array([len(m) for m in members])
        n, T = len(members), int(lengths.max())
    padded = n * T * (len(value_cols) + 3) * 8  # t, values, row numbers (and the tensors made from them)
    if padded > limit("data-bytes"):
        what = f"'{file}' padded to {n} trajectories x {T} samples"
        raise NodeDslError([over_limit("data-bytes", padded, what, Span(file, 0, 0))])
    if isinstance(members, int):
        t, cols = times.reshape(n, T), values.reshape(n, T, -1)
        rows = None if lines is None else lines.reshape(n, T)
    else:
        if bool((lengths == T).all()):  # every trajectory as long as the longest
            pad = np.stack(members)
        else:
            pad = np.stack([np.concatenate([m, np.full(T - len(m), m[-1])]) for m in members])
        t, cols, rows = times[pad], values[pad], None if lines is None else lines[pad]
    diags: list[Diagnostic] = []
    check_times(file, t, lengths, ids, rows, diags)
    if diags:
        raise NodeDslError(diags)
    return assemble(file, t, cols, lengths, plan, output_names, input_names, state_names, defaults, ids, rows)


def _contiguous_runs(column: np.ndarray) -> tuple[list, int] | None:
    """``(ids, T)`` when a numeric trajectory column holds whole-number ids in runs of one length ``T``,
    each id in one run (what writers produce); None otherwise (the general grouping then applies)."""
    if column.dtype == object or len(column) == 0:
        return None
    starts = np.concatenate([[0], np.flatnonzero(column[1:] != column[:-1]) + 1])  # NaN starts runs too
    run_ids = column[starts]
    T = len(column) // len(starts)
    if T * len(starts) != len(column) or bool((np.diff(starts) != T).any()):
        return None
    if not np.isfinite(run_ids).all() or not bool((run_ids == np.round(run_ids)).all()):
        return None
    if len(np.unique(run_ids)) != len(run_ids):
        return None
    return [int(v) for v in run_ids.tolist()], T


def _trajectory_groups(column: np.ndarray) -> tuple[list, np.ndarray] | None:
    """Trajectory ids in order of first appearance (whole numbers as int, as the row reader makes them)
    and each row's group; None when a cell is empty (the row reader locates that)."""
    if column.dtype != object:
        if not np.isfinite(column).all():
            return None
        if bool((column == np.round(column)).all()):  # the usual case, vectorized
            uniq, first, inverse = np.unique(column.astype(np.int64), return_index=True, return_inverse=True)
            rank = np.empty(len(uniq), dtype=np.int64)
            rank[np.argsort(first, kind="stable")] = np.arange(len(uniq))
            return [int(uniq[k]) for k in np.argsort(first, kind="stable")], rank[inverse.reshape(-1)]
        keys: list = [int(v) if float(v).is_integer() else float(v) for v in column.tolist()]
    else:
        keys = []
        for text in column.tolist():
            text = (text or "").strip()
            if not text:
                return None
            num = parse_cell(text)
            keys.append((int(num) if num.is_integer() else num) if num is not None and math.isfinite(num) else text)
    ids = list(dict.fromkeys(keys))
    code = {k: i for i, k in enumerate(ids)}
    return ids, np.fromiter((code[k] for k in keys), dtype=np.int64, count=len(keys))


def from_table(
    file, table, output_names, input_names, state_names, aliases, defaults, lines: bool = True
) -> Trajectories | None:
    """Trajectories from pyarrow's columns, or None when a cell needs the row reader's located error
    (``lines``: the table's rows are file lines, as in a CSV; Parquet rows are not)."""
    columns = table.header
    value_cols = value_columns(columns, output_names, input_names, state_names)
    plan = csv_plan(
        file, table.header_line, columns, value_cols, output_names, input_names, state_names, aliases,
        defaults is not None,
    )  # fmt: skip
    if len(table.lines) == 0:
        raise NodeDslError([_err(file, "no data rows after the header", table.header_line)])
    numeric = {c: v for c, v in table.columns.items() if v.dtype != object}
    may_miss = {value_cols[j] for j in plan.outputs}
    for name in {"t", *(value_cols[j] for j in plan.needed)}:
        col = numeric.get(name)
        if col is None or (np.isinf(col).any() if name in may_miss else not np.isfinite(col).all()):
            return None  # a word, an infinity or a gap where no gap may be: the row reader says where
    rows = len(table.lines)
    # column-major, so each column is one contiguous copy here and one contiguous read when the tensors
    # are cast; ``values.T`` is the [rows, columns] view the padding expects
    values = np.empty((len(value_cols), rows))
    for j in range(len(value_cols)):
        values[j] = numeric[value_cols[j]] if j in plan.needed else np.nan
    runs = _contiguous_runs(table.columns["trajectory"]) if "trajectory" in table.columns else None
    if runs is not None:
        ids, members = runs
    elif "trajectory" in table.columns:
        grouped = _trajectory_groups(table.columns["trajectory"])
        if grouped is None:
            return None
        ids, inverse = grouped
        order = np.argsort(inverse, kind="stable")
        members = np.split(order, np.cumsum(np.bincount(inverse, minlength=len(ids)))[:-1])
    else:
        ids, members = [0], [np.arange(rows)]
    return pad_and_assemble(
        file, members, ids, numeric["t"], values.T, table.lines if lines else None, plan, value_cols,
        output_names, input_names, state_names, defaults,
    )  # fmt: skip


def _cell_problems(file: str, table, output_names, input_names, state_names, aliases, defaults) -> list[Diagnostic]:
    """What :func:`_from_table` refused in a Parquet table, column by column, naming the first bad row."""
    value_cols = value_columns(table.header, output_names, input_names, state_names)
    plan = csv_plan(file, 0, table.header, value_cols, output_names, input_names, state_names, aliases, defaults)
    may_miss = {value_cols[j] for j in plan.outputs}
    diags = []
    for name in ["trajectory", "t", *(value_cols[j] for j in plan.needed)]:
        col = table.columns.get(name)
        if col is None:
            continue
        if name == "trajectory":
            bad = (
                np.flatnonzero([not str(v).strip() for v in col])
                if col.dtype == object
                else np.flatnonzero(np.isnan(col))
            )
            what = "an empty trajectory id"
        elif col.dtype == object:
            bad, what = np.flatnonzero([parse_cell(str(v)) is None for v in col]), "text where a number is needed"
        else:
            gap = np.isnan(col) if name not in may_miss else np.zeros(len(col), dtype=bool)
            bad, what = np.flatnonzero(np.isinf(col) | gap), "a missing or infinite value"
        if len(bad):
            diags.append(_err(file, f"column '{name}' has {what} at row {int(bad[0]) + 1} (and {len(bad) - 1} more)"))
    return diags or [_err(file, "the table's cells cannot be read as trajectories")]


def load_parquet(
    path: str | Path,
    output_names: Sequence[str],
    input_names: Sequence[str] = (),
    state_names: Sequence[str] = (),
    *,
    aliases: Mapping[str, str] | None = None,
    input_defaults: Sequence[float] | None = None,
) -> Trajectories:
    """A Parquet (or HDF5: ``.h5``/``.hdf5``, one 1-D dataset per column) file with the columns of the
    long-form CSV (see :func:`load_csv`); problems name the column and the row (counted from 1)."""
    file = str(path)
    hdf5 = Path(path).suffix.lower() in (".h5", ".hdf5")
    table = read_hdf5_table(path) if hdf5 else read_parquet_table(path)
    args = (output_names, input_names, state_names, aliases, input_defaults)
    out = from_table(file, table, *args, lines=False)
    if out is None:
        raise NodeDslError(_cell_problems(file, table, *args))
    return out


def csv_plan(
    file, header_line, columns, value_cols, output_names, input_names, state_names, aliases, inputs_optional
) -> Plan:
    """The column plan of a CSV header (a missing ``t`` and every column problem reported together)."""
    diags: list[Diagnostic] = []
    if "t" not in columns:
        diags.append(
            _err(
                file,
                "missing column 't' (the time)",
                header_line,
                suggest("t", columns) or ("did you mean 't'?" if "time" in columns else ""),
                f"columns present: {', '.join(columns)}",
            )
        )
    plan, plan_diags = plan_columns(
        file,
        value_cols,
        output_names,
        input_names,
        state_names,
        aliases,
        inputs_optional,
        ("trajectory", "t"),
        header_line,
    )
    diags += plan_diags
    if diags or plan is None:
        raise NodeDslError(diags)
    return plan
