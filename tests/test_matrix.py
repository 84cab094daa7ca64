"""Matrix-valued parameters and states (contract v2, section 8): sizes, indexing, solutions, learning."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

import nodedsl
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.solvers import make_solver, solve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "linear_matrix.node"
A_TRUE = np.array([[-0.1, 1.0, 0.0], [-1.0, -0.1, 0.2], [0.0, -0.2, -0.3]])

MODEL = """
model M {
    state x[3] = [1, 0, 0]
    state P[2, 2] = [[1, 0], [0, 1]]
    param A = [[-0.1, 1.0, 0.0], [-1.0, -0.1, 0.2], [0.0, -0.2, -0.3]]
    param K[2, 2] = 0.5 learn in [0, 1]
    der(x) = A @ x
    der(P) = -P + K
    output a12 = A[1, 2]
    output row = A[2]
    output head = x[0:2]
    output tail = x[1:]
}
"""


def test_matrix_sizes_are_inferred_declared_and_indexed() -> None:
    prog = nodedsl.loads(MODEL)
    info = prog.info("M")
    assert dict(info.states) == {"x": (3,), "P": (2, 2)}
    assert dict(info.outputs) == {"a12": (), "row": (3,), "head": (2,), "tail": (2,)}
    system = prog.system("M")
    assert [s.name for s in system.states][3:] == ["P[0,0]", "P[0,1]", "P[1,0]", "P[1,1]"]
    model = prog.model("M")
    assert model.parameter_values() == {"K": [[pytest.approx(0.5)] * 2] * 2}
    x = torch.tensor([[1.0, 2.0, 3.0, 0, 0, 0, 0]])
    assert model.observe(torch.tensor(0.0), x).tolist()[0] == pytest.approx([0.2, 0.0, -0.2, -0.3, 1, 2, 2, 3])


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("param A[2, 2] = [[1, 2, 3], [4, 5, 6]]", "size-mismatch"),
        ("param A = [[1, 2], [3, 4]]\n let y = A[0, 2]", "index-out-of-range"),
        ("param A = [[1, 2], [3, 4]]\n let y = A @ [1, 2, 3]", "size-mismatch"),
        ("param v[2] = [1, 2]\n let y = v[0, 1]", "bad-index"),
        ("param v[2] = [1, 2]\n let y = v[1:1]", "bad-index"),
    ],
)
def test_matrix_mistakes_are_located(text: str, code: str) -> None:
    with pytest.raises(NodeDslError) as info:
        nodedsl.loads("model M {\n state x = 1\n der(x) = -x\n " + text + "\n}")
    assert code in [d.code for d in info.value.diagnostics]


def test_matrix_field_agrees_with_the_matrix_exponential() -> None:
    prog = nodedsl.loads(MODEL)
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    x0 = torch.tensor([[1.0, -0.5, 0.25, 1, 0, 0, 1]], dtype=torch.float64)
    field = prog.model("M").double().driven(None)
    with torch.no_grad():
        res = solve(field, x0, t, solver=make_solver("dopri5", rtol=1e-10, atol=1e-12))
    for k, s in enumerate(t.tolist()):
        want = scipy.linalg.expm(A_TRUE * s) @ x0[0, :3].numpy()
        assert res.ys[k, 0, :3].numpy() == pytest.approx(want, abs=1e-8)
    # P' = -P + K with K = 0.5: P(t) = 0.5 + (P0 - 0.5) e^-t
    p_end = 0.5 + (np.array([1, 0, 0, 1]) - 0.5) * np.exp(-2.0)
    assert res.ys[-1, 0, 3:].numpy() == pytest.approx(p_end, abs=1e-8)


def test_taylor_coefficients_of_a_matrix_field_are_powers_of_the_matrix() -> None:
    model = nodedsl.loads(MODEL).model("M").double()
    x = torch.tensor([[1.0, -0.5, 0.25, 1, 0, 0, 1]], dtype=torch.float64)
    coeffs = model.taylor_coefficients(torch.tensor(0.0, dtype=torch.float64), x, 3)
    for k, c in enumerate(coeffs, start=1):
        want = np.linalg.matrix_power(A_TRUE, k) @ x[0, :3].numpy()
        assert c[0, :3].detach().numpy() == pytest.approx(want, rel=1e-6)  # A stored in float32


@pytest.mark.slow
def test_learned_3x3_linear_system_recovers_every_entry(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "linear_matrix.node")
    run = tmp_path / "run"
    flags = ["--epochs", "150", "--lr", "5e-2", "--set", "window=50", "--quiet", "--run", str(run)]
    res = subprocess.run(
        [sys.executable, "-m", "nodedsl.cli.main", "train", "linear_matrix.node", *flags],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    learned = np.array(json.loads((run / "metrics.json").read_text())["parameters"]["A"])
    assert learned.shape == (3, 3)  # nested lists in metrics.json
    tol = 0.01 * np.maximum(np.abs(A_TRUE), np.abs(A_TRUE).max())  # 1% per entry (of the scale for zeros)
    assert np.all(np.abs(learned - A_TRUE) <= tol), learned


def test_sum_prod_and_slices_compile() -> None:
    text = "model M { state x[3] = [1, 2, 3]\n param A = [[1, 2], [3, 4]]\n der(x) = -x * sum(x[0:2]) + prod(A) }"
    model = nodedsl.loads(text).model("M")
    out = model(torch.tensor(0.0), torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]]))
    assert out.tolist() == [[21.0, 18.0, 15.0], [24.0, 23.0, 25.0]]
