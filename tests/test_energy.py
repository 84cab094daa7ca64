"""Energy bookkeeping of compiled port-Hamiltonian models, and gradients through compiled fields.

* Power balance: for every pH example and composite, at random states and port inputs,
  ``dH/dt = grad H . f(x, u)`` (grad H by autograd through ``model.hamiltonian``) equals
  ``-dissipation(x) + y^T u`` with ``y = port_outputs(x)``, to 1e-8 (float64).
* Conservation: models with R = 0 and no input keep H constant to 1e-6 (relative) over a
  long dopri5 simulation.
* ``torch.autograd.gradcheck`` through ``model.field`` w.r.t. the state and w.r.t. learned
  parameters (including MassSpringDamper, whose field holds the autograd derivative of a net).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.func import functional_call

import nodedsl

torchdiffeq = pytest.importorskip("torchdiffeq")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


@pytest.fixture(scope="module")
def two_masses_program():
    return nodedsl.load(EXAMPLES / "two_masses.node")  # imports msd.node: every pH example


def _model(prog, name: str, seed: int = 0):
    torch.manual_seed(seed)  # nets at a (reproducible) random init
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = prog.model(name)
    finally:
        torch.set_default_dtype(old)
    if "C" in model.learned:  # a learned interconnection: random, not the zero it starts at
        with torch.no_grad():
            model.learned["C"].copy_(torch.randn_like(model.learned["C"]))
    return model


def _grad_h(model, x):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model.hamiltonian(x).sum(), x)
    return g


PH_MODELS = ["MassSpringDamperTruth", "MassSpringDamper", "Spring", "TwoMasses", "TwoMassesLearned"]


# ------------------------------------------------------------------------------------------ power balance
@pytest.mark.parametrize("name", PH_MODELS)
def test_power_balance(two_masses_program, name):
    model = _model(two_masses_program, name)
    gen = torch.Generator().manual_seed(1)
    batch, n, m = 64, len(model.state_names), len(model.input_names)
    x = 2 * torch.rand(batch, n, generator=gen) - 1
    u = 2 * torch.rand(batch, m, generator=gen) - 1
    f = model.field(torch.tensor(0.3), x, u)
    dh_dt = (_grad_h(model, x) * f).sum(-1)
    y = model.port_outputs(x)
    assert y.shape == (batch, m)
    supplied = (y * u).sum(-1)
    dissipated = model.dissipation(x)
    assert dissipated.shape == (batch,)
    assert (dissipated >= -1e-12).all(), "R must be positive semi-definite"
    torch.testing.assert_close(dh_dt, -dissipated + supplied, rtol=0, atol=1e-8)
    # the compiled field is linear in u with coefficient G, and y = G^T grad H
    if m:
        f0 = model.field(torch.tensor(0.3), x, torch.zeros_like(u))
        g_h = _grad_h(model, x)
        for j in range(m):
            e = torch.zeros_like(u)
            e[:, j] = 1.0
            col = model.field(torch.tensor(0.3), x, e) - f0  # G[:, j] (the same at every state)
            torch.testing.assert_close((col * g_h).sum(-1), y[:, j], rtol=0, atol=1e-10)


VECTOR_PH = """
model Planar : port_hamiltonian {
    state q[2] = [1, 0]
    state p[2] = 0
    param m = 1.5 learn positive
    net V(a[2]) -> 1 { hidden = [16], activation = tanh }
    net D(v[2]) -> 3 { hidden = [8] }
    net S(a[2]) -> 1 { hidden = [8], output = softplus }
    hamiltonian = dot(p, p) / (2 * m) + V(q) + S(q) * q[0]^2
    R = psd([0, 0, 0, 0, 0, D(p)[0], 0, 0, D(p)[1], D(p)[2]])
    port push { G = [[0, 0], [0, 0], [1, 0], [0, 1]] }
}
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_power_balance_vector_nets(seed):
    """Vector net arguments, a multi-output net inside psd(R), a softplus net times a state in H."""
    model = _model(nodedsl.loads(VECTOR_PH), "Planar", seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x, u = 2 * torch.rand(32, 4, generator=gen) - 1, 2 * torch.rand(32, 2, generator=gen) - 1
    dh_dt = (_grad_h(model, x) * model.field(0.0, x, u)).sum(-1)
    assert (model.dissipation(x) >= -1e-12).all()
    torch.testing.assert_close(dh_dt, -model.dissipation(x) + (model.port_outputs(x) * u).sum(-1), rtol=0, atol=1e-8)
    assert torch.autograd.gradcheck(
        _field_of_state(model, u[:3]), (x[:3].clone().requires_grad_(True),), eps=1e-6, atol=1e-7, rtol=1e-5
    )


def test_composite_hamiltonian_is_sum_of_parts(two_masses_program):
    """TwoMasses: H = H_left + H_right + H_spring, written by hand."""
    model = _model(two_masses_program, "TwoMasses")
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(3))
    lq, lp, rq, rp, s = x.unbind(-1)

    def h_msd(q, p, m, k):
        return p**2 / (2 * m) + k * q**2 / 2 + 0.5 * q**4

    want = h_msd(lq, lp, 1.0, 2.0) + h_msd(rq, rp, 2.0, 0.5) + 1.5 * s**2 / 2
    torch.testing.assert_close(model.hamiltonian(x), want, rtol=1e-14, atol=1e-14)
    # every port is coupled: the composite has no inputs and no port outputs
    assert model.input_names == ()
    assert model.port_outputs(x).shape == (16, 0)


