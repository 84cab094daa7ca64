"""Trajectory data: loading CSV/NPZ files, matching columns to a model, splitting and windowing.

Every problem with a data file is a :class:`~nodedsl.core.diagnostics.Diagnostic` with code ``data-error``
naming the file, the column and the row (for CSV the row is the file's line number).

Example:
    >>> import torch
    >>> tr = Trajectories(t=torch.linspace(0, 1, 5).repeat(2, 1), y=torch.zeros(2, 5, 1), u=torch.zeros(2, 5, 0),
    ...                   output_names=("x",), input_names=())
    >>> w = make_windows(tr, 2)
    >>> tuple(w.t.shape), w.traj.tolist(), w.start.tolist(), w.next.tolist()
    ((4, 3), [0, 0, 1, 1], [0, 2, 0, 2], [1, -1, 3, -1])
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest

__all__ = [
    "MAX_ERRORS",
    "Trajectories",
    "Windows",
    "load_csv",
    "load_file",
    "load_npz",
    "make_windows",
    "match_model",
    "split_by_trajectory",
]

MAX_ERRORS = 10  # cell-level problems reported per file before giving up


@dataclass
class Trajectories:
    """``N`` trajectories sampled at ``T`` times (shorter ones padded; see ``lengths``).

    ``t [N, T]`` times (float64, so that sampling intervals stay exact), ``y [N, T, n_out]`` observed
    outputs, ``u [N, T, m]`` inputs, and optionally the
    full states ``x [N, T, n]`` (synthetic data, or files that carry every state). ``lengths[i]`` is the
    number of real samples of trajectory ``i``; samples past it repeat the last one.
    """

    t: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor
    output_names: tuple[str, ...]
    input_names: tuple[str, ...]
    x: torch.Tensor | None = None
    state_names: tuple[str, ...] = ()
    lengths: torch.Tensor | None = None
    ids: tuple = ()
    source: str = ""
    rows: np.ndarray | None = field(default=None, repr=False)  # [N, T] CSV line numbers, for messages

    def __post_init__(self) -> None:
        if self.lengths is None:
            self.lengths = torch.full((self.t.shape[0],), self.t.shape[1], dtype=torch.long)
        if not self.ids:
            self.ids = tuple(range(self.t.shape[0]))

    @property
    def n_traj(self) -> int:
        return int(self.t.shape[0])

    def __len__(self) -> int:
        return self.n_traj

    def subset(self, index: Sequence[int] | torch.Tensor) -> Trajectories:
        """The trajectories at ``index`` (in that order)."""
        idx = torch.as_tensor(list(index) if not isinstance(index, torch.Tensor) else index, dtype=torch.long)
        return replace(
            self,
            t=self.t[idx],
            y=self.y[idx],
            u=self.u[idx],
            x=None if self.x is None else self.x[idx],
            lengths=self.lengths[idx],
            ids=tuple(self.ids[int(i)] for i in idx),
            rows=None if self.rows is None else self.rows[idx.numpy()],
        )

    def where(self, i: int, k: int) -> str:
        """Human-readable location of sample ``k`` of trajectory ``i``."""
        if self.rows is not None:
            return f"line {int(self.rows[i, k])}"
        return f"trajectory {self.ids[i]}, sample {k}"


@dataclass
class Windows:
    """Multiple-shooting windows: ``window`` steps (``window + 1`` points) each, stride ``window``.

    ``t [W, K+1]``, ``y [W, K+1, n_out]``, ``u [W, K+1, m]``, ``x`` (optional) ``[W, K+1, n]``;
    ``traj[w]`` and ``start[w]`` locate the window in its trajectory; ``next[w]`` is the index of the
    window that starts where ``w`` ends (same trajectory) or -1.
    """

    t: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor
    traj: torch.Tensor
    start: torch.Tensor
    next: torch.Tensor
    output_names: tuple[str, ...]
    input_names: tuple[str, ...]
    window: int
    x: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.t.shape[0])


# ------------------------------------------------------------------ column matching
def _err(file: str, message: str, line: int = 0, *notes: str) -> Diagnostic:
    return Diagnostic("data-error", message, Span(file, line, 1 if line else 0), tuple(n for n in notes if n))


@dataclass
class _Plan:
    outputs: list[int]
    inputs: list[int | None]
    states: list[int] | None
    needed: list[int]


def _plan_columns(
    file: str,
    columns: Sequence[str],
    output_names: Sequence[str],
    input_names: Sequence[str],
    state_names: Sequence[str],
    aliases: Mapping[str, str] | None,
    inputs_optional: bool,
    skip: Sequence[str] = (),
    line: int = 0,
) -> tuple[_Plan | None, list[Diagnostic]]:
    """Which column feeds each output/input/state; missing, duplicate and unknown columns are errors."""
    diags: list[Diagnostic] = []
    index: dict[str, int] = {}
    for j, name in enumerate(columns):
        if name in index:
            diags.append(_err(file, f"column '{name}' appears twice", line))
        index[name] = j
    expected = [*output_names, *input_names, *state_names]
    available = [c for c in columns if c not in skip]
    outputs = []
    for name in output_names:
        alias = (aliases or {}).get(name)
        if name in index:
            outputs.append(index[name])
        elif alias is not None and alias in index:
            outputs.append(index[alias])
        else:
            hint = suggest(name, available)
            alias_note = (
                f"the output '{name}' equals the state '{alias}', so a '{alias}' column also works" if alias else ""
            )
            diags.append(
                _err(
                    file,
                    f"missing column '{name}' (an output of the model)",
                    line,
                    hint,
                    alias_note,
                    f"columns present: {', '.join(columns)}",
                )
            )
    inputs: list[int | None] = []
    for name in input_names:
        if name in index:
            inputs.append(index[name])
        elif inputs_optional:
            inputs.append(None)
        else:
            diags.append(_err(file, f"missing column '{name}' (an input of the model)", line, suggest(name, available)))
    states = [index[s] for s in state_names] if state_names and all(s in index for s in state_names) else None
    known = set(expected) | set(skip) | {a for a in (aliases or {}).values()}
    for name in columns:
        if name not in known:
            diags.append(
                _err(
                    file,
                    f"unknown column '{name}': it is no output, input or state of the model",
                    line,
                    suggest(name, expected),
                    f"expected columns: {', '.join([*skip, *dict.fromkeys(expected)])}",
                )
            )
    needed = sorted({*outputs, *(i for i in inputs if i is not None), *(states or [])})
    return (None if diags else _Plan(outputs, inputs, states, needed)), diags


def _assemble(
    file: str,
    t: np.ndarray,
    cols: np.ndarray,
    lengths: np.ndarray,
    plan: _Plan,
    output_names,
    input_names,
    state_names,
    input_defaults,
    ids,
    rows,
) -> Trajectories:
    """Tensors from ``t [N, T]`` and ``cols [N, T, C]`` following ``plan``."""
    dtype = torch.get_default_dtype()
    n, T = t.shape
    y = cols[:, :, plan.outputs] if plan.outputs else np.zeros((n, T, 0))
    u = np.zeros((n, T, len(input_names)))
    defaults = list(input_defaults) if input_defaults is not None else [0.0] * len(input_names)
    for k, j in enumerate(plan.inputs):
        u[:, :, k] = cols[:, :, j] if j is not None else defaults[k]
    x = cols[:, :, plan.states] if plan.states is not None else None
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)  # noqa: E731
    times = torch.as_tensor(np.ascontiguousarray(t), dtype=torch.float64)
    return Trajectories(
        times,
        as_t(y),
        as_t(u),
        tuple(output_names),
        tuple(input_names),
        None if x is None else as_t(x),
        tuple(state_names) if x is not None else (),
        torch.as_tensor(lengths, dtype=torch.long),
        tuple(ids),
        file,
        rows,
    )


def _check_times(
    file: str, t: np.ndarray, lengths: np.ndarray, ids: Sequence, rows: np.ndarray | None, diags: list[Diagnostic]
) -> None:
    for i in range(t.shape[0]):
        ti = t[i, : lengths[i]]
        bad = np.nonzero(~(ti[1:] > ti[:-1]))[0]
        if len(bad):
            k = int(bad[0]) + 1
            line = int(rows[i, k]) if rows is not None else 0
            where = f"line {line}" if rows is not None else f"sample {k}"
            diags.append(
                _err(
                    file,
                    f"time is not increasing in trajectory {ids[i]}: t = {ti[k]:g} at "
                    f"{where} follows t = {ti[k - 1]:g}",
                    line,
                    "times must increase strictly within a trajectory",
                )
            )
            if len(diags) >= MAX_ERRORS:
                return


# ------------------------------------------------------------------ CSV
def _cell(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


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

    Extra columns must be states of the model (``nodedsl simulate`` writes every state and output).
    ``aliases[output] = state`` lets a state's column stand for an output that equals that state.
    Input columns may be absent when ``input_defaults`` is given (the model's default inputs).
    Raises :class:`NodeDslError` (``data-error``) naming the file, column and line.
    """
    file = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            lines = list(csv.reader(fh))
    except FileNotFoundError:
        raise NodeDslError([_err(file, f"data file '{file}' does not exist")]) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NodeDslError([_err(file, f"cannot read data file '{file}': {exc}")]) from None
    numbered = [(k + 1, row) for k, row in enumerate(lines) if any(c.strip() for c in row)]
    if not numbered:
        raise NodeDslError([_err(file, "the file is empty (expected a header line with 't' and the output columns)")])
    header_line, header = numbered[0]
    columns = [c.strip() for c in header]
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
    value_cols = [c for c in columns if c not in ("t", "trajectory")]
    plan, plan_diags = _plan_columns(
        file,
        value_cols,
        output_names,
        input_names,
        state_names,
        aliases,
        input_defaults is not None,
        ("trajectory", "t"),
        header_line,
    )
    diags += plan_diags
    if diags:
        raise NodeDslError(diags)
    t_col = columns.index("t")
    traj_col = columns.index("trajectory") if "trajectory" in columns else None
    value_index = [columns.index(c) for c in value_cols]
    needed = set(plan.needed)
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
            num = _cell(key)
            if num is not None and math.isfinite(num):
                key = int(num) if num.is_integer() else num
            if key == "":
                diags.append(_err(file, f"empty 'trajectory' cell at line {line}", line))
        groups.setdefault(key, []).append(r)
        checks = [(t_col, "t", None)] + [(value_index[j], value_cols[j], j) for j in sorted(needed)]
        for col, name, j in checks:
            text = row[col].strip()
            v = _cell(text)
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
    if not groups:
        raise NodeDslError([_err(file, "no data rows after the header", header_line)])
    ids = list(groups)
    lengths = np.array([len(groups[k]) for k in ids])
    n, T = len(ids), int(lengths.max())
    t = np.zeros((n, T))
    cols = np.zeros((n, T, len(value_cols)))
    rows = np.zeros((n, T), dtype=np.int64)
    tarr, larr = np.asarray(times), np.asarray(lines_of)
    for i, k in enumerate(ids):
        idx = np.asarray(groups[k])
        pad = np.concatenate([idx, np.full(T - len(idx), idx[-1])])
        t[i], cols[i], rows[i] = tarr[pad], values[pad], larr[pad]
    _check_times(file, t, lengths, ids, rows, diags)
    if diags:
        raise NodeDslError(diags)
    return _assemble(file, t, cols, lengths, plan, output_names, input_names, state_names, input_defaults, ids, rows)


