"""Integration with events: zero crossings located, states reset, gradients through event times.

``solve_events`` integrates like :func:`~nodedsl.solvers.solve` and watches each
:class:`~nodedsl.solvers.eventcond.Event`. Conditions are checked at every step of a fixed-step
method (its step grid) and at every output time of an adaptive one; a row whose condition went
from false to true inside an interval gets its crossing located by regula falsi (Illinois) on
the margin that flipped, bisection where more than one flipped. Each trial point is a partial
solve from the start of the interval: for a fixed-step method one step of the same method
("bisection of the step"), for an adaptive one an error-controlled solve, so the crossing is
as accurate as the solver and the location itself to ``tol`` in time.

Gradients (``torch.is_grad_enabled()``): the event time ``tau`` is made differentiable by the
implicit function theorem, as torchdiffeq's ``odeint_event`` does. With ``m`` the margin that
crossed and ``x(tau*)`` the state computed with its graph,
``delta = -(m - m.detach()) / (dm/dt)`` is zero in value and has the gradient of ``tau``;
``x_event = x(tau*) + f(tau*) delta`` carries ``dx/dtau``, the reset is applied to it, and the
state that continues is ``x_plus - f(x_plus) delta`` (the flow after the event starts later
when ``tau`` grows). So a loss on later states differentiates through event times and resets.

A row that fires more than ``max_events`` times in one solve raises :class:`SolverError`: the
model is probably Zeno (infinitely many events in finite time, as a bouncing ball at rest).
Crossings that come and go between two check points are not seen; a smaller step (or, for an
adaptive method, a finer output grid) sees them.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver
    >>> from nodedsl.solvers.eventcond import All, Compare, Event
    >>> field = lambda t, x: torch.stack([x[:, 1], torch.full_like(x[:, 1], -9.81)], -1)
    >>> bounce = Event(lambda t, x: -x, All((Compare(0), Compare(1, strict=True))),
    ...                lambda t, x: torch.stack([x[:, 0], -0.8 * x[:, 1]], -1))
    >>> x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> t = torch.linspace(0, 1, 11, dtype=torch.float64)
    >>> res = solve_events(field, x0, t, events=[bounce], solver=make_solver("rk4", step=0.01))
    >>> [round(r.time, 9) for r in res.events]   # sqrt(2 / 9.81)
    [0.451523641]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from typing import Any

import torch

from ..core.errors import SolverError
from .base import Field, FixedStepSolver, Solver, check_inputs, step_grid, time_eps
from .eventcond import Event, truth
from .eventlocate import locate
from .result import SolveStats


@dataclass(slots=True)
class EventRecord:
    """One event that fired: trajectory ``row``, ``index`` into the event list, its time.

    ``time`` is a float; ``tau`` the same time as a tensor that carries the gradient.
    """

    row: int
    index: int
    time: float
    tau: torch.Tensor


@dataclass(slots=True)
class EventSolveResult:
    """``ys[i]`` is the state at ``ts[i]`` (``[len(ts), batch, n]``); ``events`` in the order they fired."""

    ys: torch.Tensor
    ts: torch.Tensor
    events: list[EventRecord] = dc_field(default_factory=list)
    stats: SolveStats = dc_field(default_factory=SolveStats)
    solver: str = ""


@dataclass
class _Ctx:
    field: Field
    solver: Solver
    events: list[Event]
    stats: SolveStats
    tol: float
    max_events: int
    dtype: torch.dtype
    device: Any
    zeno_gap: float = 0.0
    zeno_error: bool = False
    counts: dict[int, int] = dc_field(default_factory=dict)
    records: list[EventRecord] = dc_field(default_factory=list)
    last: dict[int, float] = dc_field(default_factory=dict)  # row -> time of its last event
    resting: dict[int, torch.Tensor] = dc_field(default_factory=dict)  # row -> state held after accumulation

    def time(self, t: float) -> torch.Tensor:
        return torch.tensor(t, dtype=self.dtype, device=self.device)

    def advance(self, x: torch.Tensor, a: float, b: float) -> torch.Tensor:
        """The state at ``b`` from ``x`` at ``a`` (one step of a fixed-step method when ``b - a <= step``)."""
        if b - a <= 0.0:
            return x
        t = torch.tensor([a, b], dtype=self.dtype, device=self.device)
        return self.solver.integrate(self.field, x, t, self.stats)[-1]

    def for_row(self, row: int) -> _Ctx:
        """The context for one trajectory: a field with per-row inputs or times gives its ``row(r)``."""
        select = getattr(self.field, "row", None)
        if select is None:
            return self
        field = select(row)
        if field is self.field:
            return self
        return replace(self, field=field, events=list(field.events))

    def truths(self, t: float, x: torch.Tensor) -> torch.Tensor:
        """``[K, batch]``: where each event's condition holds at ``(t, x)``."""
        return torch.stack([truth(ev.condition, ev.margins(self.time(t), x)) for ev in self.events])

    def fired(self, t0: float, x0: torch.Tensor, t1: float, x1: torch.Tensor) -> torch.Tensor:
        """``[K, batch]``: where event ``k``'s condition went from false (at t0) to true (at t1)."""
        with torch.no_grad():
            rows = []
            for ev in self.events:
                c0 = truth(ev.condition, ev.margins(self.time(t0), x0))
                c1 = truth(ev.condition, ev.margins(self.time(t1), x1))
                rows.append(~c0 & c1)
            return torch.stack(rows)


