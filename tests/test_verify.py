"""``nodedsl verify``: statistical reachtubes (GoTube), the Gronwall baseline, properties over the tube.

The oracle is Monte-Carlo simulation: trajectories from uniform points of the initial ball (and of its
boundary, where the largest distance is attained) must stay inside the tube at every output time. The
issue asks for 100,000 trajectories; the test draws 20,000 per model (+5,000 on the boundary) to stay
within CI's budget, and benchmarks/reachability.py runs 100,000 (docs/verification.md).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import nodedsl
from nodedsl.analysis import VerifyRequest, verify
from nodedsl.analysis.gotube import gotube
from nodedsl.analysis.prop import parse_property
from nodedsl.analysis.sampling import boundary_samples, cap_margin_factor, coverage_eps, interior_samples
from nodedsl.cli.main import app
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.io.checkpoint import FORMAT, save_checkpoint
from nodedsl.solvers import make_solver, solve

VDP = """\
model VanDerPol {
    state x = 1.0
    state v = 0.0
    param mu = 1.0
    der(x) = v
    der(v) = mu * (1 - x^2) * v - x
}
"""
STEP = 0.05  # the solver step of the tube and of the Monte-Carlo oracle (the same discrete flow)


def monte_carlo(model, tube, interior=20_000, boundary=2_000, seed=123):
    """Largest distance from the tube's centre, per output time, over MC trajectories from the ball."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.as_tensor(tube.center[0])
    n = len(x0)
    pts = torch.cat(
        [
            x0 + interior_samples(n, interior, tube.radius0, tube.norm, g),
            x0 + boundary_samples(n, boundary, tube.radius0, tube.norm, g),
        ]
    )
    with torch.no_grad():
        ys = solve(model, pts, torch.as_tensor(tube.times), solver=make_solver("rk4", step=STEP)).ys
    diff = ys - torch.as_tensor(tube.center)[:, None, :]
    dist = diff.norm(dim=2) if tube.norm == "2" else diff.abs().amax(dim=2)
    return dist.amax(dim=1).numpy()


def check_tube(tube, empirical):
    inside = empirical <= tube.radii * (1 + 1e-9)
    assert inside.all(), f"escapes at t = {tube.times[~inside]}"
    ratio = tube.radii[1:] / empirical[1:]
    assert ratio.max() <= 3.0, ratio.max()
    assert tube.baseline is not None
    assert (tube.baseline >= tube.radii * (1 - 1e-9)).all()


@pytest.mark.parametrize(("norm", "t_end", "mc"), [("2", 3.0, 20_000), ("inf", 2.0, 5_000)])
def test_van_der_pol_tube_contains_monte_carlo(float64, norm, t_end, mc):
    prog = nodedsl.loads(VDP, "vdp.node")
    req = VerifyRequest(
        model="VanDerPol", center=("x=1.0", "v=0.5"), radius=0.05, norm=norm, t_end=t_end, step=0.1, solver_step=STEP
    )
    tube = verify(prog, req)
    assert tube.confidence == 0.99 and tube.method == "gotube"
    assert tube.stats["gotube"]["boundary_samples"] == 4603  # (1 - 1e-3)^N <= 0.01
    empirical = monte_carlo(prog.model("VanDerPol"), tube, interior=mc)
    check_tube(tube, empirical)
    assert tube.radii[0] == pytest.approx(0.05)
    # the tube is tight: the sampled maximum plus a margin of a few percent at most
    assert (tube.radii[1:] / empirical[1:]).max() < 1.1


@pytest.fixture
def trained_pendulum_run(tmp_path, float64):
    """A run directory of the pendulum hybrid (examples/pendulum.node, model Pendulum) with fixed
    seed weights: physics (gravity, learned length L) plus a 32x32 tanh net for the friction."""
    prog = nodedsl.load("examples/pendulum.node")
    torch.manual_seed(7)
    model = prog.model("Pendulum")
    with torch.no_grad():
        model.learned["L"].fill_(0.6)  # raw value: L = softplus(0.6), not the declared 1.0
    run = tmp_path / "run"
    run.mkdir()
    state = {
        "format": FORMAT,
        "model": "Pendulum",
        "source_hash": prog.source_hash("Pendulum"),
        "model_state": model.state_dict(),
    }
    save_checkpoint(run / "model.pt", state)
    (run / "config.json").write_text(json.dumps({"model": "Pendulum"}))
    return prog, model, run


def test_trained_pendulum_hybrid_tube_contains_monte_carlo(trained_pendulum_run):
    prog, model, run = trained_pendulum_run
    req = VerifyRequest(
        model="Pendulum",
        run=str(run),
        center=("theta=0.5",),
        radius=0.1,
        t_end=2.0,
        step=0.2,
        solver_step=STEP,
        samples=2000,
    )
    tube = verify(prog, req)
    with torch.no_grad():
        rk4 = make_solver("rk4", step=STEP)
        centre = solve(model.double(), torch.tensor([[0.5, 0.0]]), torch.as_tensor(tube.times), solver=rk4).ys
    np.testing.assert_allclose(tube.center, centre[:, 0].numpy(), atol=1e-6)  # the run's weights were used
    check_tube(tube, monte_carlo(model, tube))


def test_held_input_changes_the_tube(float64):
    prog = nodedsl.load("examples/pendulum.node")
    base = dict(model="PendulumTruth", radius=0.05, t_end=1.0, step=0.5, samples=200, baseline=False)
    free = verify(prog, VerifyRequest(**base))
    pushed = verify(prog, VerifyRequest(**base, sets=("torque=2.0",)))
    held = prog.simulate(
        "PendulumTruth", free.times, signal=lambda t, b: torch.full((b, 1), 2.0), solver="rk4", step=0.01
    )
    np.testing.assert_allclose(pushed.center, held.ys[:, 0].numpy(), atol=1e-9)
    assert abs(pushed.center[-1, 1] - free.center[-1, 1]) > 0.1 and free.baseline is None


