"""SDE solvers (torchsde): strong orders on geometric Brownian motion, weak moments of OU, errors."""

from __future__ import annotations

import math

import pytest
import torch

from nodedsl.core.errors import SolverError
from nodedsl.solvers import make_solver, solve
from nodedsl.solvers.sde import Noise, brownian, make_sde_solver, sdeint

F64 = torch.float64


def _slope(hs: list[float], errs: list[float]) -> float:
    lh, le = torch.log(torch.tensor(hs)), torch.log(torch.tensor(errs))
    lh, le = lh - lh.mean(), le - le.mean()
    return float((lh * le).sum() / (lh * lh).sum())


@pytest.mark.parametrize(("name", "order"), [("euler_maruyama", 0.5), ("milstein", 1.0)])
def test_strong_order_on_geometric_brownian_motion(name: str, order: float) -> None:
    """dX = mu X dt + sigma X dW has X(1) = exp(mu - sigma^2/2 + sigma W(1)) along the same path:
    the mean absolute error at t = 1 over 2000 paths falls like h^order (fitted over h = 2^-3..2^-8)."""
    mu, sigma = 0.5, 0.8
    x0, t = torch.ones(2000, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    bm = brownian(make_sde_solver(name, step=1.0), x0, t, channels=1, seed=3, interval=True)
    exact = torch.exp((mu - sigma**2 / 2) + sigma * bm(0.0, 1.0))
    hs, errs = [], []
    for k in range(3, 9):
        solver = make_sde_solver(name, step=2.0**-k)
        res = sdeint(lambda t, x: mu * x, lambda t, x: sigma * x, x0, t, solver=solver, bm=bm)
        hs.append(2.0**-k)
        errs.append(float((res.ys[-1].detach() - exact).abs().mean()))
    assert abs(_slope(hs, errs) - order) < 0.15, (name, errs)


@pytest.mark.parametrize("name", ["euler_maruyama", "milstein", "srk", "reversible_heun"])
def test_ornstein_uhlenbeck_mean_and_variance_within_three_standard_errors(name: str) -> None:
    """dX = theta (mu - X) dt + sigma dW from x0: E X(t) = mu + (x0 - mu) e^{-theta t},
    Var X(t) = sigma^2 (1 - e^{-2 theta t}) / (2 theta); 10,000 paths, h = 0.01 (weak bias ~ 0.5%)."""
    theta, mu, sigma, x0v, n = 1.0, 0.5, 0.3, 2.0, 10_000
    t = torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    solver = make_sde_solver(name, step=0.01, seed=11)
    res = sdeint(
        lambda t, x: theta * (mu - x),
        lambda t, x: torch.full_like(x, sigma),
        torch.full((n, 1), x0v, dtype=F64),
        t,
        solver=solver,
    )
    for i in (1, 2):
        ti = float(t[i])
        mean = mu + (x0v - mu) * math.exp(-theta * ti)
        var = sigma**2 * (1 - math.exp(-2 * theta * ti)) / (2 * theta)
        xs = res.ys[i, :, 0]
        assert abs(float(xs.mean()) - mean) < 3 * math.sqrt(var / n), (name, ti)
        # the sample variance of a Gaussian has standard error var * sqrt(2 / (n - 1))
        assert abs(float(xs.var()) - var) < 3 * var * math.sqrt(2 / (n - 1)), (name, ti)


def test_seed_fixes_the_paths_and_different_seeds_differ() -> None:
    args = (lambda t, x: -x, lambda t, x: 0.5 * torch.ones_like(x), torch.zeros(3, 2), torch.linspace(0, 1, 4))
    a = sdeint(*args, solver=make_sde_solver("euler_maruyama", step=0.05, seed=4)).ys
    b = sdeint(*args, solver=make_sde_solver("euler_maruyama", step=0.05), seed=4).ys
    c = sdeint(*args, solver=make_sde_solver("euler_maruyama", step=0.05, seed=5)).ys
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (4, 3, 2) and torch.equal(a[0], torch.zeros(3, 2))


def test_general_noise_with_m_wiener_processes() -> None:
    """dX = G dW with a constant 2 x 3 matrix: Cov X(1) = G G^T (additive noise, every method)."""
    g = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.3, 0.8]], dtype=F64)
    noise = Noise("general", channels=3, additive=True)
    x0, t = torch.zeros(5000, 2, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    for name in ("euler_maruyama", "milstein", "srk", "reversible_heun"):
        res = sdeint(
            lambda t, x: torch.zeros_like(x),
            lambda t, x: g.expand(x.shape[0], 2, 3),
            x0,
            t,
            solver=make_sde_solver(name, step=0.5, seed=2),
            noise=noise,
        )
        cov = torch.cov(res.ys[-1].T)
        assert torch.allclose(cov, g @ g.T, atol=0.08), name  # 4 standard errors at 5000 paths


def test_unsupported_noise_is_a_solver_error() -> None:
    noise = Noise("general", channels=2)  # state-dependent, non-commutative in general
    x0, t = torch.ones(2, 2), torch.tensor([0.0, 1.0])
    for name in ("milstein", "srk", "reversible_heun"):
        with pytest.raises(SolverError, match=r"does not support general noise|needs diagonal or additive"):
            sdeint(lambda t, x: x, lambda t, x: x.unsqueeze(-1).expand(2, 2, 2), x0, t,
                   solver=make_sde_solver(name, step=0.1), noise=noise)  # fmt: skip
    with pytest.raises(SolverError, match="ODE solver"):
        make_sde_solver("rk4", step=0.1)
    with pytest.raises(SolverError, match="an SDE needs an SDE solver"):
        sdeint(lambda t, x: x, lambda t, x: x, x0, t, solver=make_solver("rk4", step=0.1))  # type: ignore[arg-type]
    with pytest.raises(SolverError, match="option 'seed'"):
        make_sde_solver("srk", step=0.1, seed=-1)


def test_sde_solver_without_noise_is_its_deterministic_part() -> None:
    res = solve(lambda t, x: -x, torch.ones(1, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                solver=make_solver("euler_maruyama", step=0.01))  # fmt: skip
    assert abs(float(res.ys[-1, 0, 0]) - math.exp(-1)) < 3e-3


def test_adjoint_gradient_matches_backprop() -> None:
    """torchsde's stochastic adjoint and backprop through the solver agree on d E[X(1)^2] / d theta."""

    class Drift(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.theta = torch.nn.Parameter(torch.tensor(0.7, dtype=F64))

        def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return -self.theta * x

    class Diffusion(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sigma = torch.nn.Parameter(torch.tensor(0.4, dtype=F64))

        def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.sigma * torch.ones_like(x)

    drift, diffusion = Drift(), Diffusion()
    x0, t = torch.ones(64, 1, dtype=F64), torch.tensor([0.0, 0.5, 1.0], dtype=F64)
    grads = []
    for mode in ("backprop", "adjoint"):
        res = sdeint(drift, diffusion, x0, t, solver=make_sde_solver("euler_maruyama", step=0.01, seed=1),
                     gradient=mode)  # fmt: skip
        loss = (res.ys[-1] ** 2).mean()
        grads.append(torch.autograd.grad(loss, [drift.theta, diffusion.sigma]))
    for g_bp, g_adj in zip(*grads):
        assert torch.allclose(g_bp, g_adj, rtol=0.05, atol=1e-3), (g_bp, g_adj)


def test_transition_likelihood_minimum_is_the_least_squares_estimate() -> None:
    """The Euler-Maruyama likelihood of OU paths is a linear regression of dx on x: its minimum over
    (theta, mu, sigma) is the closed-form least-squares fit (slope -theta*dt, intercept theta*mu*dt,
    sigma^2 the residual variance / dt)."""
    from nodedsl.train.stochastic import em_transition_nll

    # Euler-Maruyama paths by hand (the scheme the likelihood assumes), 16 paths x 500 steps
    g = torch.Generator().manual_seed(5)
    paths = [torch.linspace(-1, 1, 16, dtype=F64)[:, None]]
    for _ in range(500):
        x = paths[-1]
        paths.append(x + 0.8 * (0.2 - x) * 0.01 + 0.4 * 0.1 * torch.randn(x.shape, generator=g, dtype=F64))
    paths = torch.stack(paths)
    x, dx = paths[:-1].reshape(-1, 1), (paths[1:] - paths[:-1]).reshape(-1, 1)
    dt = torch.full_like(x, 0.01)
    design = torch.cat([torch.ones_like(x), x], dim=1)
    coef = torch.linalg.lstsq(design, dx).solution[:, 0]
    theta_ls = float(-coef[1] / 0.01)
    mu_ls = float(coef[0] / 0.01 / theta_ls)
    sigma_ls = math.sqrt(float((dx[:, 0] - design @ coef).pow(2).mean()) / 0.01)
    raw = torch.tensor([1.0, 0.0, math.log(0.3)], dtype=F64, requires_grad=True)
    opt = torch.optim.LBFGS([raw], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        th, mu, ls = raw[0], raw[1], raw[2]
        loss = em_transition_nll(th * (mu - x), torch.exp(ls).expand_as(x), x, dx, dt)
        loss.backward()
        return loss

    opt.step(closure)
    raw = raw.detach()
    assert abs(float(raw[0]) - theta_ls) < 1e-4 and abs(float(raw[1]) - mu_ls) < 1e-4
    assert abs(math.exp(float(raw[2])) - sigma_ls) < 1e-5
    assert abs(theta_ls - 0.8) < 0.3 and abs(sigma_ls - 0.4) < 0.02  # and near the truth


def test_general_noise_likelihood_equals_the_diagonal_one_for_a_diagonal_matrix() -> None:
    from nodedsl.train.stochastic import em_transition_nll

    g = torch.Generator().manual_seed(0)
    x, dx, f = (torch.randn(50, 2, generator=g, dtype=F64) for _ in range(3))
    s = torch.rand(50, 2, generator=g, dtype=F64) + 0.1
    dt = torch.full((50, 1), 0.05, dtype=F64)
    a = em_transition_nll(f, s, x, dx, dt, obs_noise=0.01)
    b = em_transition_nll(f, torch.diag_embed(s), x, dx, dt, obs_noise=0.01)
    assert torch.allclose(a, b, atol=1e-5)


def test_ensemble_metrics_separate_distributions_and_have_finite_gradients() -> None:
    from nodedsl.train.stochastic import energy_distance, mmd

    g = torch.Generator().manual_seed(1)
    a = torch.randn(2, 200, 2, generator=g, dtype=F64)
    b = torch.randn(2, 200, 2, generator=g, dtype=F64)
    for metric in (energy_distance, mmd):
        same, shifted = float(metric(a, b)), float(metric(a, b + 0.5))
        assert same < 0.25 * shifted, metric.__name__  # V-statistics: a bias of order 1/n
        x = a.clone().requires_grad_(True)
        metric(x, torch.cat([x[:, :10].detach(), b[:, 10:]], dim=1)).backward()  # coincident points
        assert bool(torch.isfinite(x.grad).all())
    # energy distance of point masses: 2|a - b|
    assert abs(float(energy_distance(torch.zeros(1, 5, 1), torch.full((1, 7, 1), 3.0))) - 6.0) < 1e-9
