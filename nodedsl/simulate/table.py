"""The long-form table of a simulation: one block of rows per trajectory or sample path (``trajectory``,
``t``, states, outputs, inputs, energy, an ``event`` column where events fired, quantile bands of an SDE
ensemble), and its CSV writer.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..compiler.power import supplied_power
from ..core.diagnostics import NodeDslError, Span
from ..io.atomic import atomic_write

F64 = torch.float64  # what simulate computes in, whatever torch's default dtype is


@dataclass
class Table:
    columns: list[str]
    rows: np.ndarray


def _arg_error(what: str, message: str, *notes: str) -> NodeDslError:
    return NodeDslError.single("bad-argument", message, Span(f"<{what}>", 0, 0), *notes)


def _table(model, paths: torch.Tensor, t: torch.Tensor, signal, req: Any, events: list) -> Table:
    """The long table of ``paths`` ``[T, N, n]``: one trajectory per sample path."""
    n_paths = paths.shape[1]
    with torch.no_grad():
        u = (
            torch.stack([signal(ti, 1)[0] if signal else model.u_default for ti in t])
            if model.input_names
            else torch.zeros(len(t), 0, dtype=F64)
        )
    parts = [_one_table(model, paths[:, k, :], t, u, req, k, events) for k in range(n_paths)]
    columns = parts[0].columns
    rows = np.concatenate([p.rows for p in parts], axis=0)
    if req.quantiles:
        columns, rows = _with_quantiles(columns, rows, model.state_names, len(t), n_paths)
    return Table(columns, rows)


def _with_quantiles(columns: list[str], rows: np.ndarray, states, n_t: int, n_paths: int):
    """Columns ``mean(x)``, ``q05(x)``, ``q50(x)``, ``q95(x)`` per state, over the paths at each time."""
    extra_cols, extra = [], []
    for name in states:
        vals = rows[:, columns.index(name)].reshape(n_paths, n_t)
        stats = [vals.mean(0), *np.quantile(vals, [0.05, 0.5, 0.95], axis=0)]
        for label, v in zip(("mean", "q05", "q50", "q95"), stats):
            extra_cols.append(f"{label}({name})")
            extra.append(np.tile(v, n_paths)[:, None])
    return columns + extra_cols, np.concatenate([rows, *extra], axis=1)


def _one_table(model, ys, t: torch.Tensor, u: torch.Tensor, req: Any, k: int, events: list) -> Table:
    with torch.no_grad():
        outs = model.observe(t, ys, u) if model.output_names != model.state_names else ys[:, :0]
    columns = ["trajectory", "t", *model.state_names]
    blocks = [torch.full((len(t), 1), float(k), dtype=F64), t[:, None], ys]
    if outs.shape[1]:
        extra = [n for n in model.output_names if n not in model.state_names]
        keep = [i for i, n in enumerate(model.output_names) if n not in model.state_names]
        columns += extra
        blocks.append(outs[:, keep])
    # the inputs that drove the simulation, always: the CSV is then training data as it stands
    inputs = [i for i, n in enumerate(model.input_names) if n not in columns]
    columns += [model.input_names[i] for i in inputs]
    blocks.append(u[:, inputs].to(F64))
    if model.system.events:
        columns.append("event")
        blocks.append(_event_marks(t, events)[:, None])
    if req.energy:
        if model.system.ph is None:
            raise _arg_error("--energy", f"--energy needs a port-Hamiltonian model; '{model.name}' is not")
        with torch.enable_grad():
            H = model.hamiltonian(ys).detach()
            diss = model.dissipation(ys, 0.0, u.to(ys.dtype)).detach()
            supplied = supplied_power(model, ys, 0.0, u.to(ys.dtype)).detach()
        columns += ["H", "P_dissipated", "P_supplied"]
        blocks += [H[:, None], diss[:, None], supplied[:, None]]
        if getattr(model, "noise", None) is not None:  # the Ito term of dH: 1/2 tr(g^T Hess(H) g)
            from ..compiler.stochastic import ito_correction

            columns.append("P_ito")
            blocks.append(ito_correction(model, t, ys, u)[:, None])
    return Table(columns, torch.cat(blocks, dim=1).numpy())


def _event_marks(t: torch.Tensor, events: list) -> torch.Tensor:
    """Per output time ``t[k]``: how many events fired in ``(t[k-1], t[k]]`` (``simulate``'s ``event`` column)."""
    marks = torch.zeros(len(t), dtype=F64)
    times = t.tolist()
    for record in events:
        k = next((i for i, s in enumerate(times) if s >= record.time), len(times) - 1)
        marks[k] += 1
    return marks


def write_csv(table: Table, path: str | None) -> None:
    """Write the table as CSV (atomically when a path is given; stdout otherwise), through pyarrow's
    writer, which the data loader's reader mirrors: numbers in their shortest exact form."""
    import pyarrow as pa
    from pyarrow import csv

    rows = np.asarray(table.rows, dtype=np.float64).reshape(-1, len(table.columns))
    arrays = [pa.array(rows[:, 0].astype(np.int64))] + [pa.array(rows[:, j]) for j in range(1, rows.shape[1])]
    buf = io.BytesIO()
    options = csv.WriteOptions(quoting_style="none", quoting_header="none", eol="\n")
    csv.write_csv(pa.Table.from_arrays(arrays, names=list(table.columns)), buf, write_options=options)
    data = buf.getvalue()
    if path is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    atomic_write(path, lambda fh: fh.write(data), binary=True)