class Linear:
    """``x' = A x`` with its exact Jacobian (the path a compiled model's symbolic Jacobian takes)."""

    def __init__(self, a):
        self.a = a

    def __call__(self, t, x):
        return x @ self.a.T

    def jacobian(self, t, x):
        return self.a.expand(x.shape[0], -1, -1)


def test_linear_system_radius_is_the_exact_one(float64):
    # x' = A x: the largest distance is r ||e^{At}||_2, known in closed form for a diagonal A
    a = torch.tensor([[-0.5, 0.0], [0.0, 0.3]])
    t = torch.linspace(0, 2, 5)
    rk4 = make_solver("rk4", step=0.05)
    out = gotube(Linear(a), torch.tensor([1.0, 1.0]), t, 0.1, "2", 0.99, 4603, rk4, torch.Generator().manual_seed(0))
    exact = 0.1 * torch.exp(0.3 * t)
    assert ((out.radii >= exact * (1 - 1e-9)) & (out.radii <= exact * 1.01)).all()


def test_order_statistics_and_cap_geometry():
    assert (1 - coverage_eps(4603, 0.99)) ** 4603 == pytest.approx(0.01)
    # circle: an arc of angular half-width theta has measure theta / pi
    assert cap_margin_factor(2, 0.01, "2") == pytest.approx(math.pi * 0.01, abs=1e-5)
    assert cap_margin_factor(2, 0.01, "2") >= math.pi * 0.01 * (1 - 1e-12)  # rounded up: conservative
    # 3-sphere: cap area fraction (1 - cos theta) / 2
    theta = cap_margin_factor(3, 0.1, "2")
    assert (1 - math.cos(theta)) / 2 == pytest.approx(0.1, rel=1e-4)
    # Monte-Carlo check of the 2-norm cap measure in 5 dimensions
    g = torch.Generator().manual_seed(0)
    pts = boundary_samples(5, 200_000, 1.0, "2", g).double()
    theta = cap_margin_factor(5, 0.05, "2")
    assert float((pts[:, 0] >= math.cos(theta)).double().mean()) == pytest.approx(0.05, abs=0.003)
    with pytest.raises(ValueError):
        cap_margin_factor(4, 0.2, "inf")


DECAY = "model Decay { state x = 1\n der(x) = -x }"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [("x <= 1.2", "holds"), ("x >= 0.3", "holds"), ("x <= 0.95", "violated"), ("2 * x >= 1", "violated")],
)
def test_property_verdicts(float64, text, verdict):
    # x(t) = x0 e^{-t}, x0 in [0.9, 1.1]: x ranges over [0.33, 1.1] on t in [0, 1]
    prog = nodedsl.loads(DECAY)
    tube = verify(prog, VerifyRequest(model="Decay", radius=0.1, t_end=1.0, step=0.1, samples=100, property=text))
    assert tube.property.verdict == verdict
    if verdict == "violated":
        cex = tube.property.counterexample
        g = parse_property(text, ("x",)).margin(torch.as_tensor(cex.trajectory))
        assert cex.margin > 0 and float(g.max()) > 0  # the counterexample really violates it
    else:
        assert tube.property.confidence == pytest.approx(0.98) and (tube.property.bound <= 0).all()


def test_property_unknown_when_the_baseline_blows_up(float64):
    prog = nodedsl.loads(VDP)
    req = VerifyRequest(
        model="VanDerPol", method="lipschitz", radius=0.1, t_end=3.0, step=0.1, property="x^2 + v^2 <= 9"
    )
    tube = verify(prog, req)
    assert tube.confidence is None and not np.isfinite(tube.radii[-1])
    assert tube.property.verdict == "unknown"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("x + y <= 1", "'y', which is not a state"),
        ("x == 1", "inequality"),
        ("sinn(x) <= 1", "did you mean 'sin'"),
        ("x <= ", ""),
    ],
)
def test_bad_properties_are_located_errors(text, needle):
    with pytest.raises(NodeDslError) as err:
        parse_property(text, ("x", "v"))
    d = err.value.diagnostics[0]
    assert d.span.file == "<--property>" and d.span.line == 1
    assert needle in d.message + " ".join(d.notes)


def test_cli_writes_the_tube_and_exits_3_on_a_violation(tmp_path):
    node = tmp_path / "vdp.node"
    node.write_text(VDP)
    out, png = tmp_path / "tube.csv", tmp_path / "tube.png"
    args = [
        "verify",
        str(node),
        "--center",
        "x=1",
        "--radius",
        "0.05",
        "--t-end",
        "1",
        "--step",
        "0.25",
        "--samples",
        "300",
        "-o",
        str(out),
        "--plot",
        str(png),
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    header = out.read_text().splitlines()[0].split(",")
    assert header == ["t", "x", "v", "radius", "lipschitz_radius", "sample_max", "lipschitz_constant"]
    assert png.stat().st_size > 10_000
    res = CliRunner().invoke(app, [*args, "--property", "x <= 1"])
    assert res.exit_code == 3 and "violated at t = 0" in res.output
    res = CliRunner().invoke(app, [*args, "--property", "x <= q"])
    assert res.exit_code == 1 and "<--property>:1:6: error[bad-property]" in res.output
    res = CliRunner().invoke(app, [*args, "--center", "z=1"])
    assert res.exit_code == 1 and "error[bad-argument]" in res.output and "no state 'z'" in res.output