def test_dissipation_matches_hand_written(two_masses_program):
    model = _model(two_masses_program, "MassSpringDamperTruth")
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(4))
    _q, p = x.unbind(-1)
    torch.testing.assert_close(model.dissipation(x), (0.3 + 0.1 * p**2) * p**2, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(model.port_outputs(x)[:, 0], p, rtol=0, atol=0)


def test_nonpositive_power_of_learned_composite(two_masses_program):
    """TwoMassesLearned (no free ports): dH/dt = -dissipation <= 0 whatever C and the nets are."""
    for seed in range(3):
        model = _model(two_masses_program, "TwoMassesLearned", seed=seed)
        x = 2 * torch.rand(32, 5, generator=torch.Generator().manual_seed(seed)) - 1
        dh_dt = (_grad_h(model, x) * model(torch.tensor(0.0), x)).sum(-1)
        assert (dh_dt <= 1e-10).all()
        torch.testing.assert_close(dh_dt, -model.dissipation(x), rtol=0, atol=1e-8)


# ------------------------------------------------------------------------------------------ conservation
CONSERVATIVE = """
model Oscillator : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param m = 1.0
    param k = 2.0
    hamiltonian = p^2 / (2 * m) + k * q^2 / 2 + 0.5 * q^4
    port force { G = [[0], [1]] }
}

model PendulumPH : port_hamiltonian {
    state theta = 2.5
    state p = 0.0
    param m = 1.0
    param L = 1.3
    param g = 9.81
    hamiltonian = p^2 / (2 * m * L^2) + m * g * L * (1 - cos(theta))
}

model Spring : port_hamiltonian {
    state stretch = 0.0
    param k = 1.0
    hamiltonian = k * stretch^2 / 2
    J = [[0]]
    port ends { G = [[-1, 1]] }
}

model LosslessPair : port_hamiltonian {
    sub left   = Oscillator(m = 1.0)
    sub right  = Oscillator(m = 2.0, k = 0.5)
    sub spring = Spring(k = 1.5)
    couple [left.force, right.force, spring.ends] C = [[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]
}
"""

CONSERVATION_CASES = [
    ("Oscillator", [[1.0, 0.0], [-0.3, 1.5]]),
    ("PendulumPH", [[2.5, 0.0], [0.3, 4.0]]),
    ("LosslessPair", [[1.0, 0.0, -0.5, 0.3, 0.2], [0.0, 1.0, 0.4, -0.6, 0.0]]),
]


@pytest.mark.parametrize("name,x0", CONSERVATION_CASES, ids=[c[0] for c in CONSERVATION_CASES])
def test_energy_conserved_when_lossless(name, x0):
    model = _model(nodedsl.loads(CONSERVATIVE), name)
    x0 = torch.tensor(x0)
    t = torch.linspace(0.0, 50.0, 101)
    assert torch.all(model.dissipation(x0) == 0)
    with torch.no_grad():
        xs = torchdiffeq.odeint(model.driven(None), x0, t, method="dopri5", rtol=1e-10, atol=1e-12)
        h = model.hamiltonian(xs.reshape(-1, x0.shape[1])).reshape(len(t), -1)
    drift = ((h - h[0]).abs() / h[0].abs()).max().item()
    assert drift < 1e-6, f"{name}: relative energy drift {drift:.3g}"
    assert (xs[-1] - x0).abs().max() > 1e-3  # it really moved


def test_free_spring_is_at_rest():
    """Spring alone, no input: the field is identically zero (R = 0, J = 0)."""
    model = _model(nodedsl.loads(CONSERVATIVE), "Spring")
    x = torch.randn(8, 1)
    assert torch.all(model(torch.tensor(0.0), x) == 0)
    torch.testing.assert_close(model.hamiltonian(x), x[:, 0] ** 2 / 2)


# ------------------------------------------------------------------------------------------ gradcheck
def _field_of_state(model, u):
    def fn(x):
        return model.field(torch.tensor(0.2), x, u)

    return fn


def _field_of_parameter(model, pname: str, x, u):
    driven = model.driven(lambda t, batch: u)

    def fn(p):
        return functional_call(driven, {f"model.{pname}": p}, (torch.tensor(0.2), x))

    return fn


GRADCHECK = [
    # (file, model, learned parameters to check)
    ("pendulum.node", "Pendulum", ["learned.L", "nets.friction.0.weight", "nets.friction.4.bias"]),
    ("msd.node", "MassSpringDamper", ["nets.V.0.weight", "nets.V.2.bias", "nets.damping.4.weight"]),
    ("arm.node", "Arm", ["learned.m2", "nets.friction.0.weight"]),
]


@pytest.mark.parametrize("file,name,params", GRADCHECK, ids=[g[1] for g in GRADCHECK])
def test_gradcheck_field(file, name, params):
    model = _model(nodedsl.load(EXAMPLES / file), name)
    gen = torch.Generator().manual_seed(7)
    n, m = len(model.state_names), len(model.input_names)
    x = (torch.rand(3, n, generator=gen) - 0.5).requires_grad_(True)
    u = torch.rand(3, m, generator=gen) - 0.5
    assert torch.autograd.gradcheck(_field_of_state(model, u), (x,), eps=1e-6, atol=1e-7, rtol=1e-5)
    names = dict(model.named_parameters())
    for pname in params:
        p = names[pname].detach().clone().requires_grad_(True)
        fn = _field_of_parameter(model, pname, x.detach(), u)
        torch.testing.assert_close(fn(p), model.field(torch.tensor(0.2), x.detach(), u))
        assert torch.autograd.gradcheck(fn, (p,), eps=1e-6, atol=1e-7, rtol=1e-5), pname


def test_gradcheck_hamiltonian_net():
    """MassSpringDamper: grad H goes through autograd of the net V; second order through the field."""
    model = _model(nodedsl.load(EXAMPLES / "msd.node"), "MassSpringDamper")
    x = (torch.rand(4, 2, generator=torch.Generator().manual_seed(5)) - 0.5).requires_grad_(True)
    u = torch.zeros(4, 1)
    # dp/dt = -V'(q) - damping(p) p / m: compare -V'(q) with autograd of the net by hand
    q, p = x.detach()[:, :1], x.detach()[:, 1:]
    qq = q.clone().requires_grad_(True)
    (dv,) = torch.autograd.grad(model.nets["V"](qq).sum(), qq)
    want = -dv[:, 0] - model.nets["damping"](p)[:, 0] * p[:, 0] / 1.0
    torch.testing.assert_close(model.field(0.0, x.detach(), u)[:, 1], want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradgradcheck(_field_of_state(model, u), (x,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_net_derivative_field_with_and_without_grad():
    """The net-derivative path must work when the state does not require grad (inference, odeint)."""
    model = _model(nodedsl.load(EXAMPLES / "msd.node"), "MassSpringDamper")
    x = torch.rand(5, 2)
    with torch.no_grad():
        f = model(torch.tensor(0.0), x)
    assert not f.requires_grad
    f2 = model(torch.tensor(0.0), x)
    torch.testing.assert_close(f, f2.detach())
    loss = f2.pow(2).sum()
    loss.backward()
    assert model.nets["V"][0].weight.grad is not None and model.nets["V"][0].weight.grad.abs().sum() > 0


def test_hamiltonian_with_max_compiles():
    src = """
model Stop : port_hamiltonian {
    state q = 1
    state p = 0
    hamiltonian = p^2 / 2 + 2 * max(q, 0)^2
    port force { G = [[0], [1]] }
}
"""
    model = _model(nodedsl.loads(src), "Stop")
    x = torch.tensor([[0.5, 1.0], [-0.5, 1.0]])
    torch.testing.assert_close(model.field(0.0, x, torch.zeros(2, 1)), torch.tensor([[1.0, -2.0], [1.0, 0.0]]))
