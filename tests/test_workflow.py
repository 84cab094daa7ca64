"""The scientist's workflow around a trained model: simulate --run, load_run, untrained nets refused,
eval of a composite without a run, and the path/check gaps of issue 18 (one test each)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import nodedsl
from nodedsl.cli.main import app
from nodedsl.core.diagnostics import NodeDslError

SOURCE = """
model Truth {
    state x = 1.0
    input u = 0
    param k = 0.8
    der(x) = -k * x - 0.3 * tanh(2 * x) + u
}

model Learned {
    state x = 1.0
    input u = 0
    param k = 0.5 learn positive
    net f(x) -> 1 { hidden = [8], activation = tanh }
    der(x) = -k * x - f(x) + u
}

dataset decays {
    model = Truth
    trajectories = 6
    time = span(0, 2, step = 0.1)
    initial = { x = uniform(-2, 2) }
    seed = 0
}

train Learned {
    data = decays
    solver = rk4(step = 0.1)
    window = 5
    epochs = 3
    batch = 16
    validation = 0.34
    seed = 0
}
"""


def cli(*args: str):
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("wf")
    (d / "m.node").write_text(SOURCE)
    code, out = cli("train", str(d / "m.node"), "--run", str(d / "run"), "--quiet")
    assert code == 0, out
    return d


def _simulate_rows(path: Path) -> np.ndarray:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return np.array([[float(r["t"]), float(r["x"])] for r in rows])


def test_simulate_run_reproduces_predictions(trained):
    pred = np.load(trained / "run" / "predictions.npz")
    t, yhat = pred["t"], pred["yhat"]
    for i in range(len(t)):
        times = trained / f"t{i}.csv"
        times.write_text("t\n" + "\n".join(repr(float(v)) for v in t[i]) + "\n")
        out = trained / f"sim{i}.csv"
        code, msg = cli(
            "simulate", str(trained / "m.node"), "--run", str(trained / "run"),
            "--times", str(times), "--set", f"x={float(pred['y'][i, 0, 0])!r}", "-o", str(out),
        )  # fmt: skip
        assert code == 0, msg
        sim = _simulate_rows(out)
        np.testing.assert_allclose(sim[:, 1], yhat[i, :, 0], atol=1e-6, rtol=0)


def test_load_run_round_trips(trained):
    import torch

    model = nodedsl.load_run(trained / "run")
    state = torch.load(trained / "run" / "model.pt", weights_only=True)["model_state"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    prog = nodedsl.load(trained / "m.node")
    a = prog.simulate("Learned", [0.0, 0.5, 1.0], weights=trained / "run").ys
    b = prog.simulate("Learned", [0.0, 0.5, 1.0], weights=trained / "run").ys
    assert torch.equal(a, b)


def test_untrained_nets_are_refused(trained):
    prog = nodedsl.load(trained / "m.node")
    with pytest.raises(NodeDslError, match="no trained weights"):
        prog.simulate("Learned", [0.0, 1.0])
    a = prog.simulate("Learned", [0.0, 1.0], init="random", seed=3).ys
    assert (a == prog.simulate("Learned", [0.0, 1.0], init="random", seed=3).ys).all()
    code, out = cli("simulate", str(trained / "m.node"), "--model", "Learned", "--t-end", "1", "--step", "0.5")
    assert code == 1 and "untrained-nets" in out
    code, out = cli("simulate", str(trained / "m.node"), "-m", "Learned", "--t-end", "1", "--init", "random")
    assert code == 0, out


def test_eval_composite_without_run(trained):
    (trained / "c.node").write_text(
        'import "m.node"\nmodel Pair {\n    sub a = Learned() weights "run"\n    sub b = Learned() weights "run"\n}\n'
    )
    code, out = cli("simulate", str(trained / "c.node"), "--t-end", "2", "--step", "0.1", "-o", str(trained / "p.csv"))
    assert code == 0, out
    code, out = cli("eval", str(trained / "c.node"), "--model", "Pair", "--data", str(trained / "p.csv"))
    assert code == 0, out
    rmse = float(out.split("RMSE ")[1].split(",")[0])
    assert rmse < 1e-4  # rk4 at the data step against dopri5: the same trained model
    assert "a.k = " in out and "b.k = " in out
    code, out = cli("eval", str(trained / "m.node"), "--model", "Learned", "--data", str(trained / "p.csv"))
    assert code == 1 and "untrained-nets" in out


def test_check_gaps(tmp_path):
    (tmp_path / "m.node").write_text(SOURCE)
    (tmp_path / "c.node").write_text(
        'import "m.node"\nmodel Pair {\n    sub a = Learned() weights "runs/none"\n    sub b = Learned()\n}\n'
    )
    code, out = cli("check", str(tmp_path / "c.node"))
    assert code == 0, out
    # the composite counts its members' learned parameters and nets
    assert "Pair: 2 states, 2 inputs, 2 params (2 learned), 2 nets" in out
    # the weights path is resolved against the .node file's folder, and a missing one is reported
    assert "warning[missing-weights]" in out and str(tmp_path.resolve()) in out
    (tmp_path / "runs" / "none").mkdir(parents=True)
    (tmp_path / "runs" / "none" / "model.pt").write_bytes(b"")
    code, out = cli("check", str(tmp_path / "c.node"))
    assert "missing-weights" not in out


FORCED = Path(__file__).resolve().parent.parent / "examples" / "forced_msd.node"


def test_data_command_writes_signals(tmp_path):
    out = tmp_path / "sweep.csv"
    code, msg = cli("data", str(FORCED), "--dataset", "sweep", "-o", str(out))
    assert code == 0, msg
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["trajectory", "t", "q", "v", "force"]
    # the chirp of the sweep dataset: 1.5 sin(2 pi (f0 t + (f1 - f0) t^2 / (2 T))), f0 = 0.05, f1 = 1, T = 10
    for r in rows[::37]:
        t = float(r["t"])
        want = 1.5 * np.sin(2 * np.pi * (0.05 * t + 0.95 * t * t / 20))
        assert float(r["force"]) == pytest.approx(want, abs=1e-12)
    # multisine: a different draw per trajectory, the same on every run
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for p in (a, b):
        assert cli("data", str(FORCED), "-d", "excited", "-o", str(p))[0] == 0
    assert a.read_text() == b.read_text()
    data = np.loadtxt(a, delimiter=",", skiprows=1)
    forces = [data[data[:, 0] == k, 4] for k in (0, 1)]
    assert np.abs(forces[0] - forces[1]).max() > 0.1 and np.abs(forces[0]).max() < 2 * np.sqrt(8)


def test_missing_input_column_is_an_error(tmp_path):
    from nodedsl.frontend.config import validate_train
    from nodedsl.train.inputs import load_training_data

    (tmp_path / "d.csv").write_text("t,x\n0,1\n0.1,0.9\n0.2,0.8\n")
    text = SOURCE.replace("data = decays", 'data = "d.csv"')
    prog = nodedsl.loads(text, str(tmp_path / "m.node"))
    model = prog.model("Truth")
    cfg = validate_train(prog.trains[0])[0]
    with pytest.raises(NodeDslError) as err:
        load_training_data(prog, cfg, model, tmp_path)
    (diag,) = err.value.diagnostics
    assert "missing column 'u'" in diag.message and "missing_inputs = default" in " ".join(diag.notes)
    cfg = cfg.model_copy(update={"missing_inputs": "default"})
    traj, _ = load_training_data(prog, cfg, model, tmp_path)
    assert traj.u.shape == (1, 3, 1) and float(traj.u.abs().max()) == 0.0


def test_show_latex_is_a_standalone_align_block():
    code, out = cli("show", str(FORCED), "--model", "ForcedMSD", "--latex")
    assert code == 0, out
    body = out.strip().splitlines()
    assert body[0].startswith("% model ForcedMSD") and body[1] == "\\begin{align*}" and body[-1] == "\\end{align*}"
    assert "\\frac{\\mathrm{d} q}{\\mathrm{d} t} &= v" in out and "\\text{(at\\_rest)}" in out
    code, doc = cli("show", str(FORCED), "--latex-document")
    assert doc.startswith("\\documentclass{article}") and doc.rstrip().endswith("\\end{document}")
    assert doc.count("\\begin{align*}") == 2 and "\\usepackage{amsmath}" in doc


def test_net_scaling_options():
    import torch

    src = (
        "model M { state x = 1\n net f(x) -> 1 { hidden = [4], input_scale = 10, output_scale = 100 }\n der(x) = f(x) }"
    )
    model = nodedsl.loads(src).model("M")
    net = model.nets["f"]
    first, last = net[0], net[-1]
    assert not first.weight.requires_grad and not last.weight.requires_grad
    assert float(first.weight[0, 0]) == pytest.approx(0.1) and float(last.weight[0, 0]) == 100
    x = torch.tensor([[3.0]])
    inner = net[1:-1]
    assert torch.allclose(model.field(0.0, x, torch.zeros(1, 0)), 100 * inner(x / 10))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["nets.f.1.weight", "nets.f.1.bias", "nets.f.3.weight", "nets.f.3.bias"]
    with pytest.raises(NodeDslError, match="input_scale"):
        nodedsl.loads(src.replace("input_scale = 10", "input_scale = [1, 2]"))


def test_scale_auto_sets_the_scaling_layers_from_data(tmp_path):
    import torch

    src = SOURCE.replace("uniform(-2, 2)", "uniform(20, 40)").replace(
        "net f(x) -> 1 { hidden = [8], activation = tanh }", "net f(x) -> 1 { hidden = [8], scale = auto }"
    )
    (tmp_path / "m.node").write_text(src.replace("epochs = 3", "epochs = 1"))
    code, out = cli("train", str(tmp_path / "m.node"), "--run", str(tmp_path / "run"), "-q")
    assert code == 0, out
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model_state"]
    cfg = __import__("json").loads((tmp_path / "run" / "config.json").read_text())
    scales = cfg["data"]["net_scales"]["f"]
    assert 5 < scales["input_mean"][0] < 40 and scales["input_std"][0] > 1  # the net sees the (decaying) x
    assert float(state["nets.f.0.weight"][0, 0]) == pytest.approx(1 / scales["input_std"][0], rel=1e-5)
    assert float(state["nets.f.4.weight"][0, 0]) == pytest.approx(scales["output_scale"][0], rel=1e-5)
    model = nodedsl.load_run(tmp_path / "run")  # the scales travel with the run
    assert float(model.nets["f"][0].bias[0]) == pytest.approx(-scales["input_mean"][0] / scales["input_std"][0])


def test_simulate_dataset_experiments(trained):
    sim, data = trained / "simd.csv", trained / "data.csv"
    args = ("simulate", str(trained / "m.node"), "--run", str(trained / "run"), "--dataset", "decays")
    code, out = cli(*args, "--trajectories", "4", "-o", str(sim))
    assert code == 0, out
    assert cli("data", str(trained / "m.node"), "-d", "decays", "-o", str(data))[0] == 0
    s = np.loadtxt(sim, delimiter=",", skiprows=1)
    d = np.loadtxt(data, delimiter=",", skiprows=1)
    assert sorted(set(s[:, 0])) == [0, 1, 2, 3]
    # the same experiments: the trained model starts where the truth's trajectories start
    np.testing.assert_allclose(s[s[:, 1] == 0][:, 2], d[d[:, 1] == 0][:4, 2], rtol=0, atol=1e-12)
    # without --dataset, --trajectories makes random experiments: a model with nets still needs its run
    code, out = cli("simulate", str(trained / "m.node"), "--trajectories", "2")
    assert code == 1 and "untrained-nets" in out
