"""Brownian paths on a known step grid: what fixed-step SDE solvers query, drawn in one go.

torchsde's ``BrownianInterval`` answers queries on any interval consistently (what its adaptive
stepping and adjoint need), at about 3 ms per query on a CPU. Fixed steps only ever ask for
increments between neighbouring points of the step grid (forward, and backward for the adjoint),
so :class:`GridBrownian` draws every increment up front from a seeded generator and answers by a
lookup: ``W(tb) - W(ta)`` with ``ta``, ``tb`` snapped to the nearest grid points.

Example:
    >>> import torch
    >>> bm = GridBrownian([0.0, 0.5, 1.0], size=(2, 1), seed=0, dtype=torch.float64)
    >>> torch.equal(bm(0.0, 1.0), bm(0.0, 0.5) + bm(0.5, 1.0)), bm(0.0, 1.0).shape
    (True, torch.Size([2, 1]))
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch
from torchsde import BaseBrownian


class GridBrownian(BaseBrownian):
    """A Brownian motion of shape ``size`` = (batch, channels) sampled on ``grid`` (increasing times)."""

    def __init__(
        self, grid: Sequence[float], size: tuple[int, int], seed: int, dtype=torch.float32, device=None
    ) -> None:
        g = torch.Generator().manual_seed(int(seed))
        times = torch.tensor(list(grid), dtype=torch.float64)
        dt = (times[1:] - times[:-1]).clamp_min(0).sqrt()
        steps = torch.randn(len(grid) - 1, *size, generator=g, dtype=torch.float64) * dt[:, None, None]
        w = torch.cat([torch.zeros(1, *size, dtype=torch.float64), steps.cumsum(0)])
        self._grid = times
        self._times = times.tolist()
        self._w = w.to(dtype=dtype, device=device)
        self._shape = tuple(size)

    def _index(self, t) -> int:
        t, grid = float(t), self._times
        i = bisect.bisect_left(grid, t)
        if i >= len(grid) or (i > 0 and t - grid[i - 1] < grid[i] - t):
            i -= 1
        return i

    def __call__(self, ta, tb=None, return_U=False, return_A=False):
        if return_U or return_A:
            raise RuntimeError("GridBrownian has no Levy area; srk uses torchsde's BrownianInterval")
        if tb is None:
            return self._w[self._index(ta)]
        return self._w[self._index(tb)] - self._w[self._index(ta)]

    def __repr__(self) -> str:
        return f"GridBrownian(points={len(self._grid)}, shape={self._shape})"

    @property
    def dtype(self):
        return self._w.dtype

    @property
    def device(self):
        return self._w.device

    @property
    def shape(self):
        return self._shape

    @property
    def levy_area_approximation(self):
        return "none"
