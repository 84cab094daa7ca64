"""Symbolic Jacobians and Taylor coefficients (nodedsl/derive.py, CompiledModel.jacobian/taylor_coefficients).

* the symbolic Jacobian equals ``vmap(jacrev)`` of the compiled field, and the symbolic Taylor
  coefficients equal the nested-``jvp`` ones of nodedsl/solvers/derivatives.py (float64, 1e-10), on
  the truth models of the examples and Van der Pol, plus a model with inputs, time and kinks;
* models with nets: first derivatives are symbolic, anything needing a second derivative raises
  ``NotImplementedError`` and the solver helpers fall back to AD;
* the solvers take the symbolic path (counted) with the same results, gradients and convergence order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_compile_vs_scipy import VDP  # the scipy-checked Van der Pol (mu learned, positive)
from torch.func import jacrev, vmap

import nodedsl
from nodedsl.solvers import derivatives as D
from nodedsl.solvers import make_solver, solve
from nodedsl.symbolic import derive

F64 = torch.float64
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

KINKS = """
model Kinks {
    state x = 1
    state y = 0.5
    input u = 0.3
    param k = 2 learn
    der(x) = -k * abs(x) * x + sin(t) * u + max(y, 0.2) - min(x, y)
    der(y) = clip(x, -0.5, 0.5) + sign(y) * x^2 + cos(2 * t) * y + sqrt(1 + x^2)
}
"""

STIFF = """
model Stiff {
    state a = 1
    state b = 1
    der(a) = -1000 * a + b
    der(b) = -b
}
"""


def _model(source: str, name: str):
    prog = nodedsl.load(EXAMPLES / source) if source.endswith(".node") else nodedsl.loads(source)
    return prog.model(name).double()


TRUTHS = [
    ("pendulum.node", "PendulumTruth"),
    ("lotka_volterra.node", "LotkaVolterraTruth"),
    (VDP, "VanDerPol"),
    ("msd.node", "MassSpringDamperTruth"),
]
IDS = ["pendulum", "lotka_volterra", "van_der_pol", "msd"]


def _states(n: int, seed: int = 0, scale: float = 1.0, batch: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, n, generator=g, dtype=F64) + 0.3


def _ad(model):
    """The same field without the symbolic attributes (a plain function): the AD reference."""
    return lambda t, x: model(t, x)


@pytest.mark.parametrize("source,name", TRUTHS, ids=IDS)
def test_jacobian_matches_jacrev(source, name):
    model = _model(source, name)
    x = _states(len(model.state_names), scale=2.0 if name == "LotkaVolterraTruth" else 1.0)
    t = torch.tensor(0.4, dtype=F64)
    ref = vmap(jacrev(lambda xi: model(t, xi.unsqueeze(0)).squeeze(0)))(x)
    got = model.jacobian(t, x)
    assert got.shape == (x.shape[0], x.shape[1], x.shape[1])
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(D.jacobian(model, t, x), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("source,name", TRUTHS, ids=IDS)
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_taylor_matches_nested_jvp(source, name, order):
    model = _model(source, name)
    x = _states(len(model.state_names), seed=order)
    t = torch.tensor(0.2, dtype=F64)
    ref = D.taylor_coefficients(_ad(model), t, x, order)
    got = model.taylor_coefficients(t, x, order)
    assert len(got) == order
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_inputs_time_and_kinks():
    """Non-autonomous, with an input held constant, and abs/sign/min/max/clip (autograd's conventions)."""
    model = _model(KINKS, "Kinks")
    x = _states(2, seed=5, batch=9)
    u = torch.randn(9, 1, generator=torch.Generator().manual_seed(1), dtype=F64)
    t = torch.tensor(0.7, dtype=F64)
    ref = vmap(jacrev(lambda xi, ui: model.field(t, xi[None], ui[None])[0]))(x, u)
    torch.testing.assert_close(model.jacobian(t, x, u), ref, rtol=1e-10, atol=1e-10)
    for order in (1, 2, 3, 4):
        ref = D.taylor_coefficients(lambda tt, xx: model.field(tt, xx, u), t, x, order)
        for g, r in zip(model.taylor_coefficients(t, x, order, u), ref):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_driven_delegates_with_signal():
    model = _model(KINKS, "Kinks")
    signal = lambda t, batch: torch.full((batch, 1), 0.5, dtype=F64) * torch.cos(t)  # noqa: E731
    field = model.driven(signal)
    x = _states(2, seed=2)
    t = torch.tensor(0.3, dtype=F64)
    u = signal(t, x.shape[0])
    torch.testing.assert_close(field.jacobian(t, x), model.jacobian(t, x, u))
    for g, r in zip(field.taylor_coefficients(t, x, 3), model.taylor_coefficients(t, x, 3, u)):
        torch.testing.assert_close(g, r)
    # Default inputs when there is no signal.
    plain = model.driven(None)
    u0 = model.default_inputs(x)
    torch.testing.assert_close(plain.jacobian(t, x), model.jacobian(t, x, u0))


def test_expressions_are_sympy():
    system = nodedsl.loads(VDP).system("VanDerPol")
    x, v = system.states
    mu = system.params[0].symbols[0]
    assert derive.jacobian_exprs(system) == [[0, 1], [-2 * mu * x * v - 1, mu * (1 - x**2)]]
    d1, d2 = derive.taylor_exprs(system, 2)
    assert d1 == system.rhs
    assert (d2[0] - system.rhs[1]).expand() == 0
    with pytest.raises(ValueError):
        derive.taylor_exprs(system, 0)


def test_net_derivatives_symbolic_first_taylor_mode_beyond():
    """Pendulum with a friction net: the Jacobian is symbolic (net' by autograd); order 3 has no
    symbolic form (net''), but Taylor-mode AD through the net gives every order."""
    model = _model("pendulum.node", "Pendulum")
    x = _states(2, seed=3)
    t = torch.tensor(0.0, dtype=F64)
    ref = vmap(jacrev(lambda xi: model(t, xi.unsqueeze(0)).squeeze(0)))(x)
    torch.testing.assert_close(model.jacobian(t, x), ref, rtol=1e-10, atol=1e-10)
    assert derive.taylor_exprs(model.system, 3) is None
    for order in (2, 3, 4):
        for g, r in zip(model.taylor_coefficients(t, x, order), D.taylor_coefficients(_ad(model), t, x, order)):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)
    res = solve(model, x, torch.tensor([0.0, 0.2], dtype=F64), solver=make_solver("taylor", order=3, step=0.05))
    assert bool(torch.isfinite(res.ys).all())


