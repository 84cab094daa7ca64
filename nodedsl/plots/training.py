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

__all__ = ["colors", "new_figure", "plot_fit", "plot_losses"]


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


def plot_losses(history: Sequence[dict], path: str | Path) -> None:
    """Training and validation loss per epoch (log scale) and, if any, each constraint's violation."""
    epochs = [h["epoch"] for h in history]
    names = sorted({k for h in history for k in (h.get("violations") or {})})
    fig = new_figure((11 if names else 6, 4))
    axes = fig.subplots(1, 2 if names else 1, squeeze=False)
    ax = axes[0, 0]
    ax.plot(epochs, _positive(h.get("train_loss") for h in history), label="train")
    if any(h.get("val_loss") is not None for h in history):
        ax.plot(epochs, _positive(h.get("val_loss") for h in history), label="validation")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("loss")
    ax.legend()
    if names:
        ax = axes[0, 1]
        for name in names:
            ax.plot(epochs, _positive((h.get("violations") or {}).get(name) for h in history), label=name)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title("constraint violation")
        ax.legend()
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
