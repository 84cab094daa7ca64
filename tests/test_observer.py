"""Observers (contract §11): the KKL filter against scipy, a Luenberger observer with a stable gain
converging to the true state, and `train --observer` / `observe` end to end on a harmonic oscillator.
The accuracy targets on Van der Pol and the reverse Duffing oscillator are in benchmarks/kkl_observer.py
(docs/observers.md)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from typer.testing import CliRunner

import nodedsl
from nodedsl.cli.main import app
from nodedsl.train.observer import build_observer, kkl_filter, simulate_pairs

SRC = """
model Harmonic {
    state x1 = 1.0
    state x2 = 0.0
    der(x1) = x2
    der(x2) = -x1
}
observer Kkl for Harmonic {
    measure y = x1
    kind = kkl(dim = 3, poles = [-1, -2, -3])
    net T_inv(z[3]) -> 2 { hidden = [32, 32] }
    initial = { x1 = uniform(-1, 1), x2 = uniform(-1, 1) }
    trajectories = 20
    time = 12
    samples = 50
    epochs = 150
    lr = 1e-2
}
observer Lue for Harmonic {
    measure y = x1
    kind = luenberger(gain = [[2.0], [1.0]])
}
"""


def test_kkl_filter_matches_scipy():
    poles = torch.tensor([-0.5, -4.0], dtype=torch.float64)
    t = np.linspace(0, 6, 301)
    y = torch.tensor(np.sin(t) + 0.3 * t, dtype=torch.float64)[None, :, None]
    z = kkl_filter(poles, torch.ones(2, 1, dtype=torch.float64), y, float(t[1] - t[0]))[0].numpy()
    ref = solve_ivp(
        lambda s, zz: poles.numpy() * zz + np.sin(s) + 0.3 * s, (0, 6), [0.0, 0.0], t_eval=t, rtol=1e-10, atol=1e-12
    )
    # exact for y linear between samples: the error is y's interpolation error, O(dt^2)
    assert np.abs(z - ref.y.T).max() < 1e-4  # dt^2 / 8 |y''| / |slowest pole| = 1e-4


def test_luenberger_with_a_stable_gain_converges():
    prog = nodedsl.loads(SRC, "h.node")
    obs = build_observer(prog, prog.checked.configs["observer Lue"])
    x = simulate_pairs(obs, torch.tensor([[0.7, -0.4], [-1.0, 0.9]]), 1000, 0.01)
    est = obs.estimate(obs.h(x), 0.01)  # starts at the model's x0 = (1, 0), the error decays like e^-t
    assert float((est[:, 0] - x[:, 0]).abs().max()) > 0.3
    assert float((est[:, -1] - x[:, -1]).abs().max()) < 1e-3


@pytest.mark.slow
def test_train_and_observe_from_the_command_line(tmp_path):
    node = tmp_path / "h.node"
    node.write_text(SRC, encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["train", str(node), "--observer", "Kkl", "--run", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "observer.pt").is_file()
    t = np.arange(0, 10.001, 0.05)
    truth = np.stack([0.8 * np.cos(t) + 0.3 * np.sin(t), -0.8 * np.sin(t) + 0.3 * np.cos(t)], 1)
    with open(tmp_path / "m.csv", "w", encoding="utf-8") as fh:
        fh.write("t,y\n" + "".join(f"{a},{b}\n" for a, b in zip(t, truth[:, 0])))
    out = tmp_path / "est.csv"
    res = runner.invoke(
        app,
        ["observe", str(node), "--observer", "Kkl", "--run", str(tmp_path / "run"), "--data", str(tmp_path / "m.csv")]
        + ["-o", str(out)],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert list(rows[0]) == ["trajectory", "t", "x1", "x2"] and len(rows) == len(t)
    est = np.array([[float(r["x1"]), float(r["x2"])] for r in rows])
    late = t > 5  # after 5 / |slowest pole|
    rmse = np.sqrt(((est[late] - truth[late]) ** 2).mean(0))
    assert (rmse < 0.05 * (truth.max(0) - truth.min(0))).all(), rmse


def test_observe_reports_a_missing_column(tmp_path):
    node = tmp_path / "h.node"
    node.write_text(SRC, encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["train", str(node), "--observer", "Lue", "--run", str(tmp_path / "r")]).exit_code == 0
    (tmp_path / "m.csv").write_text("t,z\n0,1\n0.1,1\n", encoding="utf-8")
    res = runner.invoke(
        app,
        ["observe", str(node), "--observer", "Lue", "--run", str(tmp_path / "r"), "--data", str(tmp_path / "m.csv")],
    )
    assert res.exit_code == 1
    assert "error[data-error]: missing column 'y'" in res.output


@pytest.mark.parametrize("name", ["Nope"])
def test_unknown_observer_is_located(tmp_path, name):
    node = tmp_path / "h.node"
    node.write_text(SRC, encoding="utf-8")
    res = CliRunner().invoke(app, ["train", str(node), "--observer", name])
    assert res.exit_code == 1 and "error[undefined-name]" in res.output and "Kkl, Lue" in res.output


def test_learn_D_trains_the_poles_with_the_maps():
    """kkl(learn_D = true): the poles move (gradients reach D through the filter) and stay stable,
    and training the maps still lowers the loss; with learn_D = false the poles stay as declared."""
    from nodedsl.train.observer import train_observer

    short = SRC.replace("epochs = 150", "epochs = 6").replace("time = 12", "time = 7")
    fixed = build_observer(
        nodedsl.loads(short, "h.node"), nodedsl.loads(short, "h.node").checked.configs["observer Kkl"]
    )
    learned_src = short.replace("poles = [-1, -2, -3])", "poles = [-1, -2, -3], learn_D = true)")
    prog = nodedsl.loads(learned_src, "h.node")
    learned = build_observer(prog, prog.checked.configs["observer Kkl"])
    first: list[float] = []
    summary = train_observer(learned, lambda e, n, loss: first.append(loss))
    train_observer(fixed)
    assert fixed.poles.tolist() == [-1.0, -2.0, -3.0]
    moved = torch.tensor(summary["poles"]) - torch.tensor([-1.0, -2.0, -3.0])
    assert float(moved.abs().max()) > 1e-3 and all(p < 0 for p in summary["poles"])
    assert first[-1] < first[0]