def test_net_derivative_in_field_falls_back_to_autograd():
    """A port-Hamiltonian model with a neural potential has V'(q) in its field: its Jacobian and
    Taylor order >= 2 need V''; the AD fallbacks must cope with autograd inside the field."""
    model = _model("msd.node", "MassSpringDamper")
    assert derive.jacobian_exprs(model.system) is None
    x = _states(2, seed=4)
    t = torch.tensor(0.0, dtype=F64)
    with pytest.raises(NotImplementedError):
        model.jacobian(t, x)
    with pytest.raises(NotImplementedError):
        model.taylor_coefficients(t, x, 2)
    jac = D.jacobian(model, t, x)
    d1, d2, d3 = D.taylor_coefficients(model, t, x, 3)
    torch.testing.assert_close(d1, model(t, x))
    torch.testing.assert_close(d2, (jac @ d1.unsqueeze(-1)).squeeze(-1), rtol=1e-10, atol=1e-10)
    # d3 by central differences of d2 along the flow.
    eps = 1e-5
    fd = (D.taylor_coefficients(model, t, x + eps * d1, 2)[1] - D.taylor_coefficients(model, t, x - eps * d1, 2)[1]) / (
        2 * eps
    )
    torch.testing.assert_close(d3, fd, rtol=1e-6, atol=1e-6)
    res = solve(model, x, torch.tensor([0.0, 0.1], dtype=F64), solver=make_solver("taylor", order=2, step=0.05))
    assert bool(torch.isfinite(res.ys).all())


