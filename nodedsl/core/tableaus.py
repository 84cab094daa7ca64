"""Butcher tableaus as plain data (explicit and diagonally implicit Runge-Kutta).

Adding an explicit or DIRK method is adding one entry here plus one registry
line; the step code never changes.

Example:
    >>> RK4.order, RK4.stages, RK4.c
    (4, 4, (0.0, 0.5, 0.5, 1.0))
    >>> IMPLICIT_MIDPOINT.a
    ((0.5,),)
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ButcherTableau:
    """``a`` is lower triangular (row i has i+1 entries; the diagonal is 0 for explicit methods)."""

    name: str
    order: int
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def explicit(self) -> bool:
        return all(row[i] == 0.0 for i, row in enumerate(self.a))

    def check(self) -> None:
        """Consistency conditions every tableau here must meet (used by the tests)."""
        assert len(self.a) == len(self.b) == len(self.c)
        assert abs(sum(self.b) - 1.0) < 1e-14
        for row, ci in zip(self.a, self.c):
            assert abs(sum(row) - ci) < 1e-14


EULER = ButcherTableau("euler", 1, ((0.0,),), (1.0,), (0.0,))
MIDPOINT = ButcherTableau("midpoint", 2, ((0.0,), (0.5, 0.0)), (0.0, 1.0), (0.0, 0.5))
HEUN = ButcherTableau("heun", 2, ((0.0,), (1.0, 0.0)), (0.5, 0.5), (0.0, 1.0))
RALSTON = ButcherTableau("ralston", 2, ((0.0,), (2 / 3, 0.0)), (0.25, 0.75), (0.0, 2 / 3))
RK4 = ButcherTableau(
    "rk4",
    4,
    ((0.0,), (0.5, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 1.0, 0.0)),
    (1 / 6, 1 / 3, 1 / 3, 1 / 6),
    (0.0, 0.5, 0.5, 1.0),
)
# Kutta's 3/8 rule: what torchdiffeq's method="rk4" actually runs.
RK38 = ButcherTableau(
    "rk38",
    4,
    ((0.0,), (1 / 3, 0.0), (-1 / 3, 1.0, 0.0), (1.0, -1.0, 1.0, 0.0)),
    (1 / 8, 3 / 8, 3 / 8, 1 / 8),
    (0.0, 1 / 3, 2 / 3, 1.0),
)

IMPLICIT_EULER = ButcherTableau("implicit_euler", 1, ((1.0,),), (1.0,), (1.0,))
IMPLICIT_MIDPOINT = ButcherTableau("implicit_midpoint", 2, ((0.5,),), (1.0,), (0.5,))

# Alexander's 2-stage SDIRK: order 2, L-stable (damps stiff modes completely).
_G2 = 1.0 - 1.0 / math.sqrt(2.0)
SDIRK2 = ButcherTableau("sdirk2", 2, ((_G2,), (1.0 - _G2, _G2)), (1.0 - _G2, _G2), (_G2, 1.0))

# Crouzeix's 2-stage SDIRK: order 3, A-stable (not L-stable).
_G3 = (3.0 + math.sqrt(3.0)) / 6.0
SDIRK3 = ButcherTableau("sdirk3", 3, ((_G3,), (1.0 - 2.0 * _G3, _G3)), (0.5, 0.5), (_G3, 1.0 - _G3))

EXPLICIT = {tab.name: tab for tab in (EULER, MIDPOINT, HEUN, RALSTON, RK4, RK38)}
DIRK = {tab.name: tab for tab in (IMPLICIT_EULER, IMPLICIT_MIDPOINT, SDIRK2, SDIRK3)}
