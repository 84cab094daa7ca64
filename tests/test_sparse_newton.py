"""The stiff solvers' sparse LU path (linear_solver = sparse | dense | auto) against the dense one."""

from __future__ import annotations

import math

import pytest
import torch

from nodedsl.core.errors import SolverError
from nodedsl.solvers import make_solver, solve
from nodedsl.solvers.linsolve import choose, factor
from nodedsl.solvers.registry import solver_from_text

F64 = torch.float64


def brusselator(n: int, alpha: float = 0.02):
    """Stiff 1-D BRUSS (Hairer-Wanner II, IV.10): n interior cells, u = 1 and v = 3 at both ends."""
    k = alpha * (n + 1) ** 2

    def field(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u, v = x[:, :n], x[:, n:]
        pad = torch.nn.functional.pad
        lu = pad(u, (1, 1), value=1.0)
        lv = pad(v, (1, 1), value=3.0)
        du = 1 + u**2 * v - 4 * u + k * (lu[:, :-2] - 2 * u + lu[:, 2:])
        dv = 3 * u - u**2 * v + k * (lv[:, :-2] - 2 * v + lv[:, 2:])
        return torch.cat([du, dv], dim=1)

    xs = torch.arange(1, n + 1, dtype=F64) / (n + 1)
    x0 = torch.cat([1 + torch.sin(2 * math.pi * xs), torch.full((n,), 3.0, dtype=F64)])[None]
    return field, x0


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", ["radau", "rodas4"])
def test_sparse_and_dense_lu_give_the_same_stiff_brusselator(name):
    field, x0 = brusselator(150)  # n = 300 states, 2% of the Jacobian nonzero
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    out = {}
    with torch.no_grad():
        for kind in ("auto", "dense"):
            res = solve(field, x0, t, solver=make_solver(name, rtol=1e-6, atol=1e-6, linear_solver=kind))
            out[kind] = res
    assert out["auto"].stats.linear_solver == "sparse"  # auto: n > 200 and sparse
    assert out["dense"].stats.linear_solver == "dense"
    assert float((out["auto"].ys - out["dense"].ys).abs().max()) < 1e-8
    assert out["auto"].stats.steps == out["dense"].stats.steps


def test_auto_keeps_small_or_dense_jacobians_dense():
    assert choose(torch.eye(50, dtype=F64)[None], "auto") == "dense"  # small
    assert choose(torch.ones(1, 300, 300, dtype=F64), "auto") == "dense"  # large but full
    assert choose(torch.ones(1, 300, 300, dtype=F64), "sparse") == "sparse"  # forced


def test_sparse_lu_solves_a_batch_of_complex_systems():
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(2, 6, 6, dtype=torch.complex128, generator=gen) + 6 * torch.eye(6)
    b = torch.randn(2, 6, dtype=torch.complex128, generator=gen)
    x = factor(m, "sparse").solve(b)
    assert torch.allclose(torch.einsum("bij,bj->bi", m, x), b, atol=1e-12)


def test_gradients_through_rodas4_with_the_sparse_path_match_dense():
    # The sparse LU is forward-only; the gradient replay is dense, so gradients agree.
    k = torch.tensor(3.0, dtype=F64, requires_grad=True)
    grads = []
    for kind in ("sparse", "dense"):
        res = solve(lambda t, x: -k * x, torch.ones(1, 2, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                    solver=make_solver("rodas4", rtol=1e-8, atol=1e-10, linear_solver=kind))  # fmt: skip
        grads.append(torch.autograd.grad(res.ys[-1].sum(), k)[0])
    assert abs(float(grads[0] - grads[1])) < 1e-10
    assert abs(float(grads[0]) - (-2 * math.exp(-3.0))) < 1e-6


def test_linear_solver_from_the_solver_call_and_unknown_values():
    assert solver_from_text("radau(linear_solver = sparse)").options["linear_solver"] == "sparse"
    with pytest.raises(SolverError, match="dense, sparse"):
        make_solver("radau", linear_solver="banded")