def test_too_large_returns_none(monkeypatch):
    """Past MAX_OPS the symbolic Lie derivatives are refused; the model's coefficients then come
    from Taylor-mode AD (which does not grow that way) and still match nested forward mode."""
    model = _model(VDP, "VanDerPol")
    monkeypatch.setattr(derive, "MAX_OPS", 12)
    assert derive.taylor_exprs(model.system, 1) is not None
    assert derive.taylor_exprs(model.system, 4) is None
    x = _states(2)
    t = torch.tensor(0.0, dtype=F64)
    for g, r in zip(model.taylor_coefficients(t, x, 4), D.taylor_coefficients(_ad(model), t, x, 4)):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


class _Spy:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def _no_ad(*args, **kwargs):
    raise AssertionError("nested jvp used although the model has symbolic Taylor coefficients")


@pytest.mark.parametrize("remainder", [False, True])
def test_taylor_solver_uses_symbolic_path(monkeypatch, remainder):
    model = _model(VDP, "VanDerPol")
    x0 = _states(2, seed=6, batch=4)
    t = torch.linspace(0, 0.5, 3, dtype=F64)
    solver = make_solver("taylor", order=3, step=0.05, remainder=remainder, state_dim=2)
    solver.double()
    ref = solve(_ad(model), x0, t, solver=solver).ys
    spy = _Spy(model.taylor_coefficients)
    monkeypatch.setattr(model, "taylor_coefficients", spy, raising=False)
    monkeypatch.setattr(D, "_along_flow", _no_ad)
    got = solve(model, x0, t, solver=solver).ys
    assert spy.calls == 10 * (2 if remainder else 1)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def test_symbolic_taylor_gradients_match_ad():
    model = _model(VDP, "VanDerPol")
    x0 = _states(2, seed=7, batch=3)
    t = torch.linspace(0, 0.4, 3, dtype=F64)
    solver = make_solver("taylor", order=3, step=0.1, remainder=True, state_dim=2).double()
    grads = []
    for field in (model, _ad(model)):
        model.zero_grad()
        solver.zero_grad()
        solve(field, x0, t, solver=solver).ys[-1].pow(2).sum().backward()
        grads.append([p.grad.clone() for p in list(model.parameters()) + list(solver.parameters())])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_taylor_convergence_order_with_symbolic_coefficients(order):
    model = _model(VDP, "VanDerPol")
    x0 = torch.tensor([[2.0, 0.0], [0.5, -1.0]], dtype=F64)
    t = torch.tensor([0.0, 1.0], dtype=F64)
    with torch.no_grad():
        ref = solve(model, x0, t, solver=make_solver("rk4", step=1e-3)).ys[-1]
        errs = [
            float(
                (solve(model, x0, t, solver=make_solver("taylor", order=order, step=h, remainder=False)).ys[-1] - ref)
                .abs()
                .max()
            )
            for h in (0.04, 0.02)
        ]
    rate = torch.log2(torch.tensor(errs[0] / errs[1])).item()
    assert abs(rate - order) < 0.35, (errs, rate)


def test_implicit_solver_uses_symbolic_jacobian(monkeypatch):
    model = _model(STIFF, "Stiff")
    x0 = torch.ones(2, 2, dtype=F64)
    t = torch.tensor([0.0, 0.5], dtype=F64)
    solver = make_solver("sdirk2", step=0.05)
    ref = solve(_ad(model), x0, t, solver=solver)
    spy = _Spy(model.jacobian)
    monkeypatch.setattr(model, "jacobian", spy, raising=False)
    res = solve(model, x0, t, solver=solver)
    assert spy.calls == res.stats.njev > 0
    torch.testing.assert_close(res.ys, ref.ys, rtol=1e-12, atol=1e-12)
