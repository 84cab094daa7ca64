"""Second-order optimizers: ``gauss_newton`` against scipy's Levenberg-Marquardt on a nonlinear least
squares problem, its Jacobian against autograd, the KFAC update against its formula, both in the
training loop, and the train block's options and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _fake_model import FakeDecay, FakePendulum
from scipy.optimize import least_squares

from nodedsl.frontend.config import validate_train
from nodedsl.frontend.parse import parse_source
from nodedsl.train import fit
from nodedsl.train.second_order import KFAC, GaussNewton, OptimizerError, jacobian

F64 = torch.float64


def make_cfg(body: str):
    cfg, diags = validate_train(parse_source(f"train M {{\n data = d\n {body}\n}}", "t.node").trains[0])
    assert diags == [], diags
    return cfg


def test_gauss_newton_matches_scipy_levenberg_marquardt():
    """Fit y = a exp(b t) + c to noisy samples: the least-squares minimizer is scipy's."""
    gen = np.random.default_rng(0)
    t = np.linspace(0, 2, 30)
    y = 1.5 * np.exp(-0.8 * t) + 0.3 + 0.01 * gen.standard_normal(30)
    want = least_squares(lambda p: p[0] * np.exp(p[1] * t) + p[2] - y, [1.0, -0.1, 0.0], method="lm", xtol=1e-15).x
    p = torch.nn.Parameter(torch.tensor([1.0, -0.1, 0.0], dtype=F64))
    tt, yy = torch.tensor(t), torch.tensor(y)
    opt = GaussNewton([p], damping=1e-3)
    for _ in range(30):
        opt.step(lambda: p[0] * torch.exp(p[1] * tt) + p[2] - yy)
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-6)


def test_jacobian_matches_autograd():
    a = torch.randn(3, dtype=F64, requires_grad=True)
    b = torch.randn(2, 2, dtype=F64, requires_grad=True)

    def f(a, b):
        return torch.cat([torch.sin(a) * b.sum(), (b @ a[:2]) ** 2, a.prod().reshape(1)])

    J = jacobian(f(a, b), [a, b])
    ja, jb = torch.autograd.functional.jacobian(f, (a, b))
    torch.testing.assert_close(J, torch.cat([ja, jb.reshape(len(ja), -1)], dim=1))


def test_gauss_newton_rejects_too_many_parameters():
    with pytest.raises(OptimizerError, match="max_params = 10"):
        GaussNewton([torch.nn.Parameter(torch.zeros(11))], max_params=10)


def test_kfac_update_is_the_kronecker_formula():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2).double()
    X, Y = torch.randn(10, 3, dtype=F64), torch.randn(10, 2, dtype=F64)
    W0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    opt = KFAC(lin.parameters(), [lin], lr=0.1, damping=1e-2, momentum=0.0, kl_clip=1e9)
    with opt.capture():
        out = lin(X)
        loss = ((out - Y) ** 2).mean()
        loss.backward()
    grad = torch.cat([lin.weight.grad, lin.bias.grad[:, None]], dim=1)
    opt.step()
    a = torch.cat([X, torch.ones(10, 1, dtype=F64)], dim=1)
    g = 2 * (out.detach() - Y) / 20 * 10  # d loss / d out, per row of a mean loss
    A, G = a.T @ a / 10, g.T @ g / 10
    pi = math.sqrt((A.trace() / 4) / (G.trace() / 2))
    d = math.sqrt(1e-2)
    nat = (
        torch.linalg.inv(G + d * pi * torch.eye(2, dtype=F64))
        @ grad
        @ torch.linalg.inv(A + d / pi * torch.eye(4, dtype=F64))
    )
    torch.testing.assert_close(lin.weight.detach(), W0 - 0.1 * nat[:, :3])
    torch.testing.assert_close(lin.bias.detach(), b0 - 0.1 * nat[:, 3])


def test_kfac_needs_a_net():
    with pytest.raises(OptimizerError, match="no trained net"):
        KFAC([torch.nn.Parameter(torch.zeros(2))], [])


@pytest.fixture(scope="module")
def decay_windows():
    from nodedsl.data.loading import make_windows, split_by_trajectory
    from nodedsl.data.synth import generate
    from nodedsl.frontend.config import validate_dataset

    ds = parse_source(
        "dataset d { model = X\n trajectories = 4\n time = span(0, 2, step = 0.1)\n"
        " initial = { x = uniform(0.5, 1.5) }\n noise = 0.01\n seed = 1 }",
        "d.node",
    ).datasets[0]
    dcfg, _ = validate_dataset(ds)
    tr, va = split_by_trajectory(generate(FakeDecay(k=1.0), dcfg), 0.25, 0)
    return make_windows(tr, 5), make_windows(va, 5)


def test_gauss_newton_trains_in_few_epochs(decay_windows):
    wt, wv = decay_windows
    model = FakeDecay(k=0.3)
    res = fit(
        model,
        wt,
        wv,
        make_cfg(
            "solver = rk4(step = 0.1)\n window = 5\n epochs = 4\n batch = 256\n"
            " optimizer = gauss_newton(damping = 1e-3)\n seed = 3"
        ),
    )
    assert abs(res.parameters["k"] - 1.0) < 0.02, res.parameters
    with pytest.raises(OptimizerError, match="mae"):
        fit(FakeDecay(k=0.3), wt, wv, make_cfg("optimizer = gauss_newton\n loss = mae\n epochs = 1"))


def test_kfac_trains_a_hybrid_model(decay_windows):
    from nodedsl.data.loading import make_windows
    from nodedsl.data.synth import generate
    from nodedsl.frontend.config import validate_dataset

    ds = parse_source(
        "dataset d { model = X\n trajectories = 6\n time = span(0, 2, step = 0.1)\n"
        " initial = { theta = uniform(-1, 1), omega = uniform(-1, 1) }\n seed = 1 }",
        "d.node",
    ).datasets[0]
    wt = make_windows(generate(FakePendulum(L=1.3, c=0.4), validate_dataset(ds)[0]), 5)
    torch.manual_seed(0)
    model = FakePendulum(L=1.0)
    cfg = make_cfg(
        "solver = rk4(step = 0.1)\n window = 5\n epochs = 8\n batch = 64\n constraints = none\n"
        " optimizer = kfac(lr = 0.05, other_lr = 0.05)\n validation = 0\n seed = 3"
    )
    res = fit(model, wt, None, cfg)
    losses = [h["train_loss"] for h in res.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] / 3, losses


def test_train_block_options_are_typed_and_located():
    cfg = make_cfg("optimizer = kfac(0.02, 1e-4, decay = 0.9)")
    assert (cfg.optimizer.kind, cfg.optimizer.lr, cfg.optimizer.damping, cfg.optimizer.decay) == (
        "kfac",
        0.02,
        1e-4,
        0.9,
    )
    assert make_cfg("optimizer = gauss_newton(1e-2)").optimizer.damping == 1e-2
    for body, code in (
        ("optimizer = gauss_newton(damping = -1)", "bad-value"),
        ("optimizer = kfac(decay = 1.5)", "bad-value"),
        ("optimizer = gauss_newton(dampng = 1)", "unknown-key"),
        ("optimizer = newton", "bad-value"),
    ):
        tr = parse_source(f"train M {{\n data = d\n {body}\n}}", "t.node").trains[0]
        cfg, diags = validate_train(tr)
        assert cfg is None and [(d.code, d.span.line) for d in diags] == [(code, 3)], (body, diags)
