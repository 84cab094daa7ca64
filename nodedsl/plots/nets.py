"""``nets.png``: each scalar net's learned curve against the truth it implies (when the data came from
a dataset block whose truth model has the same states); see :mod:`nodedsl.train.netcurves`.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> w = np.linspace(-2, 2, 50)
    >>> p = os.path.join(tempfile.mkdtemp(), "nets.png")
    >>> plot_net_curves({"friction": {"input": w, "output": 0.4 * w, "truth": 0.41 * w}}, p)
    >>> os.path.getsize(p) > 0
    True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .training import colors, new_figure

__all__ = ["plot_net_curves"]


def plot_net_curves(curves: dict[str, dict[str, np.ndarray]], path: str | Path) -> None:
    """One panel per net: the learned output over its input along the held-out states (line) and the
    implied true output at the same points (dots), with the largest gap as a share of the truth's range."""
    names = sorted(curves)
    fig = new_figure((4.8 * len(names), 4))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    learned_c, truth_c = colors()[0], colors()[1]
    for ax, name in zip(axes, names, strict=True):
        c = curves[name]
        order = np.argsort(c["input"])
        x, y = c["input"][order], c["output"][order]
        title = f"net {name}"
        if "truth" in c:
            truth = c["truth"][order]
            ax.plot(x, truth, ".", color=truth_c, markersize=3, alpha=0.5, label="truth (implied)")
            span = float(np.ptp(truth)) or 1.0
            title += f": max gap {np.max(np.abs(y - truth)) / span:.1%} of the truth's range"
        ax.plot(x, y, "-", color=learned_c, label="learned")
        ax.set(xlabel=f"{name} input", ylabel=f"{name} output", title=title)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
