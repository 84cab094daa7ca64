"""Library calls leave process-wide state alone: torch's default dtype and thread count, matplotlib's
backend, torchdiffeq's solver table (a fit, an adjoint solve, a simulation and the plots)."""

from __future__ import annotations

import matplotlib
import torch
import torchdiffeq
from _fake_model import FakeDecay

import nodedsl
from nodedsl.frontend.config import validate_train
from nodedsl.frontend.parse import parse_source
from nodedsl.plots.energy import plot_energy
from nodedsl.plots.training import plot_fit, plot_losses
from nodedsl.simulate import SimulationRequest, run_simulation
from nodedsl.solvers import make_solver, solve
from nodedsl.train import fit
from nodedsl.train.rollout import WindowField  # noqa: F401  (the windows below go through it)


def _state() -> tuple:
    from torchdiffeq._impl.odeint import SOLVERS  # read only: the table nodedsl must not write to

    backend = dict.__getitem__(matplotlib.rcParams, "backend")  # raw: reading it must not resolve it
    return torch.get_default_dtype(), torch.get_num_threads(), backend, frozenset(SOLVERS), torchdiffeq.__name__


def test_library_calls_leave_global_state_unchanged(tmp_path):
    before = _state()
    # a fit (threads are set for the call and restored) and its loss plot
    from test_train_loop import make_data

    wt, wv = make_data(FakeDecay(k=1.0), "x = uniform(0.5, 1.5)", n=3)
    body = "solver = rk4(step = 0.1)\n window = 5\n batch = 4\n epochs = 2\n seed = 3"
    cfg, diags = validate_train(parse_source(f"train M {{\n data = d\n {body}\n}}", "t.node").trains[0])
    assert diags == []
    res = fit(FakeDecay(k=0.5), wt, wv, cfg)
    assert res.epochs_run == 2 and _state() == before
    plot_losses(res.history, tmp_path / "loss.png")
    t = torch.linspace(0, 1, 4).repeat(1, 1).numpy()
    plot_fit(t, t[:, :, None], t[:, :, None], ["x"], tmp_path / "fit.png")
    assert _state() == before
    # an adjoint solve with a fixed-step tableau (no entry added to torchdiffeq's table)
    field = torch.nn.Linear(2, 2).double()
    x0 = torch.ones(1, 2, dtype=torch.float64, requires_grad=True)
    grid = torch.tensor([0.0, 0.5], dtype=torch.float64)
    solve(lambda tt, x: field(x), x0, grid, solver=make_solver("rk4", step=0.1), gradient="backprop")
    ys = solve(_Module(field), x0, grid, solver=make_solver("rk4", step=0.1), gradient="adjoint").ys
    ys.sum().backward()
    assert x0.grad is not None and _state() == before
    # a simulation runs in float64 without changing the default dtype, and the energy plot
    prog = nodedsl.loads("model M { state x = 1\n der(x) = -x }")
    table = run_simulation(prog, SimulationRequest(model="M", t_end=1, step=0.5))
    assert table.rows.dtype.name == "float64" and _state() == before
    energy = {"t": [0.0, 1.0], "H": [1.0, 0.5], "P_dissipated": [0.5, 0.5], "P_supplied": [0.0, 0.0]}
    plot_energy(energy, tmp_path / "energy.png")
    assert _state() == before
    assert all((tmp_path / f).stat().st_size > 0 for f in ("loss.png", "fit.png", "energy.png"))


class _Module(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)