def solve_events(
    field: Field,
    x0: torch.Tensor,
    t: torch.Tensor,
    *,
    events: list[Event],
    solver: Solver | str,
    max_events: int = 1000,
    tol: float = 1e-12,
    chunk: int = 32,
    zeno: str = "rest",
    zeno_gap: float = 1e-5,
) -> EventSolveResult:
    """Integrate ``dx/dt = field(t, x)`` from ``x0`` at ``t[0]``, applying ``events`` where they fire.

    ``max_events``: most events one trajectory may have in this solve (Zeno protection);
    ``zeno``: what a row does when two of its events come closer than ``zeno_gap`` times the time
    span (events accumulating, as a bouncing ball coming to rest): ``"rest"`` holds its state from
    then on (the limit of the accumulation when the resets drive the state to rest), ``"error"``
    raises :class:`SolverError`;
    ``tol``: relative width of the final bracket of each event time (at least 16 machine epsilons of
    the state's dtype); ``chunk``: check points integrated per
    solver call between events (fewer calls; an event re-integrates at most one chunk).

    Example:
        >>> import torch
        >>> from nodedsl.solvers.eventcond import Compare, Event
        >>> ev = Event(lambda t, x: x - 2.0, Compare(0), lambda t, x: x - 1.0)  # x >= 2: drop by 1
        >>> res = solve_events(lambda t, x: torch.ones_like(x), torch.zeros(1, 1, dtype=torch.float64),
        ...                    torch.tensor([0.0, 2.5], dtype=torch.float64), events=[ev], solver="dopri5")
        >>> round(res.ys[-1].item(), 9), [round(r.time, 9) for r in res.events]
        (1.5, [2.0])
    """
    if isinstance(solver, str):
        from .registry import make_solver

        solver = make_solver(solver)
    t = check_inputs(x0, t)
    if max_events < 1 or chunk < 1 or not tol > 0 or zeno not in ("rest", "error") or not zeno_gap >= 0:
        raise SolverError(
            "max_events and chunk must be >= 1, tol > 0, zeno_gap >= 0 and zeno 'rest' or 'error'", option="events"
        )
    times = t.tolist()
    gap = zeno_gap * (times[-1] - times[0])
    tol = max(tol, 16 * torch.finfo(x0.dtype).eps)  # a float32 state cannot place a crossing closer
    ctx = _Ctx(field, solver, list(events), SolveStats(), tol, max_events, x0.dtype, x0.device, gap, zeno == "error")
    if isinstance(solver, FixedStepSolver) and len(times) > 1:
        grid = step_grid(times, solver.step_size, time_eps(t.dtype))
    else:
        grid = list(times)
    outputs = _run(ctx, x0, grid, set(_output_positions(grid, times)), chunk)
    ys = torch.stack(outputs) if outputs else x0.unsqueeze(0)
    name = getattr(solver, "name", type(solver).__name__)
    return EventSolveResult(ys, t, ctx.records, ctx.stats, name)


def _output_positions(grid: list[float], times: list[float]) -> list[int]:
    """Where each output time sits in the check grid (``step_grid`` copies output times exactly)."""
    pos, j = [], 0
    for s in times:
        while grid[j] != s:
            j += 1
        pos.append(j)
    return pos


def _run(ctx: _Ctx, x0: torch.Tensor, grid: list[float], out: set[int], chunk: int) -> list[torch.Tensor]:
    """The main loop: integrate up to ``chunk`` check points at a time, stop at the first firing interval.

    The span integrated next shrinks to twice the distance to the last event (events come in runs,
    and what lies past an event is integrated again) and grows back by doubling.
    """
    outputs = [x0]
    x, i, last, span = x0, 0, len(grid) - 1, chunk
    while i < last:
        j = min(i + span, last)
        tt = torch.tensor(grid[i : j + 1], dtype=ctx.dtype, device=ctx.device)
        ys = _hold(ctx, ctx.solver.integrate(_Held(ctx) if ctx.resting else ctx.field, x, tt, ctx.stats))
        with torch.no_grad():
            holds = torch.stack([ctx.truths(grid[i + p], ys[p]) for p in range(j - i + 1)])  # [P, K, B]
            fired_at = (~holds[:-1] & holds[1:]).flatten(1).any(1).nonzero()
        if len(fired_at) == 0:
            outputs.extend(ys[p - i] for p in range(i + 1, j + 1) if p in out)
            x, i, span = ys[-1], j, min(2 * span, chunk)
            continue
        p = int(fired_at[0])
        fired = ~holds[p] & holds[p + 1]
        outputs.extend(ys[q - i] for q in range(i + 1, i + p + 1) if q in out)
        x = _interval(ctx, grid[i + p], ys[p], grid[i + p + 1], ys[p + 1], fired)
        i, span = i + p + 1, max(2, 2 * (p + 1))
        if i in out:
            outputs.append(x)
    return outputs


