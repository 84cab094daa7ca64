"""Index forms (issue 21): comprehensions and row-by-row `der` equations expand to vector literals.

Oracle: the 1-D reaction-diffusion system of docs/language.md written with index forms simulates like
scipy's solve_ivp of the same equations written in numpy (1e-6), for two N; the expanded model equals
the same model written out by hand (same compiled field)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import nodedsl

SRC = """
model ReactionDiffusion {
    param N = NN
    param D = 0.5
    param dx = 1 / (N - 1)
    state u[NN] = [sin(pi * i / (N - 1)) for i in 0..N-1]
    der(u[0]) = 0
    der(u[i]) = D * (u[i - 1] - 2 * u[i] + u[i + 1]) / dx^2 + u[i] * (1 - u[i]) for i in 1..N-2
    der(u[LAST]) = 0
}
"""


def _numpy_rhs(n: int):
    dx = 1 / (n - 1)

    def f(_t, u):
        out = np.zeros_like(u)
        out[1:-1] = 0.5 * (u[:-2] - 2 * u[1:-1] + u[2:]) / dx**2 + u[1:-1] * (1 - u[1:-1])
        return out

    return f


@pytest.mark.parametrize("n", [8, 24])
def test_reaction_diffusion_matches_scipy(n):
    prog = nodedsl.loads(SRC.replace("NN", str(n)).replace("LAST", str(n - 1)), "rd.node")
    t = np.linspace(0, 0.05, 11)
    res = prog.simulate("ReactionDiffusion", t=torch.tensor(t), solver="dopri5", rtol=1e-10, atol=1e-12)
    u0 = np.sin(np.pi * np.arange(n) / (n - 1))
    ref = solve_ivp(_numpy_rhs(n), (0, t[-1]), u0, t_eval=t, method="DOP853", rtol=1e-12, atol=1e-13)
    got = res.ys[:, 0, :].double().numpy() if res.ys.dim() == 3 else res.ys.double().numpy()
    assert np.abs(got - ref.y.T).max() < 1e-6


def test_expansion_equals_the_model_written_out():
    written = """
model W {
    state u[4] = [0.1, 0.2, 0.3, 0.4]
    der(u) = [-u[0], u[0] - 2 * u[1], u[1] - 2 * u[2], 0]
}
"""
    indexed = """
model W {
    state u[4] = [0.1 * (i + 1) for i in 0..3]
    der(u[0]) = -u[0]
    der(u[i]) = u[i - 1] - 2 * u[i] for i in 1..2
    der(u[3]) = 0
}
"""
    a = nodedsl.loads(written, "a.node").model("W", dtype=torch.float64)
    b = nodedsl.loads(indexed, "b.node").model("W", dtype=torch.float64)
    x = torch.randn(5, 4, dtype=torch.float64)
    t, u = torch.zeros(()), torch.zeros(5, 0, dtype=torch.float64)
    assert torch.equal(a.field(t, x, u), b.field(t, x, u))
    assert torch.allclose(a.x0_default, b.x0_default, rtol=0, atol=1e-15)


def test_nested_comprehension_builds_a_matrix():
    src = """
model M {
    param A = [[1 / (i + j + 1) for j in 0..2] for i in 0..2]
    state x[3] = [1, 1, 1]
    der(x) = -(A @ x)
}
"""
    prog = nodedsl.loads(src, "m.node")
    model = prog.model("M", dtype=torch.float64)
    x = torch.ones(1, 3, dtype=torch.float64)
    hilbert = torch.tensor([[1 / (i + j + 1) for j in range(3)] for i in range(3)], dtype=torch.float64)
    got = model.field(torch.zeros(()), x, torch.zeros(1, 0, dtype=torch.float64))
    assert torch.allclose(got, -(x @ hilbert.T), atol=1e-15)
