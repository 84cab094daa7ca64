"""Passivity and conservation of *learned* port-Hamiltonian models, before and after training.

* Passivity: ``MassSpringDamper`` of examples/msd.node (nets inside ``H`` and ``R``) satisfies
  ``dH/dt <= y^T u`` (+1e-6) at random states and inputs, ``dH/dt = grad H . field(x, u)`` by autograd,
  at its random initialization and after a short training run: the structure, not the data, guarantees
  it. Integrated form along a driven simulation: ``H(T) - H(0) <= int y^T u dt``. The same holds for a
  model with every learned structure at once (net in H, ``J = skew(net(q))``, ``R = psd(net(p))``, a
  net in ``G``) at random, inflated parameters.
* Conservation: with ``R = 0`` and a net ``V`` in ``H`` the model is separable (``symplectic_split == 1``),
  and leapfrog keeps ``H`` within ``2 h^2 = 2e-4`` of its initial value over 10^4 steps of ``h = 0.01``
  (measured 3.3e-5 for the variant with a known spring, 2.7e-6 for the pure-net potential), with no drift.
* A ``weights`` clause pointing at another model's checkpoint is refused: tests/test_weights.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import nodedsl
from nodedsl.solvers import make_solver, solve
from nodedsl.train import load_weights, run_training, select_train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

CONSERVATIVE = """\
# MassSpringDamper of examples/msd.node without R: a learned potential, no dissipation.
model Conservative : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param m = 1.0
    net V(x) -> 1 { hidden = [32, 32], activation = tanh }
    hamiltonian = p^2 / (2 * m) + V(q)
    J = [[0, 1], [-1, 0]]
    port force { G = [[0], [1]] }
}

