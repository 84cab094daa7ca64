"""Export of trained models (issue 12): pt2 and ONNX fields and rollouts that run in a process where
``import nodedsl`` fails, grad H of nets as explicit operations (torch.compile fullgraph), safetensors
weights loaded without pickle, and bad input as located coded errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import nodedsl
from nodedsl.cli.main import app
from nodedsl.compiler import nets as cnets
from nodedsl.compiler import ops
from nodedsl.core.tableaus import RK4
from nodedsl.export import load_exported, programs
from nodedsl.solvers import make_solver, solve

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = [
    ("pendulum.node", "Pendulum"),
    ("msd.node", "MassSpringDamper"),
    ("two_masses.node", "TwoMassesLearned"),
]

# the child process: nodedsl cannot be imported there; it evaluates every exported file on the inputs
CHILD = r"""
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "nodedsl" or name.startswith("nodedsl."):
            raise ImportError("nodedsl is blocked in this process")
sys.meta_path.insert(0, Blocked())
try:
    import nodedsl
    raise SystemExit("nodedsl was importable")
except ImportError:
    pass
import os
import numpy as np, onnxruntime, torch
folder = sys.argv[1]
data = dict(np.load(folder + "/inputs.npz"))
out = {}
for key in sorted(k[:-2] for k in data if k.endswith("_x")):
    t, x, u = data[key + "_t"], data[key + "_x"], data[key + "_u"]
    program = torch.export.load(f"{folder}/{key}.pt2").module()
    with torch.no_grad():
        out[key + "_pt2"] = program(torch.tensor(t), torch.tensor(x), torch.tensor(u)).numpy()
    if os.path.exists(f"{folder}/{key}.onnx"):
        session = onnxruntime.InferenceSession(f"{folder}/{key}.onnx")
        names = [i.name for i in session.get_inputs()]
        out[key + "_onnx"] = session.run(None, dict(zip(names, (t, x, u))))[0]
np.savez(folder + "/outputs.npz", **out)
print("nodedsl" in sys.modules)
"""


def _model(file: str, name: str):
    torch.manual_seed(0)  # nets initialized from a fixed seed: the same fields on every run
    return nodedsl.load(EXAMPLES / file).model(name, torch.float64)


def _inputs(model, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    n, m = len(model.state_names), len(model.input_names)
    x = torch.randn(batch, n, generator=g, dtype=torch.float64)
    u = torch.randn(batch, m, generator=g, dtype=torch.float64)
    return torch.tensor(0.7, dtype=torch.float64), x, u


def _need_onnx() -> None:
    for name in ("onnx", "onnxscript", "onnxruntime"):  # the `export` extra (in `dev`, so CI has them)
        pytest.importorskip(name)


def _run_child(folder: Path, inputs: dict) -> dict:
    """Evaluate every exported file of ``folder`` in a fresh process where ``import nodedsl`` fails."""
    np.savez(folder / "inputs.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True, env=env, cwd=folder, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "False"  # the child never had nodedsl
    return dict(np.load(folder / "outputs.npz"))


def _rollout_case(folder: Path, onnx: bool):
    """3 rk4 steps of 0.05 of the pendulum, the input held; nodedsl's own fixed-step rk4 is the oracle."""
    model = _model("pendulum.node", "Pendulum")
    steps, h = 3, 0.05
    program = programs.export_rollout(model, RK4, h, steps)
    programs.save_pt2(program, folder / "rollout.pt2")
    if onnx:
        programs.save_onnx(program, folder / "rollout.onnx", ("t0", "x0", "u"), "xs")
    t0, x0, u = _inputs(model, 5, 1)
    times = t0 + h * torch.arange(steps + 1, dtype=torch.float64)
    with torch.no_grad():
        oracle = solve(model.driven(lambda t, b: u), x0, times, solver=make_solver("rk4", step=h)).ys
    assert oracle.shape == (steps + 1, 5, 2)
    inputs = {"rollout_t": t0.numpy(), "rollout_x": x0.numpy(), "rollout_u": u.expand(steps, 5, 1).numpy()}
    return inputs, oracle.numpy()


