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


@dataclass(frozen=True, slots=True)
class RadauIIA5:
    """Radau IIA, 3 stages, order 5, in the transformed form of Hairer-Wanner's RADAU5.

    ``T`` maps the stage increments ``Z`` to ``W = T^-1 Z``, where ``A^-1`` becomes block diagonal:
    one real eigenvalue ``mu_real`` and a complex pair ``alpha +- i beta``; ``E`` gives the embedded
    error estimate and ``P`` the collocation polynomial (dense output). Values as in RADAU5 (and
    scipy's ``Radau``); ``tests/test_stiff.py`` checks ``T^-1 A^-1 T`` against the Butcher matrix.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    t: tuple[tuple[float, ...], ...]
    ti: tuple[tuple[float, ...], ...]
    mu_real: float
    alpha: float
    beta: float
    e: tuple[float, ...]
    p: tuple[tuple[float, ...], ...]


_S6 = math.sqrt(6.0)
RADAU5 = RadauIIA5(
    c=((4 - _S6) / 10, (4 + _S6) / 10, 1.0),
    a=(
        ((88 - 7 * _S6) / 360, (296 - 169 * _S6) / 1800, (-2 + 3 * _S6) / 225),
        ((296 + 169 * _S6) / 1800, (88 + 7 * _S6) / 360, (-2 - 3 * _S6) / 225),
        ((16 - _S6) / 36, (16 + _S6) / 36, 1 / 9),
    ),
    t=(
        (0.09443876248897524, -0.14125529502095421, 0.03002919410514742),
        (0.25021312296533332, 0.20412935229379994, -0.38294211275726192),
        (1.0, 1.0, 0.0),
    ),
    ti=(
        (4.17871859155190428, 0.32768282076106237, 0.52337644549944951),
        (-4.17871859155190428, -0.32768282076106237, 0.47662355450055044),
        (0.50287263494578682, -2.57192694985560522, 0.59603920482822492),
    ),
    mu_real=3 + 3 ** (2 / 3) - 3 ** (1 / 3),
    alpha=3 + 0.5 * (3 ** (1 / 3) - 3 ** (2 / 3)),
    beta=0.5 * (3 ** (5 / 6) + 3 ** (7 / 6)),
    e=((-13 - 7 * _S6) / 3, (-13 + 7 * _S6) / 3, -1 / 3),
    p=(
        (13 / 3 + 7 * _S6 / 3, -23 / 3 - 22 * _S6 / 3, 10 / 3 + 5 * _S6),
        (13 / 3 - 7 * _S6 / 3, -23 / 3 + 22 * _S6 / 3, 10 / 3 - 5 * _S6),
        (1 / 3, -8 / 3, 10 / 3),
    ),
)


@dataclass(frozen=True, slots=True)
class RosenbrockTableau:
    """A Rosenbrock method in Hairer-Wanner's ``u``-form (``rodas.f``).

    Stage i solves ``(I/(h gamma) - J) u_i = f(t + c_i h, y + sum_j a_ij u_j) + sum_j g_ij u_j / h
    + h d_i f_t``; the step is ``y + sum_i m_i u_i`` and the last stage ``u_s`` is the error estimate
    (the method is stiffly accurate and its embedded solution is the stage before).
    """

    name: str
    order: int
    gamma: float
    c: tuple[float, ...]
    d: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    g: tuple[tuple[float, ...], ...]
    m: tuple[float, ...]


_R4A5 = (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)
# RODAS4 (Hairer-Wanner, Solving ODEs II, Sec. IV.7; coefficients of rodas.f, METH = 1).
RODAS4 = RosenbrockTableau(
    name="rodas4",
    order=4,
    gamma=0.25,
    c=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.3620000000000023e-01, 0.0, 0.0),
    a=(
        (),
        (1.544,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        _R4A5,
        (*_R4A5, 1.0),
    ),
    g=(
        (),
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054),
    ),
    m=(*_R4A5, 1.0, 1.0),
)
