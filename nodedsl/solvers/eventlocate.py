"""Locating an event's crossing inside one interval (used by :mod:`nodedsl.solvers.events`).

First on the cubic Hermite interpolant of the interval (margins only, no solver calls), then one
Newton polish on the solver's own solution, else Illinois regula falsi in a small bracket around
the guess, widened until it brackets. Trial states come from ``ctx.advance`` (a partial step of a
fixed-step method, an error-controlled solve of an adaptive one).

Example:
    >>> import torch
    >>> from nodedsl.core.events import Compare, Event
    >>> from nodedsl.solvers import make_solver
    >>> from nodedsl.solvers.events import solve_events
    >>> ev = Event(lambda t, x: x - 0.5, Compare(0), lambda t, x: x)   # x = t crosses 0.5
    >>> res = solve_events(lambda t, x: torch.ones_like(x), torch.zeros(1, 1, dtype=torch.float64),
    ...                    torch.tensor([0.0, 1.0], dtype=torch.float64), events=[ev],
    ...                    solver=make_solver("euler", step=0.3))
    >>> round(res.events[0].time, 12)
    0.5
"""

from __future__ import annotations

from typing import Any

import torch

from .eventcond import Event, leaf_nodes, leaf_truth, truth


def _bracket(ev: Event, lo: float, hi: float, m_lo: torch.Tensor, m_hi: torch.Tensor) -> int:
    """The margin column to root-find on: the one leaf that flipped between ``lo`` and ``hi``, else -1."""
    nodes = leaf_nodes(ev.condition)
    flips = [n for n in nodes if bool(leaf_truth(n, m_lo[None]) != leaf_truth(n, m_hi[None]))]
    return flips[0].index if len(flips) == 1 else -1


def _illinois(ev: Event, at: Any, lo: float, hi: float, m_lo: Any, m_hi: Any, tol: float) -> float:
    """Shrink ``[lo, hi]`` (condition false at lo, true at hi) to width ``tol``; returns ``hi``.

    Regula falsi with the Illinois rule on the single flipped margin, bisection otherwise;
    ``at(tau)`` gives the margins at ``tau``.
    """
    side = 0
    for _ in range(200):
        if hi - lo <= tol:
            break
        leaf = _bracket(ev, lo, hi, m_lo, m_hi)
        tau = 0.5 * (lo + hi)
        if leaf >= 0 and abs(side) < 6:
            # Illinois: the end kept twice or more in a row counts half as much each time
            f_lo = float(m_lo[leaf]) * 0.5 ** max(0, side - 1)
            f_hi = float(m_hi[leaf]) * 0.5 ** max(0, -side - 1)
            if f_hi != f_lo:
                tau = lo + (hi - lo) * (-f_lo) / (f_hi - f_lo)
        if not lo < tau < hi:
            tau = 0.5 * (lo + hi)
        m_tau = at(tau)
        if bool(truth(ev.condition, m_tau[None])[0]):
            hi, m_hi, side = tau, m_tau, (side + 1 if side > 0 else 1)
            probe = hi - 0.5 * tol
        else:
            lo, m_lo, side = tau, m_tau, (side - 1 if side < 0 else -1)
            probe = lo + 0.5 * tol
        if leaf >= 0 and lo < probe < hi and _near(m_lo, m_hi, leaf, lo, hi, m_tau, tol):
            m_p = at(probe)
            if bool(truth(ev.condition, m_p[None])[0]):
                hi, m_hi = probe, m_p
            else:
                lo, m_lo = probe, m_p
    return hi


def _near(m_lo: Any, m_hi: Any, leaf: int, lo: float, hi: float, m_tau: Any, tol: float) -> bool:
    """Whether the secant slope puts the root within ``tol / 2`` of the last point."""
    slope = abs(float(m_hi[leaf]) - float(m_lo[leaf])) / max(hi - lo, 1e-300)
    return slope > 0 and abs(float(m_tau[leaf])) / slope < 0.5 * tol


def locate(ctx: Any, k: int, xa: torch.Tensor, a: float, b: float, xb: torch.Tensor) -> tuple[float, int]:
    """The crossing time of event ``k`` in ``[a, b]`` (on the side where the condition holds) and its leaf.

    First on the cubic Hermite interpolant of the interval (margins only, no solver calls), then
    on the solver's own solution in a small bracket around that guess, widened until it brackets.
    Returns ``(tau, leaf column)``; the column is ``-1`` if no single comparison flipped.
    """
    ev = ctx.events[k]
    with torch.no_grad():
        fa, fb, h = ctx.field(ctx.time(a), xa), ctx.field(ctx.time(b), xb), b - a

        def cubic(tau: float) -> torch.Tensor:
            s = (tau - a) / h
            x = (
                (2 * s**3 - 3 * s**2 + 1) * xa
                + (s**3 - 2 * s**2 + s) * h * fa
                + (-2 * s**3 + 3 * s**2) * xb
                + (s**3 - s**2) * h * fb
            )
            return ev.margins(ctx.time(tau), x)[0]

        def exact(tau: float) -> torch.Tensor:
            return ev.margins(ctx.time(tau), ctx.advance(xa, a, tau))[0]

        m_a, m_b = ev.margins(ctx.time(a), xa)[0], ev.margins(ctx.time(b), xb)[0]
        tol = ctx.tol * max(1.0, abs(b))
        guess = _illinois(ev, cubic, a, b, m_a, m_b, tol)
        leaf = _bracket(ev, a, b, m_a, m_b)
        quick = _polish(ctx, ev, exact, leaf, guess, (a, b), float(m_b[leaf] - m_a[leaf]) / h if leaf >= 0 else 0.0)
        if quick is not None:
            return quick, leaf
        lo, hi, m_lo, m_hi = a, b, m_a, m_b
        w = 1e-7 * h + tol
        while w < h:
            t0, t1 = max(a, guess - w), min(b, guess + w)
            m0, m1 = exact(t0) if t0 > a else m_a, exact(t1) if t1 < b else m_b
            c0, c1 = (bool(truth(ev.condition, m[None])[0]) for m in (m0, m1))
            if not c0 and c1:
                lo, hi, m_lo, m_hi = t0, t1, m0, m1
                break
            if c0:  # the crossing is left of t0: keep what we learned, widen
                hi, m_hi = t0, m0
            else:
                lo, m_lo = t1, m1
            w *= 64
        tau = _illinois(ev, exact, lo, hi, m_lo, m_hi, tol)
        return tau, _bracket(ev, lo, hi, m_lo, m_hi)


def _polish(ctx: Any, ev: Event, exact: Any, leaf: int, guess: float, ab: tuple, slope: float) -> float | None:
    """The guess itself, or one Newton step from it, when the solver's solution puts the crossing
    within ``tol`` of it (on the side where the condition holds); None otherwise."""
    if leaf < 0 or slope <= 0:
        return None
    tol = ctx.tol * max(1.0, abs(ab[1]))
    m = exact(guess)
    dist = -float(m[leaf]) / slope
    if abs(dist) >= tol:
        return None
    if bool(truth(ev.condition, m[None])[0]):
        return guess
    probe = guess + dist + 0.5 * tol
    if ab[0] < probe <= ab[1] and bool(truth(ev.condition, exact(probe)[None])[0]):
        return probe
    return None