def test_exported_fields_run_without_nodedsl(tmp_path):
    """pt2 and ONNX fields of the three examples (and a pt2 rk4 rollout of the pendulum), evaluated in a
    fresh process that cannot import nodedsl, match the compiled field (and nodedsl's own rk4) to 1e-6."""
    _need_onnx()
    inputs, expected = {}, {}
    for file, name in MODELS:
        model = _model(file, name)
        program = programs.export_field(model)
        programs.save_pt2(program, tmp_path / f"{name}.pt2")
        programs.save_onnx(program, tmp_path / f"{name}.onnx", ("t", "x", "u"), "dxdt")
        t, x, u = _inputs(model, 7, len(name))  # batch 7: not the export's example batch
        inputs.update({f"{name}_t": t.numpy(), f"{name}_x": x.numpy(), f"{name}_u": u.numpy()})
        with torch.no_grad():
            expected[name] = model.field(t, x, u).numpy()
    rollout_inputs, expected["rollout"] = _rollout_case(tmp_path, onnx=False)
    got = _run_child(tmp_path, {**inputs, **rollout_inputs})
    for key, want in expected.items():
        for fmt in ("pt2", "onnx") if key != "rollout" else ("pt2",):
            np.testing.assert_allclose(got[f"{key}_{fmt}"], want, atol=1e-6, rtol=0, err_msg=f"{key} {fmt}")


@pytest.mark.slow
def test_onnx_rollout_runs_without_nodedsl(tmp_path):
    """The unrolled rollout as ONNX (its export is the slow part: every stage of every step is traced)."""
    _need_onnx()
    inputs, want = _rollout_case(tmp_path, onnx=True)
    got = _run_child(tmp_path, inputs)
    for fmt in ("pt2", "onnx"):
        np.testing.assert_allclose(got[f"rollout_{fmt}"], want, atol=1e-6, rtol=0, err_msg=fmt)


@pytest.mark.parametrize(
    "act",
    [nn.Tanh(), nn.Sigmoid(), nn.Softplus(), nn.Softplus(beta=2.0, threshold=1.0), nn.ReLU(), nn.SiLU(),
     nn.ELU(alpha=0.7), nn.GELU(), nn.Identity(), nn.GELU(approximate="tanh")],
)  # fmt: skip
def test_mlp_gradient_matches_autograd(act):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 5), act, nn.Linear(5, 4), act, nn.Linear(4, 2), act).double()
    x = torch.randn(6, 3, dtype=torch.float64)
    for k in range(2):
        want = ops.net_grad(net, x, k)
        got = ops.mlp_grad(net, x, k)  # explicit where supported, autograd for GELU's tanh form
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    assert cnets.mlp_supported(net) == (getattr(act, "approximate", "none") == "none")


def test_msd_field_compiles_fullgraph_and_trains(monkeypatch):
    """grad H of the net V is explicit operations: dynamo captures the whole field in one graph, and the
    values and parameter gradients equal those of the autograd form (``net_grad``)."""
    model = _model("msd.node", "MassSpringDamper")
    t, x, u = _inputs(model, 5, 2)
    assert any(n.target is ops.mlp_grad for n in model._field.graph.nodes)
    compiled = torch.compile(model.field, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(t, x, u), model.field(t, x, u), atol=1e-12, rtol=0)
    params = [p for p in model.parameters() if p.requires_grad]
    value = model.field(t, x, u)
    explicit = torch.autograd.grad(value.square().sum(), params, allow_unused=True)  # V's last bias: unused
    monkeypatch.setattr(ops, "mlp_supported", lambda net: False)  # every net through torch.autograd.grad
    reference = model.field(t, x, u)
    torch.testing.assert_close(value, reference, atol=1e-12, rtol=0)
    for a, b in zip(explicit, torch.autograd.grad(reference.square().sum(), params, allow_unused=True)):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.slow
def test_msd_field_inductor_matches():
    """The default backend (inductor, a C++ compile on CPU: minutes on 2 shared cores; see
    benchmarks/export_compile.py)."""
    model = _model("msd.node", "MassSpringDamper")
    t, x, u = _inputs(model, 5, 2)
    compiled = torch.compile(model.field, fullgraph=True)
    torch.testing.assert_close(compiled(t, x, u), model.field(t, x, u), atol=1e-10, rtol=0)


SOURCE = """
model Truth : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    hamiltonian = p^2 / 2 + q^2 + 0.25 * q^4
    R = [[0, 0], [0, 0.3]]
}

model Learned : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param c = 0.5 learn positive
    net V(x) -> 1 { hidden = [8], activation = tanh }
    hamiltonian = p^2 / 2 + V(q)
    R = [[0, 0], [0, c]]
}

dataset swings {
    model = Truth
    trajectories = 4
    time = span(0, 1, step = 0.1)
    initial = { q = uniform(-1, 1), p = uniform(-1, 1) }
    seed = 0
}

train Learned {
    data = swings
    solver = rk4(step = 0.1)
    window = 5
    epochs = 2
    validation = 0.25
    seed = 0
}
"""


def cli(*args: str):
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return res.exit_code, res.output


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    (d / "m.node").write_text(SOURCE)
    code, out = cli("train", str(d / "m.node"), "--run", str(d / "run"), "--quiet")
    assert code == 0, out
    return d