# The same with a known spring under the net: a random tanh net is a bounded potential, whose orbits
# escape to |q| ~ 200; the spring keeps them bounded so that leapfrog is tested on real oscillations.
model ConservativeSpring : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param m = 1.0
    net V(x) -> 1 { hidden = [32, 32], activation = tanh }
    hamiltonian = p^2 / (2 * m) + q^2 / 2 + V(q)
    J = [[0, 1], [-1, 0]]
    port force { G = [[0], [1]] }
}
"""


# every learned structure at once: a net in H, J = skew(net(q)), R = psd(net(p)), a state-dependent G
GENERAL = """\
model General : port_hamiltonian {
    state q[2] = 0.5
    state p[2] = 0.0
    net V(x[2]) -> 1 { hidden = [16] }
    net Jn(x[2]) -> 6 { hidden = [16] }
    net L(x[2]) -> 10 { hidden = [16] }
    net g(x[2]) -> 1 { hidden = [8] }
    hamiltonian = dot(p, p) / 2 + V(q)
    J = skew(Jn(q))
    R = psd(L(p))
    port force { G = [[0], [0], [1], [g(q)]] }
}
"""


@pytest.fixture(autouse=True)
def _float64_one_thread(float64):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _power(model, x, u):
    """``(dH/dt, y^T u, dissipation)`` at states ``x`` and port inputs ``u``."""
    xg = x.detach().requires_grad_(True)
    (grad_h,) = torch.autograd.grad(model.hamiltonian(xg).sum(), xg)
    with torch.no_grad():
        dh_dt = (grad_h * model.field(0.0, x, u)).sum(-1)
        supplied = (model.port_outputs(x) * u).sum(-1)
    return dh_dt, supplied, model.dissipation(x).detach()


def _assert_passive(model, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = 3.0 * torch.randn(1024, 2, generator=g, dtype=torch.float64)
    u = 2.0 * torch.randn(1024, 1, generator=g, dtype=torch.float64)
    dh_dt, supplied, diss = _power(model, x, u)
    assert bool((dh_dt <= supplied + 1e-6).all()), float((dh_dt - supplied).max())
    assert bool((diss >= 0).all())
    assert torch.allclose(dh_dt, supplied - diss, atol=1e-9)  # the balance, not only the inequality
    assert float(diss.max()) > 1e-3  # the damping net is not trivially zero


def _driven_energy_gap(model) -> float:
    """``max_t [H(t) - H(0) - int_0^t y^T u]`` along a forced rk4 simulation (should be <= 0)."""
    t = torch.linspace(0, 5, 501)

    def signal(tt, batch):
        return 1.5 * torch.sin(2 * torch.as_tensor(tt, dtype=torch.float64)).expand(batch, 1)

    x0 = torch.tensor([[0.5, -0.5], [-1.0, 1.0], [1.5, 0.0]])
    with torch.no_grad():
        ys = solve(model.driven(signal), x0, t, solver=make_solver("rk4", step=0.01)).ys  # [T, B, 2]
    T, B, n = ys.shape
    flat = ys.reshape(T * B, n)
    H = model.hamiltonian(flat).detach().reshape(T, B)
    y = model.port_outputs(flat).detach().reshape(T, B)
    power = y * 1.5 * torch.sin(2 * t)[:, None]
    supplied = torch.cat([torch.zeros(1, B), torch.cumulative_trapezoid(power, t, dim=0)])
    return float((H - H[0] - supplied).max())


def test_learned_msd_is_passive_before_and_after_training(tmp_path):
    for name in ("msd.node",):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    prog = nodedsl.load(tmp_path / "msd.node")
    torch.manual_seed(0)
    fresh = prog.model("MassSpringDamper")
    _assert_passive(fresh)
    assert _driven_energy_gap(fresh) <= 1e-5

    result = run_training(prog, select_train(prog), overrides={"epochs": "3"}, run_dir=tmp_path / "run")
    assert result.epochs_run == 3 and result.status == "completed"
    trained = prog.model("MassSpringDamper")
    load_weights(tmp_path / "run", trained)
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])]
    assert any(k.startswith("nets.") for k in changed)  # training really moved the nets
    _assert_passive(trained, seed=1)
    assert _driven_energy_gap(trained) <= 1e-5


def test_learned_structure_is_passive_for_any_parameters():
    prog = nodedsl.loads(GENERAL)
    g = torch.Generator().manual_seed(3)
    for seed in range(3):  # three random initializations, nets scaled up: the structure, not the values
        torch.manual_seed(seed)
        model = prog.model("General")
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)
        x = 2.0 * torch.randn(512, 4, generator=g, dtype=torch.float64)
        u = 2.0 * torch.randn(512, 1, generator=g, dtype=torch.float64)
        dh_dt, supplied, diss = _power(model, x, u)
        assert bool((dh_dt <= supplied + 1e-6).all())
        assert bool((diss >= -1e-12).all())
        assert torch.allclose(dh_dt, supplied - diss, atol=1e-8 * float(diss.abs().max().clamp_min(1.0)))


@pytest.mark.parametrize("name, measured", [("Conservative", 2.7e-6), ("ConservativeSpring", 3.3e-5)])
def test_learned_conservative_model_keeps_h_under_leapfrog(tmp_path, name, measured):
    (tmp_path / "cons.node").write_text(CONSERVATIVE)
    prog = nodedsl.load(tmp_path / "cons.node")
    torch.manual_seed(0)
    model = prog.model(name)
    assert model.symplectic_split == 1  # separable: dq/dt = p/m, dp/dt = -V'(q) (- q)
    h, steps = 0.01, 10_000
    g = torch.Generator().manual_seed(1)
    x0 = 4.0 * torch.rand(8, 2, generator=g, dtype=torch.float64) - 2.0
    t = torch.linspace(0, h * steps, steps + 1)
    with torch.no_grad():
        ys = solve(model, x0, t, solver=make_solver("leapfrog", step=h)).ys  # [steps + 1, 8, 2]
        H = model.hamiltonian(ys.reshape(-1, 2)).reshape(steps + 1, -1)
    err = (H - H[0]).abs()
    bound = 2 * h**2
    assert float(err.max()) <= bound, float(err.max())
    assert float(err.max()) == pytest.approx(measured, rel=0.2)  # what the docs quote
    # bounded oscillation, no secular drift: the last 1000 steps are no worse than the first 1000
    assert float(err[-1000:].max()) <= 1.05 * float(err[:1001].max())
    assert all(e == 0 for e in model.system.ph.R)  # R defaults to zero
