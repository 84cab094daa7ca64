"""Training speed (issue 19): the compiled whole-step rollout against the eager reference, its fallback, the
float64 step plan of float32 times, and torch.compile of coupled composites' fields.

The compiled path is traced with ``backend="aot_eager"`` (dynamo + AOTAutograd, the same graph and backward
inductor gets, without generating code) so the tests stay within the CI budget; the inductor path is
measured by ``benchmarks/peer_training.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.utils._python_dispatch

import nodedsl
from nodedsl.data.loading import make_windows, split_by_trajectory
from nodedsl.data.synth import generate
from nodedsl.frontend.config import validate_dataset, validate_train
from nodedsl.frontend.parse import parse_source
from nodedsl.solvers import make_solver, solve
from nodedsl.train import fit
from nodedsl.train.fast import WholeStep
from nodedsl.train.rollout import WindowField, observation_map

ROOT = Path(__file__).resolve().parents[1]

SOURCE = """
model Driven {
    state theta = 0.5
    state omega = 0
    input torque = 0
    param L = 1.2 learn positive
    net friction(omega) -> 1 { hidden = [8], activation = tanh }
    der(theta) = omega
    der(omega) = -9.81 / L * sin(theta) - friction(omega) + torque + 0.1 * sin(t)
}

dataset d {
    model = Driven
    trajectories = 6
    time = span(0, 2, step = 0.1)
    initial = { theta = uniform(-1, 1), omega = uniform(-1, 1) }
    inputs = { torque = sine(amplitude = 0.5, frequency = 0.7) }
    seed = 1
}
"""


@pytest.fixture(scope="module")
def driven():
    torch.manual_seed(0)
    prog = nodedsl.loads(SOURCE)
    return prog, prog.model("Driven", torch.float64)


def _grads(model, out):
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.autograd.grad(out.pow(2).sum(), params)


@pytest.mark.parametrize(
    "backend",
    # dynamo alone (the unrolled plan, stage times, input interpolation, output marks) in CI; with AOTAutograd's
    # compiled backward (what inductor gets) 30-50 s on the loaded 2-core machine: slow
    ["eager", pytest.param("aot_eager", marks=pytest.mark.slow)],
)
def test_whole_step_matches_eager_values_and_gradients(driven, backend):
    _, model = driven
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(5, 2, generator=g, dtype=torch.float64)
    t0 = torch.rand(5, generator=g, dtype=torch.float64)
    grid = torch.tensor([0.0, 0.1, 0.25], dtype=torch.float64)
    u = torch.randn(5, 3, 1, generator=g, dtype=torch.float64)
    solver = make_solver("heun", step=0.1)  # 0.1, then two steps of 0.075: stage times between input samples
    eager = solve(WindowField(model, t0, grid, u), x0, grid, solver=solver).ys.transpose(0, 1)
    fast = WholeStep(model, solver, observation_map(model), False, backend=backend)
    states, yhat = fast(x0, t0, u, t0[:, None] + grid, grid)
    assert states.shape == eager.shape == (5, 3, 2)
    assert torch.allclose(states, eager, rtol=0, atol=1e-10)
    assert torch.equal(yhat, states)
    for a, b in zip(_grads(model, eager), _grads(model, states)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


def _train_cfg(extra: str):
    solver = "" if "solver" in extra else "solver = rk4(step = 0.1)"
    text = f"train Driven {{\n data = d\n {solver}\n window = 2\n batch = 64\n horizon = full\n {extra}\n}}"
    cfg, diags = validate_train(parse_source(text, "t.node").trains[0])
    assert diags == [], diags
    return cfg


def _windows(prog):
    dcfg, diags = validate_dataset(parse_source(SOURCE, "d.node").datasets[0])
    assert diags == []
    traj = generate(prog.model("Driven", torch.float64), dcfg)
    tr, va = split_by_trajectory(traj, 0.34, 0)
    return make_windows(tr, 2), make_windows(va, 2)


@pytest.mark.slow  # two compiles (training and validation): 30-100 s on the loaded 2-core machine
def test_fit_whole_step_equals_eager_and_records_it(driven, monkeypatch):
    prog, _ = driven
    wt, wv = _windows(prog)
    monkeypatch.setenv("NODEDSL_COMPILE_BACKEND", "aot_eager")
    runs = {}
    for mode in ("off", "whole_step"):
        torch.manual_seed(0)
        model = prog.model("Driven", torch.float64)
        res = fit(model, wt, wv, _train_cfg(f"compile = {mode}\n epochs = 3"))
        runs[mode] = (res, torch.cat([p.detach().flatten() for p in model.parameters()]))
    (eager, pe), (fast, pf) = runs["off"], runs["whole_step"]
    assert fast.extra["compile"]["used"] and fast.extra["compile"]["reason"] is None
    assert eager.extra["compile"] == {"mode": "off", "used": False, "reason": "compile = off"}
    assert torch.allclose(pe, pf, rtol=1e-10, atol=1e-10)
    for a, b in zip(eager.history, fast.history):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-10 * abs(a["train_loss"])
        assert abs(a["val_loss"] - b["val_loss"]) <= 1e-10 * abs(a["val_loss"])


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("solver = dopri5", "not a fixed-step explicit Runge-Kutta"),
        ("gradient = adjoint", "only backprop is compiled"),
        ("", "fewer than"),  # compile = auto on a run too short to pay for the compile
    ],
)
def test_fallback_states_its_reason(driven, extra, reason):
    prog, _ = driven
    wt, _ = _windows(prog)
    cfg = _train_cfg(f"compile = {'auto' if not extra else 'whole_step'}\n epochs = 1\n {extra}")
    res = fit(prog.model("Driven", torch.float64), wt, None, cfg)
    info = res.extra["compile"]
    assert not info["used"] and reason in info["reason"]


def test_bad_compile_value_is_a_config_error():
    text = "train Driven {\n data = d\n compile = fast\n}"
    _, diags = validate_train(parse_source(text, "t.node").trains[0])
    assert diags and "compile" in diags[0].message


def test_float32_times_plan_steps_in_float64():
    prog = nodedsl.loads("model M { state x = 1\n der(x) = -x }")
    res = prog.simulate("M", torch.linspace(0, 10, 201), solver="rk4", step=0.05)
    assert res.ys.dtype == torch.float32 and res.stats.steps == 200
    res = prog.simulate("M", torch.linspace(0, 10, 101), solver="rk4", step=0.05)
    assert res.stats.steps == 200


def test_torch_compile_of_coupled_composite_field():
    prog = nodedsl.load(ROOT / "examples" / "two_masses.node")
    model = prog.model("TwoMasses")  # float32 model, float64 coupling constants: converted in the graph
    x = torch.randn(4, len(model.state_names), requires_grad=True)
    compiled = torch.compile(lambda t, x: model.field(t, x), backend="aot_eager", fullgraph=True)
    out = compiled(torch.tensor(0.0), x)
    ref = model.field(torch.tensor(0.0), x)
    assert torch.allclose(out, ref)
    (ga,) = torch.autograd.grad(out.pow(2).sum(), x)
    (gb,) = torch.autograd.grad(ref.pow(2).sum(), x)
    assert torch.allclose(ga, gb)


class _Count(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts aten calls (what per-op dispatch costs) of the code run under it."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_chain_with_one_couple_per_spring_stays_grouped():
    """benchmarks/compile_scaling.py's form: the end masses' free ports no longer split them from the group
    (106 aten calls forward + backward before, 59 after; the hand-written vectorized field takes 56)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from compile_scaling import chain_source

    model = nodedsl.loads(chain_source(10)).model("Chain")
    x = torch.randn(64, 29, requires_grad=True)
    model.field(torch.tensor(0.0), x).pow(2).sum().backward()  # first-call caches (constants' dtype)
    with _Count() as count:
        model.field(torch.tensor(0.0), x).pow(2).sum().backward()
    assert count.calls <= 64, count.calls
    # the field itself: masses m = 1 + 0.01 i, k = 0.1, c = 0.05; springs k = 1 + 0.02 j
    q, p, s = x[:, 0:20:2], x[:, 1:20:2], x[:, 20:]
    m = 1 + 0.01 * torch.arange(10)
    v = p / m
    f = (1 + 0.02 * torch.arange(9)) * s
    force = torch.nn.functional.pad(f, (0, 1)) - torch.nn.functional.pad(f, (1, 0))
    dp = -0.1 * q - 0.05 * v + force
    want = torch.cat([torch.stack([v, dp], -1).reshape(-1, 20), v[:, 1:] - v[:, :-1]], -1)
    assert torch.allclose(model.field(torch.tensor(0.0), x), want, atol=1e-5)


def test_field_with_a_net_derivative_falls_back():
    from nodedsl.train.fast import coverage

    model = nodedsl.load(ROOT / "examples" / "msd.node").model("MassSpringDamper")  # grad of V, a net, in H
    reason = coverage(model, make_solver("rk4", step=0.05), _train_cfg("compile = whole_step"), 10**6)
    assert "differentiates a net" in reason
