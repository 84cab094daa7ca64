"""Continuous normalizing flows (objective = density): the exact-trace log-likelihood of a linear flow
against its closed form, Hutchinson's estimate unbiased, and a density run end to end (train, eval,
sample)."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from typer.testing import CliRunner

import nodedsl
from nodedsl.frontend.config.methods import Density
from nodedsl.train.density import log_likelihood

A = np.array([[-0.4, 0.9, 0.1], [-0.7, 0.2, 0.3], [0.2, -0.5, -0.6]])
LINEAR = (
    """
model Linear {
    state a = 0
    state b = 0
    state c = 0
"""
    + "".join(
        f"    param {n} = {A[i, j]}\n"
        for i, row in enumerate(("a", "b", "c"))
        for j, n in enumerate(f"{row}a {row}b {row}c".split())
    )
    + """    der(a) = aa * a + ab * b + ac * c
    der(b) = ba * a + bb * b + bc * c
    der(c) = ca * a + cb * b + cc * c
}
"""
)


def _closed_form(x: np.ndarray, T: float) -> np.ndarray:
    """log p(x) for der(z) = A z: z(T) = e^{AT} x, log det = T tr(A)."""
    z = x @ expm(A * T).T
    return -0.5 * (z**2).sum(1) - 1.5 * math.log(2 * math.pi) + T * np.trace(A)


@pytest.fixture(scope="module")
def linear():
    return nodedsl.loads(LINEAR).model("Linear").double()


def test_linear_flow_exact_trace_matches_closed_form(linear):
    x = np.random.default_rng(0).normal(size=(7, 3))
    spec = Density(kind="density", trace="exact", time=1.3, steps=40)
    got = log_likelihood(linear, torch.tensor(x), spec).numpy()
    np.testing.assert_allclose(got, _closed_form(x, 1.3), rtol=0, atol=1e-7)


def test_hutchinson_is_unbiased(linear):
    """Many independent single-probe estimates at one point: their mean is within 4 standard errors of
    the exact value, and they do vary (a non-diagonal A makes the estimator noisy)."""
    x = torch.tensor([[0.3, -1.1, 0.7]], dtype=torch.float64).repeat(2000, 1)
    exact = Density(kind="density", trace="exact", steps=10)
    hutch = Density(kind="density", trace="hutchinson", steps=10)
    ref = float(log_likelihood(linear, x[:1], exact))
    est = log_likelihood(linear, x, hutch, torch.Generator().manual_seed(3)).numpy()
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert est.std() > 1e-3
    assert abs(est.mean() - ref) < 4 * se


FLOW = """
model Flow {
    state a = 0
    state b = 0
    net f(a, b, t) -> 2 { hidden = [16], activation = tanh }
    der(a) = f(a, b, t)[0]
    der(b) = f(a, b, t)[1]
}
train Flow {
    data = "ring.csv"
    objective = density(steps = 4)
    epochs = 3
    batch = 50
    optimizer = adam(lr = 2e-2)
}
"""


def test_density_run_train_eval_sample(tmp_path):
    rng = np.random.default_rng(1)
    ang = rng.uniform(0, 2 * np.pi, 200)
    pts = np.stack([np.cos(ang), np.sin(ang)], 1) * 2 + rng.normal(size=(200, 2)) * 0.2
    np.savetxt(tmp_path / "ring.csv", pts, delimiter=",", header="a,b", comments="", fmt="%.6f")
    (tmp_path / "flow.node").write_text(FLOW)
    from nodedsl.cli.main import app

    runner = CliRunner()
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(tmp_path / "flow.node"), "--run", str(run)])
    assert res.exit_code == 0, res.output
    metrics = nodedsl.train.metrics.read_json(run / "metrics.json")
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert losses[-1] < losses[0]
    res = runner.invoke(app, ["eval", str(tmp_path / "flow.node"), "--run", str(run)])
    assert res.exit_code == 0 and "test log-likelihood" in res.output, res.output
    ev = nodedsl.train.metrics.read_json(run / "eval.json")
    assert ev["on"] == "validation" and ev["points"] == 40 and ev["trace"] == "exact"
    assert math.isfinite(ev["log_likelihood"]) and ev["log_likelihood"] > -2 * math.log(2 * math.pi * math.e) - 3
    out = tmp_path / "s.csv"
    res = runner.invoke(app, ["sample", str(tmp_path / "flow.node"), "--run", str(run), "-n", "50", "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["a", "b"] and len(rows) == 51 and all(math.isfinite(float(v)) for v in rows[1])


def test_density_data_needs_state_columns(tmp_path):
    (tmp_path / "ring.csv").write_text("a,c\n1,2\n3,4\n")
    (tmp_path / "flow.node").write_text(FLOW)
    prog = nodedsl.load(tmp_path / "flow.node")
    from nodedsl.train.run import run_training

    with pytest.raises(nodedsl.NodeDslError) as err:
        run_training(prog, prog.trains[0], run_dir=tmp_path / "run")
    (d,) = err.value.diagnostics
    assert d.code == "data-error" and "no column for state(s) b" in d.message and d.span.line == 1
