"""Events in the solvers: a hand-written bouncing ball against its closed form.

Oracles: impact times ``t1 = (v0 + u)/g`` with ``u = sqrt(v0^2 + 2 g h0)``, then bounces of
length ``2 e^k u / g``; heights between impacts are parabolas; gradients by central differences
and (decay with a reset) a closed-form derivative.
"""

from __future__ import annotations

import math

import pytest
import torch

from nodedsl.solvers import SolverError, make_solver
from nodedsl.solvers.eventcond import All, Any, Compare, Event
from nodedsl.solvers.events import solve_events

F64 = torch.float64


def ball(g: torch.Tensor | float, e: torch.Tensor | float) -> tuple:
    """Field and impact event of a ball: state (h, v), ``when h <= 0 and v < 0 { reset v = -e v }``."""

    def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x[:, 1], -g * torch.ones_like(x[:, 1])], -1)

    impact = Event(
        lambda t, x: -x,
        All((Compare(0), Compare(1, strict=True))),
        lambda t, x: torch.stack([x[:, 0], -e * x[:, 1]], -1),
        name="impact",
    )
    return field, impact


def closed_form(h0: float, v0: float, g: float, e: float, T: float) -> tuple[list[float], float]:
    """Impact times before ``T`` and the height at ``T``."""
    u = math.sqrt(v0 * v0 + 2 * g * h0)
    times, t, w = [(v0 + u) / g], (v0 + u) / g, e * u
    while t + 2 * w / g < T:
        t += 2 * w / g
        times.append(t)
        w *= e
    if times[0] > T:
        return [], h0 + v0 * T - g * T * T / 2
    s = T - times[-1]
    return times, w * s - g * s * s / 2


STARTS = [(1.0, 0.0), (1.7, 0.6), (0.6, -0.9)]


@pytest.mark.parametrize("method", [("rk4", {"step": 0.01}), ("dopri5", {"rtol": 1e-10, "atol": 1e-12})])
def test_impact_times_and_heights_match_the_closed_form(method: tuple) -> None:
    g, e, T = 9.81, 0.8, 3.0
    field, impact = ball(g, e)
    x0 = torch.tensor(STARTS, dtype=F64)
    t = torch.linspace(0, T, 31, dtype=F64)
    res = solve_events(field, x0, t, events=[impact], solver=make_solver(method[0], **method[1]))
    for row, (h0, v0) in enumerate(STARTS):
        times, h_end = closed_form(h0, v0, g, e, T)
        got = [r.time for r in res.events if r.row == row]
        assert len(got) == len(times) >= 2
        assert max(abs(a - b) for a, b in zip(got, times)) < 1e-6
        assert abs(res.ys[-1, row, 0].item() - h_end) < 1e-6
    assert all(r.index == 0 for r in res.events)
    assert res.ys.shape == (31, 3, 2)


