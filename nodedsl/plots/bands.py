"""Uncertainty bands of sample paths: mean, median and the 5-95% band of each state over time.

``nodedsl simulate FILE --samples N --seed S`` writes N sample paths of an SDE model as the
trajectories of its long CSV; :func:`plot_bands` draws, per state, the 5-95% band, the median, the
mean and a few of the paths themselves.

Example:
    >>> import tempfile, os
    >>> table = {"trajectory": [0, 0, 1, 1], "t": [0.0, 1.0, 0.0, 1.0], "x": [1.0, 0.5, 1.0, 0.9]}
    >>> out = os.path.join(tempfile.mkdtemp(), "bands.png")
    >>> summary = plot_bands(table, out)
    >>> summary["paths"], [round(float(v), 3) for v in summary["states"]["x"]["mean"]]
    (2, [1.0, 0.7])

Command line (:mod:`nodedsl.cli.bands`)::

    nodedsl simulate examples/ou.node --samples 200 --seed 0 -o paths.csv
    nodedsl bands-plot paths.csv -o bands.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.diagnostics import NodeDslError, Span
from .energy import _columns

__all__ = ["band_statistics", "plot_bands"]

_SKIP = ("trajectory", "t", "H", "P_dissipated", "P_supplied", "P_ito")


def band_statistics(source: Any, states: list[str] | None = None) -> dict:
    """``{"t", "paths", "states": {name: {"mean", "q05", "q50", "q95", "paths"}}}`` over the trajectories.

    Every trajectory must have the same output times (as ``simulate --samples`` writes them).
    """
    cols, where = _columns(source)
    for need in ("trajectory", "t"):
        if need not in cols:
            raise NodeDslError.single("data-error", f"{where} has no column '{need}'", Span(where, 1, 1))
    traj = cols["trajectory"]
    ids = np.unique(traj)
    t = cols["t"][traj == ids[0]]
    if any(int((traj == i).sum()) != len(t) for i in ids):
        raise NodeDslError.single("data-error", f"{where}: trajectories have different lengths", Span(where, 1, 1))
    names = states or [c for c in cols if c not in _SKIP and "(" not in c]
    out: dict = {"t": t, "paths": len(ids), "states": {}}
    for name in names:
        if name not in cols:
            raise NodeDslError.single("data-error", f"{where} has no column '{name}'", Span(where, 1, 1))
        vals = np.stack([cols[name][traj == i] for i in ids])  # [paths, T]
        q05, q50, q95 = np.quantile(vals, [0.05, 0.5, 0.95], axis=0)
        out["states"][name] = {"mean": vals.mean(0), "q05": q05, "q50": q50, "q95": q95, "paths": vals}
    return out


def plot_bands(
    source: Any,
    out: str | Path,
    *,
    states: list[str] | None = None,
    show_paths: int = 5,
    title: str | None = None,
    observed: dict[str, tuple[Any, Any]] | None = None,
    path_label: str = "paths",
) -> dict:
    """Draw the bands of ``source`` (a CSV path, a ``simulate.Table`` or a mapping of columns) to ``out``.

    ``observed``: ``{state: (t, values)}`` drawn as data points over the bands (an ensemble's data).
    """
    from .training import new_figure

    stats = band_statistics(source, states)
    names = list(stats["states"])
    fig = new_figure((7, 2.6 * len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False, sharex=True)
    t = stats["t"]
    for ax, name in zip(axes[:, 0], names):
        s = stats["states"][name]
        ax.fill_between(t, s["q05"], s["q95"], alpha=0.25, color="C0", label="5-95%")
        for k in range(min(show_paths, stats["paths"])):
            ax.plot(t, s["paths"][k], color="0.5", lw=0.6, alpha=0.6, label=path_label if k == 0 else None)
        ax.plot(t, s["q50"], "C0--", lw=1.2, label="median")
        ax.plot(t, s["mean"], "C3", lw=1.5, label="mean")
        if observed and name in observed:
            ax.plot(*observed[name], "k.", ms=3, label="data")
        ax.set_ylabel(name)
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("t")
    fig.suptitle(title or f"{stats['paths']} sample paths")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    summary = {k: v for k, v in stats.items() if k != "states"}
    summary["states"] = {n: {k: v for k, v in s.items() if k != "paths"} for n, s in stats["states"].items()}
    return summary