class _Held:
    """The field with resting rows' derivatives zeroed (so they neither move nor steer step sizes)."""

    def __init__(self, ctx: _Ctx) -> None:
        self.ctx = ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ctx.field, name)

    def __call__(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        keep[list(self.ctx.resting)] = 0.0
        return self.ctx.field(t, x) * keep


def _hold(ctx: _Ctx, ys: torch.Tensor) -> torch.Tensor:
    """``ys [P, batch, n]`` with every resting row at its held state."""
    if not ctx.resting:
        return ys
    rows = list(ctx.resting)
    idx = torch.tensor(rows, dtype=torch.long, device=ys.device)
    held = torch.cat([ctx.resting[r] for r in rows])
    mask = torch.zeros(ys.shape[1], 1, dtype=torch.bool, device=ys.device)
    mask[idx] = True
    full = torch.zeros_like(ys[0]).index_put((idx,), held)
    return torch.where(mask, full, ys)


def _interval(ctx: _Ctx, a: float, xa: torch.Tensor, b: float, xb: torch.Tensor, fired: torch.Tensor) -> torch.Tensor:
    """The state at ``b`` for every row, events applied in the rows where some fired in ``[a, b]``."""
    rows = fired.any(0).nonzero().flatten().tolist()
    new = [_row(ctx.for_row(r), r, a, xa[r : r + 1], b, xb[r : r + 1]) for r in rows]
    idx = torch.tensor(rows, dtype=torch.long, device=xb.device)
    return xb.index_put((idx,), torch.cat(new))


def _row(ctx: _Ctx, row: int, a: float, xa: torch.Tensor, b: float, xb: torch.Tensor) -> torch.Tensor:
    """One trajectory through ``[a, b]``: locate the first event, apply it, repeat while more fire."""
    while True:
        with torch.no_grad():
            fired = ctx.fired(a, xa, b, xb)[:, 0]
        if not bool(fired.any()):
            return xb
        found = [(locate(ctx, k, xa.detach(), a, b, xb.detach()), k) for k in fired.nonzero().flatten().tolist()]
        (tau, leaf), k = min(found, key=lambda item: item[0][0])
        count = ctx.counts.get(row, 0) + 1
        ctx.counts[row] = count
        previous, ctx.last[row] = ctx.last.get(row), tau
        accumulating = previous is not None and tau - previous < ctx.zeno_gap
        if count > ctx.max_events or (accumulating and ctx.zeno_error):
            why = f"more than max_events = {ctx.max_events}" if count > ctx.max_events else "accumulating"
            raise SolverError(
                f"event '{ctx.events[k].name}' fired in trajectory {row} at t = {tau:.9g}, {why} events in one "
                "solve: the model is probably Zeno (infinitely many events in finite time); shorten the time "
                "span, raise max_events or let accumulating rows rest (zeno='rest')",
                option="max_events",
            )
        xa = _apply(ctx, row, k, leaf, xa, a, tau)
        if accumulating:
            ctx.resting[row] = xa  # events accumulate: the row rests at the post-event state
            return xa
        a = tau
        xb = ctx.advance(xa, a, b)


def _apply(ctx: _Ctx, row: int, k: int, leaf: int, xa: torch.Tensor, a: float, tau: float) -> torch.Tensor:
    """The state just after event ``k`` at ``tau``; with gradients through ``tau`` and the reset."""
    ev = ctx.events[k]
    t_ev = ctx.time(tau)
    x_pre = ctx.advance(xa, a, tau)
    if not torch.is_grad_enabled():
        ctx.records.append(EventRecord(row, k, tau, t_ev))
        return ev.reset(t_ev, x_pre)
    delta = torch.zeros((), dtype=ctx.dtype, device=ctx.device)
    if leaf >= 0:
        m = ev.margins(t_ev, x_pre)[0, leaf]
        rate = _margin_rate(ctx, ev, leaf, t_ev, x_pre.detach())
        if rate != 0.0:
            delta = -(m - m.detach()) / rate
    x_event = x_pre + ctx.field(t_ev, x_pre) * delta
    x_plus = ev.reset(t_ev + delta, x_event)
    ctx.records.append(EventRecord(row, k, tau, t_ev + delta))
    return x_plus - ctx.field(t_ev, x_plus) * delta


def _margin_rate(ctx: _Ctx, ev: Event, leaf: int, t: torch.Tensor, x: torch.Tensor) -> float:
    """``dm/dt`` along the solution at the event: ``dm/dt + grad_x m . f`` (0 at a grazing crossing)."""
    with torch.enable_grad():
        tt = t.detach().clone().requires_grad_(True)
        xx = x.detach().clone().requires_grad_(True)
        m = ev.margins(tt, xx)[0, leaf]
        gt, gx = torch.autograd.grad(m, (tt, xx), allow_unused=True)
        f = ctx.field(t, x).detach()
    rate = (0.0 if gt is None else float(gt)) + (0.0 if gx is None else float((gx * f).sum()))
    return rate if abs(rate) > 1e-300 else 0.0