def test_gradient_of_final_height_matches_finite_differences() -> None:
    T = 2.5
    x0 = torch.tensor(STARTS, dtype=F64)
    t = torch.tensor([0.0, 1.0, T], dtype=F64)
    solver = make_solver("rk4", step=0.01)

    def final(e: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        field, impact = ball(g, e)
        return solve_events(field, x0, t, events=[impact], solver=solver).ys[-1, :, 0].sum()

    e = torch.tensor(0.8, dtype=F64, requires_grad=True)
    g = torch.tensor(9.81, dtype=F64, requires_grad=True)
    de, dg = torch.autograd.grad(final(e, g), (e, g))
    eps = 1e-6
    with torch.no_grad():
        fd_e = (final(e + eps, g) - final(e - eps, g)) / (2 * eps)
        fd_g = (final(e, g + eps) - final(e, g - eps)) / (2 * eps)
        oracle = sum(
            closed_form(h, v, 9.81, 0.8 + eps, T)[1] - closed_form(h, v, 9.81, 0.8 - eps, T)[1] for h, v in STARTS
        )
    assert abs(de.item() - fd_e.item()) < 1e-5 * max(1.0, abs(fd_e.item()))
    assert abs(dg.item() - fd_g.item()) < 1e-5 * max(1.0, abs(fd_g.item()))
    assert abs(fd_e.item() - oracle / (2 * eps)) < 1e-4  # the FD itself against the closed form
    assert abs(de.item()) > 0.1 and abs(dg.item()) > 0.01


def test_gradient_through_a_state_dependent_event_time_is_exact() -> None:
    # x' = -k x from 1; when x <= 0.5 { reset x = 1 }: tau = ln 2 / k, then x(T) = 2 exp(-k T)
    k = torch.tensor(1.3, dtype=F64, requires_grad=True)
    ev = Event(lambda t, x: 0.5 - x, Compare(0), lambda t, x: torch.ones_like(x))
    T = 0.8
    res = solve_events(
        lambda t, x: -k * x,
        torch.ones(1, 1, dtype=F64),
        torch.tensor([0.0, T], dtype=F64),
        events=[ev],
        solver=make_solver("dopri5", rtol=1e-11, atol=1e-13),
    )
    assert abs(res.events[0].time - math.log(2) / 1.3) < 1e-8
    (dk,) = torch.autograd.grad(res.ys[-1, 0, 0], k)
    assert abs(res.ys[-1, 0, 0].item() - 2 * math.exp(-1.3 * T)) < 1e-8
    assert abs(dk.item() - (-2 * T * math.exp(-1.3 * T))) < 1e-7


def test_event_time_tensor_carries_the_implicit_function_gradient() -> None:
    k = torch.tensor(1.3, dtype=F64, requires_grad=True)
    ev = Event(lambda t, x: 0.5 - x, Compare(0), lambda t, x: torch.ones_like(x))
    res = solve_events(
        lambda t, x: -k * x,
        torch.ones(1, 1, dtype=F64),
        torch.tensor([0.0, 0.8], dtype=F64),
        events=[ev],
        solver=make_solver("rk4", step=0.001),
    )
    (dtau,) = torch.autograd.grad(res.events[0].tau, k)
    assert abs(dtau.item() - (-math.log(2) / 1.3**2)) < 1e-6


def test_two_walls_with_or_and_several_events() -> None:
    # x' = v between walls at -1 and 1: when x >= 1 or x <= -1 { reset v = -v }; period 4/|v|
    walls = Event(
        lambda t, x: torch.stack([x[:, 0] - 1.0, -1.0 - x[:, 0]], -1),
        Any((Compare(0), Compare(1))),
        lambda t, x: torch.stack([x[:, 0], -x[:, 1]], -1),
    )
    x0 = torch.tensor([[0.0, 1.0], [0.5, -3.0]], dtype=F64)
    res = solve_events(
        lambda t, x: torch.stack([x[:, 1], torch.zeros_like(x[:, 1])], -1),
        x0,
        torch.linspace(0, 4, 9, dtype=F64),
        events=[walls],
        solver=make_solver("midpoint", step=0.05),
    )
    slow = [r.time for r in res.events if r.row == 0]
    fast = [r.time for r in res.events if r.row == 1]
    assert slow == pytest.approx([1.0, 3.0], abs=1e-9)
    assert fast == pytest.approx([0.5 + 2 * k / 3 for k in range(6)], abs=1e-9)
    assert res.ys[-1, 0].tolist() == pytest.approx([0.0, 1.0], abs=1e-9)


def test_zeno_ball_raises_a_solver_error() -> None:
    field, impact = ball(9.81, 0.5)
    with pytest.raises(SolverError, match="Zeno") as info:
        solve_events(
            field,
            torch.tensor([[1.0, 0.0]], dtype=F64),
            torch.tensor([0.0, 3.0], dtype=F64),
            events=[impact],
            solver=make_solver("rk4", step=0.01),
            zeno="error",
        )
    assert info.value.option == "max_events"


def test_accumulating_ball_comes_to_rest() -> None:
    # e = 0.5 from 1 m: impacts accumulate at t1 (1 + 2 e / (1 - e)) = 3 t1; the ball then rests at h = 0
    field, impact = ball(9.81, 0.5)
    t1 = math.sqrt(2 / 9.81)
    res = solve_events(
        field,
        torch.tensor([[1.0, 0.0]], dtype=F64),
        torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=F64),
        events=[impact],
        solver=make_solver("rk4", step=0.01),
    )
    times = [r.time for r in res.events]
    assert 15 < len(times) < 40 and times[-1] < 3 * t1 + 1e-6
    assert times[:3] == pytest.approx([t1, 2 * t1, 2.5 * t1], abs=1e-9)
    assert res.ys[-1, 0].abs().max().item() < 1e-4  # at rest on the floor
    with pytest.raises(SolverError, match="max_events = 5"):
        solve_events(
            field,
            torch.tensor([[1.0, 0.0]], dtype=F64),
            torch.tensor([0.0, 3.0], dtype=F64),
            events=[impact],
            solver=make_solver("rk4", step=0.01),
            max_events=5,
        )


