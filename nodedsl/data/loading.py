"""Trajectory data files: long-form CSV and NPZ, read and matched to a model's columns.

Every problem with a data file is a :class:`~nodedsl.core.diagnostics.Diagnostic` with code ``data-error``
naming the file, the column and the row (for CSV the row is the file's line number). The trajectory and
window types live in :mod:`nodedsl.data.trajectories` and :mod:`nodedsl.data.windows` (re-exported here).

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
    >>> _ = open(p, "w").write("trajectory,t,x\\n0,0,1\\n0,0.5,2\\n1,0,3\\n1,0.5,4\\n")
    >>> tr = load_csv(p, ("x",))
    >>> tr.n_traj, tr.y[:, :, 0].tolist(), tr.where(1, 0)
    (2, [[1.0, 2.0], [3.0, 4.0]], 'line 4')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..core.diagnostics import Diagnostic, NodeDslError, suggest
from ..io.arrow import read_csv_table
from ..io.tables import read_rows
from .columnar import csv_plan, from_table, load_parquet, pad_and_assemble, parse_cell, value_columns
from .trajectories import MAX_ERRORS, Plan, Trajectories, _err, assemble, check_times, match_model, plan_columns
from .windows import Windows, make_windows, split_by_trajectory

__all__ = [
    "MAX_ERRORS",
    "Trajectories",
    "Windows",
    "load_csv",
    "load_file",
    "load_npz",
    "load_parquet",
    "make_windows",
    "match_model",
    "split_by_trajectory",
]


# ------------------------------------------------------------------ CSV
def load_csv(
    path: str | Path,
    output_names: Sequence[str],
    input_names: Sequence[str] = (),
    state_names: Sequence[str] = (),
    *,
    aliases: Mapping[str, str] | None = None,
    input_defaults: Sequence[float] | None = None,
) -> Trajectories:
    """Read a long-form CSV: ``trajectory`` (optional), ``t``, one column per output and input.

    Extra columns must be states of the model (``nodedsl simulate`` writes every state and output);
    an ``event`` column (``simulate``'s event marks) is skipped.
    ``aliases[output] = state`` lets a state's column stand for an output that equals that state.
    Input columns may be absent when ``input_defaults`` is given (the model's default inputs).
    An empty or ``NaN`` cell in an output column is a missing observation (NaN in ``y``: masked out of
    the loss); anywhere else it is an error. Each trajectory keeps its own times.
    The file is parsed by pyarrow (:func:`nodedsl.io.arrow.read_csv_table`); a file it cannot read
    exactly is read row by row, so every problem is a ``data-error`` naming the file, column and line.
    """
    file = str(path)
    # the time and every column the model reads are numbers: typed up front, spared pyarrow's inference
    numeric = ["t", *output_names, *input_names, *state_names, *(aliases or {}).values()]
    table = read_csv_table(path, numeric)
    if table is not None:
        fast = from_table(file, table, output_names, input_names, state_names, aliases, input_defaults)
        if fast is not None:
            return fast
    numbered = read_rows(path)
    if not numbered:
        raise NodeDslError([_err(file, "the file is empty (expected a header line with 't' and the output columns)")])
    header_line, header = numbered[0]
    columns = [c.strip() for c in header]
    value_cols = value_columns(columns, output_names, input_names, state_names)
    plan = csv_plan(
        file,
        header_line,
        columns,
        value_cols,
        output_names,
        input_names,
        state_names,
        aliases,
        input_defaults is not None,
    )
    groups, times, values, lines_of = _csv_cells(file, numbered, columns, value_cols, plan)
    if not groups:
        raise NodeDslError([_err(file, "no data rows after the header", header_line)])
    ids = list(groups)
    members = [np.asarray(groups[k]) for k in ids]
    return pad_and_assemble(
        file, members, ids, np.asarray(times), values, np.asarray(lines_of), plan, value_cols,
        output_names, input_names, state_names, input_defaults,
    )  # fmt: skip


def _csv_cells(file, numbered, columns, value_cols, plan: Plan):
    """Rows grouped by trajectory, times, needed values and line numbers; bad cells are ``data-error``s."""
    t_col = columns.index("t")
    traj_col = columns.index("trajectory") if "trajectory" in columns else None
    value_index = [columns.index(c) for c in value_cols]
    checks = [(t_col, "t", None)] + [(value_index[j], value_cols[j], j) for j in sorted(set(plan.needed))]
    may_miss = set(plan.outputs)  # an empty or NaN output cell is a missing observation
    diags: list[Diagnostic] = []
    groups: dict[object, list[int]] = {}
    times: list[float] = []
    values = np.full((len(numbered) - 1, len(value_cols)), np.nan)
    lines_of: list[int] = []
    for r, (line, row) in enumerate(numbered[1:]):
        lines_of.append(line)
        if len(row) != len(columns):
            diags.append(_err(file, f"line {line} has {len(row)} cells, the header has {len(columns)}", line))
            times.append(math.nan)
            if len(diags) >= MAX_ERRORS:
                break
            continue
        key = row[traj_col].strip() if traj_col is not None else 0
        if traj_col is not None:
            num = parse_cell(key)
            if num is not None and math.isfinite(num):
                key = int(num) if num.is_integer() else num
            if key == "":
                diags.append(_err(file, f"empty 'trajectory' cell at line {line}", line))
        groups.setdefault(key, []).append(r)
        for col, name, j in checks:
            text = row[col].strip()
            v = parse_cell(text)
            if j in may_miss and (not text or (v is not None and math.isnan(v))):
                continue  # values[r, j] stays NaN: masked out of the loss
            if v is None:
                diags.append(_err(file, f"non-numeric value '{text}' in column '{name}' at line {line}", line))
            elif not math.isfinite(v):
                diags.append(
                    _err(
                        file,
                        f"{text} in column '{name}' at line {line}: values must be finite",
                        line,
                        "remove or interpolate missing samples",
                    )
                )
            if j is None:
                times.append(v if v is not None else math.nan)
            elif v is not None:
                values[r, j] = v
        if len(diags) >= MAX_ERRORS:
            break
    if diags:
        raise NodeDslError(diags)
    return groups, times, values, lines_of


# ------------------------------------------------------------------ NPZ
def _npz_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (no pickles, headers checked first); ``data-error`` if unusable."""
    from ..io.npz import read_npz

    return read_npz(path)


def _npz_columns(file: str, arrays: dict, output_names: Sequence[str], input_names: Sequence[str]):
    """``t [N, T]``, the value columns ``[N, T, k]`` (``x`` then ``u``) and their names."""
    for key in ("t", "x"):
        if key not in arrays:
            raise NodeDslError(
                [
                    _err(
                        file,
                        f"missing array '{key}'",
                        0,
                        suggest(key, arrays),
                        f"arrays present: {', '.join(arrays) or 'none'}",
                    )
                ]
            )
    t, x = arrays["t"], arrays["x"]
    try:
        t = np.asarray(t, dtype=float)
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise NodeDslError([_err(file, "'t' and 'x' must be numeric arrays")]) from None
    if x.ndim == 2:
        x = x[None]
    if t.ndim == 1 and x.ndim == 3 and t.shape[0] == x.shape[1]:
        t = np.broadcast_to(t, x.shape[:2]).copy()
    if x.ndim != 3 or t.ndim != 2 or t.shape != x.shape[:2]:
        raise NodeDslError(
            [
                _err(
                    file,
                    f"'x' must be [N, T, k] and 't' [T] or [N, T]; got x {x.shape} "
                    f"and t {arrays['t'].shape} (ragged trajectories cannot be windowed)",
                )
            ]
        )
    if "names" in arrays:
        names = [str(s) for s in np.asarray(arrays["names"]).reshape(-1)]
    elif x.shape[2] == len(output_names):
        names = list(output_names)
    else:
        raise NodeDslError(
            [
                _err(
                    file,
                    f"'x' has {x.shape[2]} columns but there is no 'names' array "
                    f"(the model has {len(output_names)} outputs)",
                )
            ]
        )
    if len(names) != x.shape[2]:
        raise NodeDslError([_err(file, f"'names' has {len(names)} entries but 'x' has {x.shape[2]} columns")])
    u = arrays.get("u")
    u_names = [str(s) for s in np.asarray(arrays.get("input_names", arrays.get("u_names", input_names))).reshape(-1)]
    if u is not None:
        u = np.asarray(u, dtype=float)
        if u.ndim == 2:
            u = u[None]
        if u.ndim != 3 or u.shape[:2] != x.shape[:2] or u.shape[2] != len(u_names):
            raise NodeDslError(
                [_err(file, f"'u' must be [N, T, {len(u_names)}] like 'x' {x.shape[:2]}, got {u.shape}")]
            )
        names += [n for n in u_names]
        x = np.concatenate([x, u], axis=2)
    return t, x, names


def load_npz(
    path: str | Path,
    output_names: Sequence[str],
    input_names: Sequence[str] = (),
    state_names: Sequence[str] = (),
    *,
    aliases: Mapping[str, str] | None = None,
    input_defaults: Sequence[float] | None = None,
) -> Trajectories:
    """Read an ``.npz``: ``t`` ``[T]`` or ``[N, T]``, ``x`` ``[N, T, k]`` (or ``[T, k]``) whose columns are
    named by ``names`` (default: the outputs, in order), optional ``u`` ``[N, T, m]`` named by
    ``input_names``/``u_names`` (default: the model's inputs). Errors as :func:`load_csv`.
    """
    file = str(path)
    arrays = _npz_arrays(path)
    t, x, names = _npz_columns(file, arrays, output_names, input_names)
    plan, diags = plan_columns(file, names, output_names, input_names, state_names, aliases, input_defaults is not None)
    if diags:
        raise NodeDslError(diags)
    n, T = t.shape
    ids = list(range(n))
    diags = []
    if not np.isfinite(t).all():
        i, k = map(int, np.argwhere(~np.isfinite(t))[0])
        diags.append(_err(file, f"non-finite time in trajectory {i}, sample {k}"))
    for j in plan.needed:
        bad = np.argwhere(~np.isfinite(x[:, :, j]))
        if len(bad):
            i, k = map(int, bad[0])
            diags.append(
                _err(file, f"{x[i, k, j]} in column '{names[j]}' at trajectory {i}, sample {k}: values must be finite")
            )
    if diags:
        raise NodeDslError(diags)
    lengths = np.full(n, T)
    check_times(file, t, lengths, ids, None, diags)
    if diags:
        raise NodeDslError(diags)
    return assemble(file, t, x, lengths, plan, output_names, input_names, state_names, input_defaults, ids, None)


def load_file(
    path: str | Path,
    output_names: Sequence[str],
    input_names: Sequence[str] = (),
    state_names: Sequence[str] = (),
    **kw,
) -> Trajectories:
    """:func:`load_csv`, :func:`load_parquet` or :func:`load_npz` by extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return load_npz(path, output_names, input_names, state_names, **kw)
    if suffix in (".parquet", ".pq", ".h5", ".hdf5"):
        return load_parquet(path, output_names, input_names, state_names, **kw)
    if suffix == ".csv":
        return load_csv(path, output_names, input_names, state_names, **kw)
    raise NodeDslError([_err(str(path), f"data file '{path}' must end in .csv, .parquet, .h5 or .npz")])
