"""Splitting trajectories into training and validation, and cutting them into multiple-shooting windows.

Example:
    >>> import torch
    >>> tr = Trajectories(t=torch.linspace(0, 1, 5).repeat(2, 1), y=torch.zeros(2, 5, 1), u=torch.zeros(2, 5, 0),
    ...                   output_names=("x",), input_names=())
    >>> w = make_windows(tr, 2)
    >>> tuple(w.t.shape), w.traj.tolist(), w.start.tolist(), w.next.tolist()
    ((4, 3), [0, 0, 1, 1], [0, 2, 0, 2], [1, -1, 3, -1])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..core.diagnostics import NodeDslError
from .trajectories import MAX_ERRORS, Trajectories, _err

__all__ = ["Windows", "make_windows", "split_by_trajectory"]


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
    missing: torch.Tensor | None = None  # [W, K+1, n_out] True where the data had no observation

    def __len__(self) -> int:
        return int(self.t.shape[0])


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
    t_parts, y_parts, u_parts, x_parts, traj_idx, starts, nexts, m_parts = [], [], [], [], [], [], [], []
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
        if traj.missing is not None:
            m_parts.append(traj.missing[i][idx])
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
        torch.cat(m_parts) if m_parts else None,
    )
