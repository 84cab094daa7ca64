"""PNG plots of a run (matplotlib figures on the Agg canvas, no pyplot state): loss curves and data against
prediction.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "loss.png")
    >>> plot_losses([{"epoch": 1, "train_loss": 1.0, "val_loss": 2.0, "violations": {"c": 0.5}}], p)
    >>> os.path.getsize(p) > 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["colors", "new_figure", "plot_fit", "plot_losses", "plot_phase", "training_events"]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure drawn by the Agg canvas: no pyplot, no backend switch, nothing global touched.

    Example:
        >>> type(new_figure((2, 2)).canvas).__name__
        'FigureCanvasAgg'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def colors() -> list[str]:
    """The color cycle of the current matplotlib style (read, not changed)."""
    import matplotlib

    return list(matplotlib.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3", "C4"]))


def _positive(values) -> np.ndarray:
    arr = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    arr[~np.isfinite(arr) | (arr <= 0)] = np.nan
    return arr


def training_events(history: Sequence[dict], config: dict | None) -> dict[str, list[int]]:
    """Epochs where training changed course: augmented-Lagrangian updates (``al update``) and the end
    of the horizon curriculum (``curriculum end``), from the run's config; loss jumps are expected there.

    Example:
        >>> h = [{"epoch": e, "violations": {"c": 0.1}} for e in range(1, 7)]
        >>> cfg = {"epochs": 6, "constraints": {"update_every": 2}, "horizon": {"kind": "grow", "until": 0.5}}
        >>> training_events(h, cfg)
        {'al update': [2, 4, 6], 'curriculum end': [3]}
    """
    cfg = config or {}
    epochs = [h["epoch"] for h in history]
    out: dict[str, list[int]] = {}
    every = (cfg.get("constraints") or {}).get("update_every")
    counts = [h.get("al_updates") for h in history]
    if all(c is not None for c in counts) and counts:  # updates counted in optimizer steps: as recorded
        marks = [e for e, a, b in zip(epochs, [0] + counts[:-1], counts) if b > a]
        if marks:
            out["al update"] = marks
    elif every and any(h.get("violations") for h in history):
        out["al update"] = [e for e in epochs if e % int(every) == 0]
    horizon = cfg.get("horizon") or {}
    if horizon.get("kind") == "grow" and cfg.get("epochs"):
        end = int(np.ceil(float(horizon.get("until", 0.5)) * int(cfg["epochs"])))
        if epochs and epochs[0] <= end < epochs[-1]:
            out["curriculum end"] = [end]
    return out


def _mark(ax, events: dict[str, list[int]], legend: bool) -> None:
    styles = {"al update": dict(color="0.6", ls=":", lw=0.8), "curriculum end": dict(color="k", ls="--", lw=1)}
    for name, at in events.items():
        for k, e in enumerate(at):
            ax.axvline(e, label=name if (legend and k == 0) else None, **styles.get(name, {}))


def plot_losses(history: Sequence[dict], path: str | Path, config: dict | None = None) -> None:
    """Loss per epoch (log scale); with constraints, each violation (symlog: zero stays visible) and the
    penalty and multipliers of the augmented Lagrangian. Events of ``training_events`` are marked."""
    epochs = [h["epoch"] for h in history]
    names = sorted({k for h in history for k in (h.get("violations") or {})})
    events = training_events(history, config)
    fig = new_figure((15 if names else 6.5, 4.2))
    axes = fig.subplots(1, 3 if names else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(epochs, _positive(h.get("train_loss") for h in history), label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, _positive(h.get("val_loss") for h in history), label="validation")
    _mark(ax, events, legend=True)
    ax.set_yscale("log")
    ax.set(xlabel="epoch", ylabel="loss (mean squared error)", title="loss")
    ax.legend(fontsize="small")
    if names:
        ax = axes[1]
        worst = 0.0
        for name in names:
            v = np.array([float((h.get("violations") or {}).get(name) or 0.0) for h in history])
            worst = max(worst, float(np.nanmax(np.abs(v))) if len(v) else 0.0)
            ax.plot(epochs, v, label=name)
        _mark(ax, events, legend=False)
        ax.set_yscale("symlog", linthresh=max(worst * 1e-4, 1e-12))
        ax.set_ylim(bottom=0)  # violations are never negative; symlog keeps an exact zero on the axis
        ax.set(xlabel="epoch", ylabel="violation (mean, symlog)", title="constraint violation")
        ax.legend(fontsize="small")
        ax = axes[2]
        ax.plot(epochs, _positive(h.get("mu") for h in history), "k-", label="penalty mu")
        for name in names:
            lam = [(h.get("multipliers") or {}).get(name) for h in history]
            if any(v is not None for v in lam):
                ax.plot(epochs, [np.nan if v is None else v for v in lam], label=f"max |multiplier| {name}")
        _mark(ax, events, legend=False)
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_ylim(bottom=0)
        ax.set(xlabel="epoch", ylabel="value (symlog)", title="augmented Lagrangian")
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_fit(
    t: np.ndarray,
    y: np.ndarray,
    yhat: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    lengths: np.ndarray | None = None,
    ids: Sequence | None = None,
    max_traj: int = 3,
) -> None:
    """Data (dots) against the rollout from each trajectory's first point (lines), per output."""
    n_out = len(names)
    count = min(max_traj, t.shape[0])
    fig = new_figure((8, 2.4 * max(n_out, 1) + 0.6))
    axes = fig.subplots(n_out, 1, squeeze=False, sharex=True)
    cycle = colors()
    for j, name in enumerate(names):
        ax = axes[j, 0]
        for i in range(count):
            L = int(lengths[i]) if lengths is not None else t.shape[1]
            c = cycle[i % len(cycle)]
            label = f"trajectory {ids[i] if ids is not None else i}"
            ax.plot(t[i, :L], y[i, :L, j], ".", color=c, markersize=3, alpha=0.6)
            ax.plot(t[i, :L], yhat[i, :L, j], "-", color=c, label=label)
        ax.set_ylabel(name)
        if j == 0:
            ax.legend(fontsize="small")
            ax.set_title("data (dots) and model rollout (lines)")
    axes[-1, 0].set_xlabel("t")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_phase(
    y: np.ndarray,
    yhat: np.ndarray,
    names: Sequence[str],
    path: str | Path,
    lengths: np.ndarray | None = None,
    ids: Sequence | None = None,
    max_traj: int = 3,
) -> None:
    """A phase portrait of a model with two outputs: data (dots) and rollout (lines), numbered as in
    ``plot_fit``; the first point of each trajectory is circled."""
    fig = new_figure((5.5, 5))
    ax = fig.subplots()
    cycle = colors()
    for i in range(min(max_traj, y.shape[0])):
        L = int(lengths[i]) if lengths is not None else y.shape[1]
        c = cycle[i % len(cycle)]
        ax.plot(y[i, :L, 0], y[i, :L, 1], ".", color=c, markersize=3, alpha=0.6)
        ax.plot(yhat[i, :L, 0], yhat[i, :L, 1], "-", color=c, label=f"trajectory {ids[i] if ids is not None else i}")
        ax.plot(y[i, 0, 0], y[i, 0, 1], "o", color=c, mfc="none")
    ax.set(xlabel=names[0], ylabel=names[1], title="phase portrait: data (dots) and rollout (lines)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