def test_safetensors_export_reproduces_the_run(trained, monkeypatch):
    """A trained run exported as safetensors and loaded without torch.load predicts what the run did."""
    code, out = cli("export", "--run", str(trained / "run"), "-o", str(trained / "st"), "--format", "safetensors")
    assert code == 0, out
    doc = json.loads((trained / "st" / "manifest.json").read_text())
    assert (doc["model"], doc["states"], doc["solver"]["name"]) == ("Learned", ["q", "p"], "rk4")
    assert doc["nets"]["V"]["hidden"] == [8] and doc["params"][0]["name"] == "c"

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", no_pickle)
    model = load_exported(trained / "st")
    monkeypatch.undo()
    run_model = nodedsl.load_run(trained / "run")
    for key, value in run_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value.to(torch.float64), atol=0, rtol=0)
    pred = np.load(trained / "run" / "predictions.npz")
    for i in range(len(pred["t"])):
        t = torch.tensor(pred["t"][i], dtype=torch.float64)
        x0 = torch.tensor(pred["y"][i, :1], dtype=torch.float64)
        with torch.no_grad():
            ys = solve(model.driven(None), x0, t, solver=make_solver("rk4", step=0.1)).ys[:, 0]
        np.testing.assert_allclose(ys.numpy(), pred["yhat"][i], atol=1e-6, rtol=0)


def test_cli_pt2_export_with_rollout(trained):
    out = trained / "pt2"
    code, msg = cli("export", "--run", str(trained / "run"), "-o", str(out), "--steps", "2")
    assert code == 0, msg
    doc = json.loads((out / "manifest.json").read_text())
    assert sorted(doc["files"]) == ["field.pt2", "rollout.pt2"] and "rk4, step 0.1" in doc["files"]["rollout.pt2"]
    model = nodedsl.load_run(trained / "run").double()
    x0 = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=torch.float64)
    u = torch.zeros(2, 2, 0, dtype=torch.float64)
    xs = torch.export.load(str(out / "rollout.pt2")).module()(torch.tensor(0.0, dtype=torch.float64), x0, u)
    with torch.no_grad():
        oracle = solve(
            model, x0, torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64), solver=make_solver("rk4", step=0.1)
        )
    torch.testing.assert_close(xs.detach(), oracle.ys, atol=1e-9, rtol=0)


def test_bad_input_is_a_located_error(trained, tmp_path):
    run = str(trained / "run")
    other = tmp_path / "other.node"
    other.write_text(SOURCE.replace("hidden = [8]", "hidden = [8, 8]"))
    cases = [
        (("--run", str(tmp_path / "nowhere")), "bad-checkpoint", "not a run directory"),
        (("--run", run, "--model", "Truth"), "checkpoint-mismatch", "trained model 'Learned', not 'Truth'"),
        ((str(other), "--run", run), "checkpoint-mismatch", "different version of model 'Learned'"),
        (("--run", run, "--format", "tflite"), "bad-argument", "unknown export format 'tflite'"),
        (("--run", run, "--steps", "3", "--solver", "dopri5"), "no-fixed-step", "uses 'dopri5'"),
        (("--run", run, "--steps", "3", "--solver", "rk5"), "bad-argument", "unknown solver 'rk5'"),
        (("--run", run, "--steps", "3", "-f", "safetensors"), "bad-argument", "--steps is a positive number"),
    ]
    for args, code_name, text in cases:
        code, out = cli("export", *args, "-o", str(tmp_path / "out"))
        assert code == 1, (args, out)
        assert f"error[{code_name}]" in out and text in out, (args, out)
        assert "Traceback" not in out
    (tmp_path / "pt2").mkdir()
    (tmp_path / "pt2" / "manifest.json").write_text('{"export": "pt2"}')
    with pytest.raises(nodedsl.NodeDslError, match="not a safetensors export"):
        load_exported(tmp_path / "pt2")


def test_exporter_failures_are_coded(trained, tmp_path, monkeypatch):
    """An exporter that raises, or a missing optional package: export-failed with the reason, no traceback."""

    def broken(*args, **kwargs):
        raise RuntimeError("cannot trace this op\nmore detail")

    def missing(*args, **kwargs):
        raise ImportError("No module named 'onnxscript'")

    monkeypatch.setattr(programs, "export_field", broken)
    code, out = cli("export", "--run", str(trained / "run"), "-o", str(tmp_path / "a"))
    assert code == 1 and "error[export-failed]" in out and "RuntimeError: cannot trace this op" in out, out
    monkeypatch.undo()
    monkeypatch.setattr(programs, "save_onnx", missing)
    code, out = cli("export", "--run", str(trained / "run"), "-o", str(tmp_path / "b"), "-f", "onnx")
    assert code == 1 and "error[export-failed]" in out and "nodedsl[export]" in out, out
    assert "Traceback" not in out
