"""Forced experiments without a dataset file (issue 18): dataset inputs as expressions of t with
per-trajectory draws, and `simulate --trajectories N` with random initial states and inputs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

import nodedsl
from nodedsl.cli.main import app
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.simulate import dataset_table

SOURCE = """
model M {
    state x = 0
    input force = 0
    der(x) = -x + force
}

dataset ramps {
    model = M
    trajectories = 4
    time = span(0, 2, step = 0.25)
    initial = { x = uniform(-1, 1) }
    draws = { a = uniform(-1, 1), b = uniform(2, 3) }
    inputs = { force = (a + b * t) }
    seed = 3
}
"""


def _exact(x0: float, a: float, b: float, t: np.ndarray) -> np.ndarray:
    """x' = -x + a + b t: x = a - b + b t + (x0 - a + b) e^-t."""
    return a - b + b * t + (x0 - a + b) * np.exp(-t)


def test_dataset_expression_inputs_draw_per_trajectory(tmp_path):
    path = tmp_path / "m.node"
    path.write_text(SOURCE)
    prog = nodedsl.load(path)
    table = dataset_table(prog, "ramps")
    cols = {c: table.rows[:, i] for i, c in enumerate(table.columns)}
    slopes = []
    for k in range(4):
        rows = cols["trajectory"] == k
        t, f, x = cols["t"][rows], cols["force"][rows], cols["x"][rows]
        b, a = np.polyfit(t, f, 1)
        np.testing.assert_allclose(f, a + b * t, atol=1e-12)  # one draw per trajectory, held over time
        assert -1 <= a <= 1 and 2 <= b <= 3
        np.testing.assert_allclose(x, _exact(x[0], a, b, t), atol=1e-6)  # the model saw that input
        slopes.append(b)
    assert len(set(np.round(slopes, 9))) == 4
    again = dataset_table(nodedsl.load(path), "ramps")
    np.testing.assert_array_equal(again.rows, table.rows)  # seeded: the same data on every run


def test_dataset_expression_errors_are_located(tmp_path):
    path = tmp_path / "m.node"
    path.write_text(SOURCE.replace("(a + b * t)", "(a + c * t + x)"))
    with pytest.raises(NodeDslError) as info:
        nodedsl.load(path)
    got = [(d.code, d.span.line, d.span.col) for d in info.value.diagnostics]
    assert got == [("undefined-name", 14, 29), ("undefined-name", 14, 37)]
    assert "is a state of the model" in " ".join(info.value.diagnostics[1].notes)


def _cli(*args: str):
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return res.exit_code, res.output


def test_simulate_random_trajectories_without_dataset(tmp_path):
    path = tmp_path / "m.node"
    path.write_text(SOURCE)
    out = tmp_path / "sim.csv"
    code, msg = _cli(
        "simulate", str(path), "-m", "M", "--trajectories", "5", "--t-end", "2", "--step", "0.5",
        "--init-range", "x=2:3", "--draw", "k=uniform(1, 2)", "--input", "force=k * t", "-o", str(out),
    )  # fmt: skip
    assert code == 0, msg
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["trajectory", "t", "x", "force"]  # the input column is always written
    assert len(rows) == 5 * 5
    starts = []
    for k in range(5):
        r = [row for row in rows if int(float(row["trajectory"])) == k]
        t, x, f = (np.array([float(row[c]) for row in r]) for c in ("t", "x", "force"))
        slope = f[-1] / t[-1]
        assert 1 <= slope <= 2
        np.testing.assert_allclose(f, slope * t, atol=1e-12)
        assert 2 <= x[0] <= 3
        np.testing.assert_allclose(x, _exact(x[0], 0.0, slope, t), atol=1e-6)
        starts.append(x[0])
    assert len(set(starts)) == 5


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--init-range", "x=1"), "LOW:HIGH"),
        (("--init-range", "y=0:1"), "has no state 'y'"),
        (("--input", "force=sin(w * t)"), "uses 'w'"),
    ],
)
def test_simulate_random_trajectories_errors(tmp_path, args, needle):
    path = tmp_path / "m.node"
    path.write_text(SOURCE)
    code, msg = _cli("simulate", str(path), "-m", "M", "--trajectories", "2", "--t-end", "1", *args)
    assert code != 0 and needle in msg and "Traceback" not in msg, msg


def test_draw_without_trajectories_is_refused(tmp_path):
    path = tmp_path / "m.node"
    path.write_text(SOURCE)
    code, msg = _cli("simulate", str(path), "-m", "M", "--draw", "k=uniform(1, 2)")
    assert code != 0 and "--trajectories" in msg, msg