def test_no_event_is_the_plain_solve() -> None:
    field, impact = ball(9.81, 0.8)
    x0 = torch.tensor([[5.0, 0.0]], dtype=F64)
    t = torch.linspace(0, 0.5, 6, dtype=F64)
    res = solve_events(field, x0, t, events=[impact], solver=make_solver("rk4", step=0.05))
    assert res.events == []
    assert res.ys[:, 0, 0].tolist() == pytest.approx([5.0 - 9.81 * s * s / 2 for s in t.tolist()], abs=1e-12)


BALL = """
model Ball {
    state h = 1.0
    state v = 0.0
    param g = 9.81
    param e = 0.8 learn in [0, 1]
    der(h) = v
    der(v) = -g
    when h <= 0 and v < 0 { reset v = -e * v }
    output height = h
}
"""


def test_when_blocks_simulate_with_event_marks_and_show(tmp_path) -> None:
    import nodedsl
    from nodedsl.data.loading import load_csv
    from nodedsl.simulate import SimulationRequest, run_simulation, write_csv
    from nodedsl.symbolic.show import format_system

    prog = nodedsl.loads(BALL)
    assert "when h <= 0 and v < 0: reset v = -e*v" in format_system(prog.system("Ball"), prog.info("Ball"))
    table = run_simulation(prog, SimulationRequest(model="Ball", t_end=2.0, step=0.1))
    assert table.columns == ["trajectory", "t", "h", "v", "height", "event"]
    times, _ = closed_form(1.0, 0.0, 9.81, 0.8, 2.0)
    marked = [float(row[1]) for row in table.rows if row[-1] > 0]
    assert marked == pytest.approx([math.ceil(s / 0.1 - 1e-9) * 0.1 for s in times])
    for row in table.rows:
        assert row[2] == pytest.approx(_height(1.0, 0.0, 9.81, 0.8, float(row[1])), abs=1e-7)
    path = tmp_path / "ball.csv"
    write_csv(table, str(path))
    data = load_csv(path, ["height"], [], ["h", "v"])  # the event column is not data
    assert data.n_traj == 1


def _height(h0: float, v0: float, g: float, e: float, T: float) -> float:
    return closed_form(h0, v0, g, e, T)[1] if T > 0 else h0


def test_a_dataset_of_an_event_model_bounces(tmp_path):
    """A `dataset` block of a model with `when` blocks is simulated with its events (the synthesized
    inputs are a function of t, as for any dataset)."""
    from typer.testing import CliRunner

    from nodedsl.cli.main import app

    src = tmp_path / "ball.node"
    src.write_text(
        "model BallTruth {\n state h = 1.0\n state v = 0.0\n param g = 9.81\n param e = 0.8\n"
        " der(h) = v\n der(v) = -g\n when h <= 0 and v < 0 { reset v = -e * v }\n output height = h\n}\n"
        "dataset drops {\n model = BallTruth\n trajectories = 2\n time = span(0, 1.5, step = 0.05)\n"
        " initial = { h = uniform(0.5, 1.0), v = 0 }\n seed = 0\n}\n"
    )
    out = tmp_path / "drops.csv"
    result = CliRunner().invoke(app, ["data", str(src), "-d", "drops", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = [line.split(",") for line in out.read_text().splitlines()]
    col = rows[0].index("height")
    heights = [float(r[col]) for r in rows[1:]]
    assert min(heights) > -1e-3  # the ball bounced instead of falling through the floor
    assert max(heights[len(heights) // 2 :]) > 0.05  # and rose again after its first impact
