"""Exponential time differencing (``etd``): phi functions against closed forms, convergence orders 1,
2, 4 on a manufactured semilinear problem (exact solution), gradients through a learned ``A`` against
finite differences, the compiler's semilinear split on a vector-state model, simulate and train, and
the errors when a field has no linear part."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nodedsl
from nodedsl.compiler.semilinear import semilinear_parts
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.solvers import Semilinear, SolverError, make_solver, phi_functions, solve

F64 = torch.float64
A3 = torch.tensor([[-4.0, 1.0, 0.0], [1.0, -2.5, 2.0], [0.0, 0.5, -1.0]], dtype=F64)
W = torch.tensor([1.0, 2.0, 0.5], dtype=F64)


def exact(t: torch.Tensor) -> torch.Tensor:
    return torch.sin(W * t + 0.3)[None]


def manufactured(A: torch.Tensor) -> Semilinear:
    """x' = A x + N(t, x) with N(t, x) = g' - A g + x^2 - g^2: the solution is x = g(t)."""

    def N(t, x):
        g = exact(t)
        return (W * torch.cos(W * t + 0.3))[None] - g @ A.T + x**2 - g**2

    return Semilinear(A, N)


def test_phi_functions_match_closed_forms_and_stay_stable_near_zero():
    z = torch.tensor([-1e-9, -0.7, 2.0, -60.0], dtype=F64)
    p0, p1, p2, p3 = (torch.diagonal(m) for m in phi_functions(torch.diag(z), 3))
    for i, zi in enumerate(z.tolist()):
        if abs(zi) < 1e-6:  # the scalar formulas cancel here; the series is exact to round-off
            want = (1.0, 1.0, 0.5, 1 / 6)
        else:
            e1 = math.expm1(zi)
            want = (math.exp(zi), e1 / zi, (e1 - zi) / zi**2, (e1 - zi - zi * zi / 2) / zi**3)
        got = (p0[i].item(), p1[i].item(), p2[i].item(), p3[i].item())
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15), zi


@pytest.mark.parametrize("order", [1, 2, 4])
def test_convergence_order(order):
    field, t = manufactured(A3), torch.tensor([0.0, 1.0], dtype=F64)
    hs = [0.04, 0.02, 0.01]
    errs = []
    for h in hs:
        ys = solve(field, exact(t[0]), t, solver=make_solver("etd", order=order, step=h)).ys
        errs.append(float((ys[-1] - exact(t[1])).abs().max()))
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert abs(slope - order) < 0.2, (order, slope, errs)


def test_stiff_linear_part_is_exact_at_steps_far_past_explicit_stability():
    """x' = A x + b with eigenvalues down to -1e4: ETD1 is exact for a constant N (phi_1 integrates it);
    rk4 at the same step blows up."""
    A = torch.diag(torch.tensor([-1e4, -30.0, -1.0], dtype=F64))
    b = torch.tensor([[1.0, 2.0, 3.0]], dtype=F64)
    field, x0, t = Semilinear(A, lambda t, x: b.expand_as(x)), torch.ones(2, 3, dtype=F64), torch.tensor([0.0, 1.0])
    ys = solve(field, x0, t, solver=make_solver("etd", order=1, step=0.25)).ys
    lam = torch.diagonal(A)
    want = torch.exp(lam) * x0 + b * torch.expm1(lam) / lam
    torch.testing.assert_close(ys[-1], want, rtol=1e-12, atol=1e-12)
    rk4 = solve(field, x0, t, solver=make_solver("rk4", step=0.25)).ys[-1]
    assert not bool(torch.isfinite(rk4).all()) or float(rk4.abs().max()) > 1e6


def test_gradient_through_a_learned_A_matches_finite_differences():
    t = torch.tensor([0.0, 0.3, 0.6], dtype=F64)

    def run(A):
        field = Semilinear(A, lambda tt, x: torch.sin(x) - 0.5 * x**2 + torch.cos(tt))
        return solve(field, torch.tensor([[0.4, -0.2, 0.9]], dtype=F64), t, solver=make_solver("etd", step=0.1)).ys

    assert torch.autograd.gradcheck(run, (A3.clone().requires_grad_(True),), eps=1e-6, atol=1e-7)


def test_phi_cache_reuses_coefficients_until_A_changes():
    solver = make_solver("etd", order=2, step=0.1)
    A = A3.clone()
    field = manufactured(A)
    t = torch.tensor([0.0, 0.5], dtype=F64)
    first = solve(field, exact(t[0]), t, solver=solver).ys
    cached = solver._cache
    assert solve(field, exact(t[0]), t, solver=solver).ys.equal(first) and solver._cache is cached
    A[0, 0] = -5.0  # the same tensor, new values: recomputed
    assert not solve(field, exact(t[0]), t, solver=solver).ys.equal(first) and solver._cache is not cached


AC = """model Ac {
  state u[8] = [0.1, 0.5, 0.9, 0.4, -0.2, -0.7, -0.5, -0.1]
  param D = 40 learn positive
  let left = [u[7], u[0], u[1], u[2], u[3], u[4], u[5], u[6]]
  let right = [u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[0]]
  der(u) = D * (left - 2 * u + right) + u - u^3
}
"""


def test_compiled_vector_model_split_and_simulate():
    prog = nodedsl.loads(AC)
    model = prog.model("Ac", dtype=F64)
    A, N = semilinear_parts(model)
    lap = (
        -2 * torch.eye(8, dtype=F64)
        + torch.roll(torch.eye(8, dtype=F64), 1, 1)
        + torch.roll(torch.eye(8, dtype=F64), -1, 1)
    )
    torch.testing.assert_close(A, 40 * lap + torch.eye(8, dtype=F64), rtol=1e-6, atol=1e-6)  # softplus round trip
    x = torch.randn(3, 8, dtype=F64)
    torch.testing.assert_close(N(torch.tensor(0.0), x), -(x**3))  # the linear terms cancelled symbolically
    A.sum().backward()  # D is learned: A carries its gradient
    assert model.learned["D"].grad is not None
    t = torch.linspace(0, 0.5, 6, dtype=F64)
    x0, field = model.x0_default[None], model.driven(None)
    with torch.no_grad():  # rk4 well inside its stability limit (h |lambda| = 0.4) as the reference
        ref = solve(field, x0, t, solver=make_solver("rk4", step=0.0025)).ys
        got = solve(field, x0, t, solver=make_solver("etd", order=4, step=0.0125)).ys
    assert float((got - ref).abs().max()) < 5e-6
    sim = prog.simulate("Ac", t.float(), solver="etd", order=4, step=0.0125).ys  # the Python API, float32
    assert float((sim.double() - ref).abs().max()) < 1e-4
    with pytest.raises(SolverError, match="rk4"):  # the same model through a field without the split
        solve(lambda tt, xx: model(tt, xx), x0, t, solver=make_solver("etd", step=0.1))


def test_train_block_with_etd_recovers_the_diffusion_coefficient(tmp_path):
    from nodedsl.train import run_training, select_train

    src = (
        AC.replace("model Ac", "model AcTruth").replace("param D = 40 learn positive", "param D = 40")
        + AC.replace("param D = 40", "param D = 25")
        + """
