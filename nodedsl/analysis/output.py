"""A reachtube as a CSV table, a plot and a text summary.

Example:
    >>> import numpy as np
    >>> from nodedsl.analysis.verify import ReachTube
    >>> tube = ReachTube("M", ("x",), np.array([0.0, 1.0]), np.array([[1.0], [0.5]]), np.array([0.1, 0.05]),
    ...                  0.99, "gotube", "2", 0.1, baseline=np.array([0.1, 0.06]))
    >>> columns, rows = tube_table(tube)
    >>> columns
    ['t', 'x', 'radius', 'lipschitz_radius']
    >>> rows[1].tolist()
    [1.0, 0.5, 0.05, 0.06]
"""

from __future__ import annotations

import csv
import io
import sys

import numpy as np

from ..io.atomic import atomic_write
from .verify import ReachTube

__all__ = ["plot_tube", "summary", "tube_table", "write_tube_csv"]


def tube_table(tube: ReachTube) -> tuple[list[str], np.ndarray]:
    """Columns ``t``, the centre's states, ``radius``, and when present ``lipschitz_radius`` (the Gronwall
    baseline), ``sample_max``, ``lipschitz_constant``, ``property_bound``."""
    columns = ["t", *tube.state_names, "radius"]
    blocks = [tube.times[:, None], tube.center, tube.radii[:, None]]
    extra = {
        "lipschitz_radius": tube.baseline,
        "sample_max": tube.sample_max,
        "lipschitz_constant": tube.lipschitz,
        "property_bound": tube.property.bound if tube.property is not None else None,
    }
    for name, values in extra.items():
        if values is not None:
            columns.append(name)
            blocks.append(np.asarray(values)[:, None])
    return columns, np.concatenate(blocks, axis=1)


def write_tube_csv(tube: ReachTube, path: str | None) -> None:
    """Write :func:`tube_table` as CSV (atomically to ``path``; stdout when None)."""
    columns, rows = tube_table(tube)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([repr(float(v)) for v in row])
    if path is None:
        sys.stdout.write(buf.getvalue())
    else:
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def summary(tube: ReachTube) -> list[str]:
    """Human-readable lines: the method, the radius at the end, the baseline, the property verdict."""
    conf = f"confidence {tube.confidence:g} per output time" if tube.confidence is not None else "deterministic"
    lines = [
        f"{tube.model}: {tube.method} tube from a {tube.norm}-norm ball of radius {tube.radius0:g} over "
        f"t = {tube.times[0]:g}..{tube.times[-1]:g} ({len(tube.times)} output times, {conf})",
        f"  radius: max {np.max(tube.radii):.6g}, at the end {tube.radii[-1]:.6g}",
    ]
    if tube.baseline is not None:
        finite = np.isfinite(tube.baseline)
        ratio = np.mean(tube.baseline[finite] / tube.radii[finite]) if finite.any() else float("inf")
        tail = "" if finite.all() else f"; infinite from t = {tube.times[np.argmin(finite)]:g}"
        lines.append(
            f"  Lipschitz (Gronwall) baseline: at the end {tube.baseline[-1]:.6g}, mean ratio {ratio:.3g}{tail}"
        )
    p = tube.property
    if p is not None:
        if p.verdict == "holds":
            lines.append(f"  property {p.text}: holds over the tube (confidence {p.confidence:g} per output time)")
        elif p.verdict == "violated" and p.counterexample is not None:
            cex = p.counterexample
            x0 = ", ".join(f"{n}={v:.6g}" for n, v in zip(tube.state_names, cex.x0))
            lines.append(f"  property {p.text}: violated at t = {cex.t:g} by the trajectory from {x0}")
        else:
            lines.append(f"  property {p.text}: unknown (the tube reaches where it fails; no sample violates it)")
    return lines


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tube(
    tube: ReachTube, path: str, trajectories: np.ndarray | None = None, empirical: np.ndarray | None = None
) -> None:
    """Draw the tube: the phase plane with its balls (two states) or each state's band, and the radius
    against time beside the baseline. ``trajectories [K, m, n]``: sampled trajectories to overlay;
    ``empirical [K]``: the largest distance of Monte-Carlo trajectories (default: of ``trajectories``)."""
    plt = _pyplot()
    fig, (ax, ar) = plt.subplots(1, 2, figsize=(11, 4.5))
    n = len(tube.state_names)
    if n == 2:
        _phase(ax, tube, trajectories)
    else:
        for i in range(min(n, 4)):
            c = tube.center[:, i]
            ax.fill_between(tube.times, c - tube.radii, c + tube.radii, alpha=0.25)
            ax.plot(tube.times, c, label=tube.state_names[i])
        ax.set_xlabel("t")
        ax.set_title("centre +- radius (the tube's projection)")
        ax.legend(fontsize=8)
    ar.plot(tube.times, tube.radii, label=f"{tube.method} radius")
    if tube.sample_max is not None:
        ar.plot(tube.times, tube.sample_max, ":", label="largest sampled distance")
    if tube.baseline is not None:
        finite = np.isfinite(tube.baseline)
        ar.plot(tube.times[finite], tube.baseline[finite], "--", label="Lipschitz (Gronwall)")
    if empirical is None and trajectories is not None:
        diff = trajectories - tube.center[:, None, :]
        empirical = (np.linalg.norm(diff, axis=2) if tube.norm == "2" else np.abs(diff).max(axis=2)).max(axis=1)
    if empirical is not None:
        ar.plot(tube.times, empirical, "k.", ms=2, label="Monte-Carlo max distance")
    ar.set_yscale("log")
    ar.set_xlabel("t")
    ar.set_title("tube radius")
    ar.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110), binary=True)
    plt.close(fig)


def _phase(ax, tube: ReachTube, trajectories) -> None:
    from matplotlib.patches import Circle, Rectangle

    if trajectories is not None:
        for j in range(min(trajectories.shape[1], 200)):
            ax.plot(trajectories[:, j, 0], trajectories[:, j, 1], color="0.7", lw=0.4)
    for c, r in zip(tube.center, tube.radii):
        shape = Circle(c, r) if tube.norm == "2" else Rectangle(c - r, 2 * r, 2 * r)
        shape.set(fill=False, color="tab:blue", lw=0.6)
        ax.add_patch(shape)
    ax.plot(tube.center[:, 0], tube.center[:, 1], color="tab:red", lw=1, label="centre")
    p = tube.property
    if p is not None and p.counterexample is not None:
        ax.plot(*p.counterexample.trajectory.T, color="k", lw=1, label="counterexample")
    ax.set_xlabel(tube.state_names[0])
    ax.set_ylabel(tube.state_names[1])
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title("phase plane: the tube's balls at the output times")
    ax.legend(fontsize=8)
