"""Energy accounting of a port-Hamiltonian simulation: ``H``, the power flows, and the balance residual.

``nodedsl simulate FILE --energy`` adds the columns ``H``, ``P_dissipated`` (``grad H^T R grad H``) and
``P_supplied`` (``y^T u``) to its CSV. Along an exact solution

    H(t) - H(0) = int_0^t P_supplied - int_0^t P_dissipated,

so the **balance residual** ``r(t) = H(t) - H(0) + int P_dissipated - int P_supplied`` (integrals by the
trapezoid rule on the output grid) measures the solver's and the quadrature's error only: a structural
error (a non-skew ``J``, an ``R`` that is not PSD) would show as a residual that grows with ``t``.

Example:
    >>> import tempfile, os
    >>> table = {"t": [0.0, 0.5, 1.0], "H": [1.0, 0.8, 0.7], "P_dissipated": [0.4, 0.3, 0.2],
    ...          "P_supplied": [0.0, 0.0, 0.0]}
    >>> out = os.path.join(tempfile.mkdtemp(), "energy.png")
    >>> summary = plot_energy(table, out)
    >>> os.path.isfile(out), round(summary["max_abs_residual"], 4)
    (True, 0.025)

Command line (:mod:`nodedsl.cli.energy`)::

    nodedsl simulate examples/msd.node -m MassSpringDamperTruth --energy --input force="sin(t)" -o sim.csv
    nodedsl energy-plot sim.csv -o energy.png
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..core.diagnostics import NodeDslError, Span
from ..io.tables import read_columns

__all__ = ["REQUIRED", "energy_balance", "plot_energy"]

REQUIRED = ("t", "H", "P_dissipated", "P_supplied")


def _columns(source: Any) -> tuple[dict[str, np.ndarray], str]:
    """Columns of a CSV path, a ``simulate.Table`` (``columns``, ``rows``) or a mapping name -> values."""
    if isinstance(source, (str, Path)):
        return read_columns(source), str(source)
    if hasattr(source, "columns") and hasattr(source, "rows"):
        rows = np.asarray(source.rows, dtype=float).reshape(-1, len(source.columns))
        return {c: rows[:, j] for j, c in enumerate(source.columns)}, "<table>"
    if isinstance(source, Mapping):
        return {str(k): np.asarray(v, dtype=float).reshape(-1) for k, v in source.items()}, "<table>"
    raise TypeError(f"expected a CSV path, a simulate Table or a mapping of columns, got {type(source).__name__}")


def _cumtrapz(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.zeros_like(y)
    if len(y) > 1:
        out[1:] = np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(t))
    return out


def energy_balance(source: Any) -> list[dict[str, np.ndarray]]:
    """Per trajectory (the ``trajectory`` column, if any): ``t``, ``H``, ``P_dissipated``, ``P_supplied``,
    the cumulative ``dissipated`` and ``supplied`` energies (trapezoid rule) and the ``residual``
    ``H - H(0) + dissipated - supplied``. Missing columns are a ``data-error`` naming them."""
    cols, where = _columns(source)
    missing = [c for c in REQUIRED if c not in cols]
    if missing:
        line = 0 if where == "<table>" else 1  # the header line of a file
        raise NodeDslError.single(
            "data-error",
            f"{where} lacks the column(s) {', '.join(missing)}",
            Span(where, line, 1 if line else 0),
            "simulate a port-Hamiltonian model with `nodedsl simulate ... --energy`",
        )
    ids = cols.get("trajectory", np.zeros(len(cols["t"])))
    out = []
    for tid in dict.fromkeys(ids.tolist()):
        rows = ids == tid
        t = cols["t"][rows]
        order = np.argsort(t, kind="stable")
        t = t[order]
        H, pd, ps = (cols[c][rows][order] for c in ("H", "P_dissipated", "P_supplied"))
        dissipated, supplied = _cumtrapz(pd, t), _cumtrapz(ps, t)
        out.append(
            {
                "trajectory": tid,
                "t": t,
                "H": H,
                "P_dissipated": pd,
                "P_supplied": ps,
                "dissipated": dissipated,
                "supplied": supplied,
                "residual": H - H[0] + dissipated - supplied,
            }
        )
    return out


def plot_energy(
    csv_path_or_table: Any, out_png: str | Path, *, title: str | None = None, max_trajectories: int = 5
) -> dict[str, float]:
    """Plot ``H``, the dissipated and supplied power and the energy-balance residual; write ``out_png``.

    Three panels sharing the time axis: ``H(t)`` with the balance prediction ``H(0) + int P_sup -
    int P_diss`` (dashed); ``P_dissipated`` and ``P_supplied``; the residual. Returns a summary:
    ``trajectories``, ``max_abs_residual``, ``relative_residual`` (divided by the largest energy scale:
    ``max |H|`` or the larger of the integrated flows), ``H0``, ``H_end``, ``dissipated``, ``supplied``
    (totals of the first trajectory).
    """
    from .training import colors as color_cycle
    from .training import new_figure

    parts = energy_balance(csv_path_or_table)
    fig = new_figure((7.5, 7.5))
    axes = fig.subplots(3, 1, sharex=True)
    colors = color_cycle()
    for k, p in enumerate(parts[:max_trajectories]):
        c = colors[k % len(colors)]
        lab = f" (trajectory {p['trajectory']:g})" if len(parts) > 1 else ""
        axes[0].plot(p["t"], p["H"], color=c, label="H" + lab)
        axes[0].plot(
            p["t"],
            p["H"][0] + p["supplied"] - p["dissipated"],
            color=c,
            ls="--",
            lw=1,
            label="H(0) + ∫P_sup − ∫P_diss" + lab,
        )
        axes[1].plot(p["t"], p["P_dissipated"], color=c, label="P_dissipated" + lab)
        axes[1].plot(p["t"], p["P_supplied"], color=c, ls=":", label="P_supplied" + lab)
        axes[2].plot(p["t"], p["residual"], color=c, label="residual" + lab)
    axes[0].set_ylabel("energy")
    axes[1].set_ylabel("power")
    axes[2].set_ylabel("H − H(0) + ∫P_diss − ∫P_sup")
    axes[2].set_xlabel("t")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[1].axhline(0, color="k", lw=0.5)
    fig.suptitle(title or "energy accounting")
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    worst = max(float(np.abs(p["residual"]).max()) for p in parts)
    scale = max(
        max(float(np.abs(p["H"]).max()), float(np.abs(p["dissipated"]).max()), float(np.abs(p["supplied"]).max()))
        for p in parts
    )
    first = parts[0]
    return {
        "trajectories": len(parts),
        "max_abs_residual": worst,
        "relative_residual": worst / scale if scale else 0.0,
        "H0": float(first["H"][0]),
        "H_end": float(first["H"][-1]),
        "dissipated": float(first["dissipated"][-1]),
        "supplied": float(first["supplied"][-1]),
    }