# ------------------------------------------------------------------ NPZ
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
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise NodeDslError([_err(file, f"data file '{file}' does not exist")]) from None
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise NodeDslError(
                [
                    _err(
                        file,
                        "ragged or object arrays cannot be loaded (trajectories of "
                        "different lengths must be padded into one array, or stored as CSV)",
                    )
                ]
            ) from None
        raise NodeDslError([_err(file, f"cannot read data file '{file}': {exc}")]) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise NodeDslError([_err(file, f"cannot read data file '{file}' (corrupt or not an .npz): {exc}")]) from None
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
    plan, diags = _plan_columns(
        file, names, output_names, input_names, state_names, aliases, input_defaults is not None
    )
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
    _check_times(file, t, lengths, ids, None, diags)
    if diags:
        raise NodeDslError(diags)
    return _assemble(file, t, x, lengths, plan, output_names, input_names, state_names, input_defaults, ids, None)


def load_file(
    path: str | Path,
    output_names: Sequence[str],
    input_names: Sequence[str] = (),
    state_names: Sequence[str] = (),
    **kw,
) -> Trajectories:
    """:func:`load_csv` or :func:`load_npz` by extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        return load_npz(path, output_names, input_names, state_names, **kw)
    if suffix == ".csv":
        return load_csv(path, output_names, input_names, state_names, **kw)
    raise NodeDslError([_err(str(path), f"data file '{path}' must end in .csv or .npz")])


def match_model(
    traj: Trajectories,
    output_names: Sequence[str],
    input_names: Sequence[str] = (),
    state_names: Sequence[str] = (),
    *,
    aliases: Mapping[str, str] | None = None,
    input_defaults: Sequence[float] | None = None,
) -> Trajectories:
    """Re-select the columns of ``traj`` (its outputs, states and inputs, by name) for another model.

    Used when a dataset simulated from one model trains another: outputs are found among the data's
    outputs and states (or through ``aliases``); inputs not in the data take ``input_defaults``.
    """
    names: list[str] = []
    blocks = []
    for block_names, tensor in ((traj.output_names, traj.y), (traj.state_names, traj.x), (traj.input_names, traj.u)):
        if tensor is None:
            continue
        for j, name in enumerate(block_names):
            if name not in names:
                names.append(name)
                blocks.append(tensor[:, :, j])
    wanted = set(output_names) | set(input_names) | set(state_names) | set((aliases or {}).values())
    keep = [k for k, n in enumerate(names) if n in wanted]
    plan, diags = _plan_columns(
        traj.source or "data", [names[k] for k in keep], output_names, input_names, state_names, aliases, True
    )
    if diags:
        raise NodeDslError(diags)
    cols = torch.stack([blocks[k] for k in keep], -1).double().numpy() if keep else np.zeros((*traj.t.shape, 0))
    return _assemble(
        traj.source,
        traj.t.double().numpy(),
        cols,
        traj.lengths.numpy(),
        plan,
        output_names,
        input_names,
        state_names,
        input_defaults,
        traj.ids,
        traj.rows,
    )


# ------------------------------------------------------------------ splitting and windows
def split_by_trajectory(traj: Trajectories, fraction: float, seed: int = 0) -> tuple[Trajectories, Trajectories | None]:
    """``(train, validation)``: a seeded random ``fraction`` of whole trajectories is held out.

    At least one trajectory is held out when ``fraction > 0`` and there are two or more; at least one
    always stays for training. ``validation`` is None when nothing is held out.
    """
    n = traj.n_traj
    n_val = int(round(n * fraction))
    if fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    n_val = min(n_val, n - 1) if n >= 1 else 0
    if n_val <= 0:
        return traj, None
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(n, generator=g)
    val_idx, train_idx = perm[:n_val].sort().values, perm[n_val:].sort().values
    return traj.subset(train_idx), traj.subset(val_idx)


def make_windows(traj: Trajectories, window: int) -> Windows:
    """All windows of ``window`` steps with stride ``window`` from every trajectory (tail points dropped).

    A trajectory with fewer than ``window + 1`` samples is a ``data-error``.
    """
    if window < 1:
        raise NodeDslError([_err(traj.source, f"window must be >= 1, got {window}")])
    diags = []
    t_parts, y_parts, u_parts, x_parts, traj_idx, starts, nexts = [], [], [], [], [], [], []
    offset = 0
    for i in range(traj.n_traj):
        length = int(traj.lengths[i])
        if length < window + 1:
            diags.append(
                _err(
                    traj.source or "data",
                    f"trajectory {traj.ids[i]} has "
                    f"{length} samples, too few for window = {window} ({window + 1} samples needed)",
                    int(traj.rows[i, 0]) if traj.rows is not None else 0,
                    "use a smaller window or longer trajectories",
                )
            )
            if len(diags) >= MAX_ERRORS:
                break
            continue
        count = (length - 1) // window
        s = torch.arange(count) * window
        idx = s[:, None] + torch.arange(window + 1)[None, :]
        t_parts.append(traj.t[i][idx])
        y_parts.append(traj.y[i][idx])
        u_parts.append(traj.u[i][idx])
        if traj.x is not None:
            x_parts.append(traj.x[i][idx])
        traj_idx.append(torch.full((count,), i, dtype=torch.long))
        starts.append(s)
        nxt = torch.arange(count) + offset + 1
        nxt[-1] = -1
        nexts.append(nxt)
        offset += count
    if diags:
        raise NodeDslError(diags)
    if not t_parts:
        raise NodeDslError([_err(traj.source or "data", "no trajectories to window")])
    return Windows(
        torch.cat(t_parts),
        torch.cat(y_parts),
        torch.cat(u_parts),
        torch.cat(traj_idx),
        torch.cat(starts),
        torch.cat(nexts),
        traj.output_names,
        traj.input_names,
        window,
        torch.cat(x_parts) if x_parts else None,
    )