dataset fronts {
  model = AcTruth
  trajectories = 4
  time = span(0, 0.3, step = 0.02)
  seed = 1
}
train Ac {
  data = fronts
  solver = etd(order = 2, step = 0.02)
  window = 15
  epochs = 10
  optimizer = adam(lr = 2)
  validation = 0
}
"""
    )
    path = tmp_path / "ac.node"
    path.write_text(src)
    prog = nodedsl.load(path)
    res = run_training(prog, select_train(prog), run_dir=tmp_path / "run")
    assert abs(res.parameters["D"] - 40) < 3.0, res.parameters  # from 25
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] / 100


def test_no_linear_part_is_a_clear_error():
    with pytest.raises(SolverError, match="needs a semilinear field") as exc:
        solve(lambda t, x: -x, torch.ones(1, 2), torch.tensor([0.0, 1.0]), solver=make_solver("etd", step=0.1))
    assert "rk4" in str(exc.value) and "radau" in str(exc.value)
    with pytest.raises(SolverError, match="A == 0"):
        solve(
            Semilinear(torch.zeros(2, 2), lambda t, x: -(x**3)),
            torch.ones(1, 2),
            torch.tensor([0.0, 1.0]),
            solver=make_solver("etd", step=0.1),
        )
    prog = nodedsl.loads("model Q { state a = 1\n state b = 2\n der(a) = a * b\n der(b) = -a^2 }")
    with pytest.raises((SolverError, NodeDslError), match="semilinear"):
        prog.simulate("Q", [0.0, 1.0], solver="etd", step=0.1)


def test_bad_order_is_a_located_config_error():
    from nodedsl.frontend.config import validate_train
    from nodedsl.frontend.parse import parse_source

    tr = parse_source("train M {\n data = d\n solver = etd(order = 3, step = 0.1)\n}", "t.node").trains[0]
    cfg, diags = validate_train(tr)
    assert cfg is None and [(d.code, d.span.line) for d in diags] == [("bad-value", 3)]
    assert "one of 1, 2, 4" in diags[0].message
    tr = parse_source("train M {\n data = d\n solver = etd(2, 0.05)\n}", "t.node").trains[0]
    cfg, diags = validate_train(tr)
    assert diags == [] and cfg.solver.options == {"order": 2, "step": 0.05}
