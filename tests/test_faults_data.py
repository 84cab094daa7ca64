"""Data files and command-line arguments: located errors, never an internal error, a hang or a blow-up."""

from __future__ import annotations

import contextlib
import io
import os
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import nodedsl
from nodedsl import NodeDslError
from nodedsl.cli.main import app
from nodedsl.data.loading import load_csv
from nodedsl.io.npz import read_npz
from nodedsl.io.tables import read_columns
from nodedsl.simulate import SimulationRequest, run_simulation

MODEL = "model M {\n state x = 1\n input u\n der(x) = -x + u\n}\n"


def _codes(fn) -> list[str]:
    with pytest.raises(NodeDslError) as info:
        fn()
    return [d.code for d in info.value.diagnostics]


def _huge_npz(path, shape=(10**6, 10**6)) -> None:
    """An NPZ whose header claims ``shape`` float64 elements but holds a few bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("y.npy", buf.getvalue() + b"\0" * 16)


def test_npz_headers_are_checked_before_allocating(tmp_path):
    _huge_npz(tmp_path / "bomb.npz")
    assert _codes(lambda: read_npz(tmp_path / "bomb.npz")) == ["too-large"]
    (tmp_path / "text.npz").write_text("t,x\n0,1\n")
    with pytest.raises(NodeDslError) as info:
        read_npz(tmp_path / "text.npz")
    assert "not an NPZ (zip) file" in info.value.diagnostics[0].message
    np.savez(tmp_path / "obj.npz", a=np.array([1, "x", None], dtype=object))
    assert "no pickles" in str(_message(lambda: read_npz(tmp_path / "obj.npz")))


def _message(fn) -> str:
    with pytest.raises(NodeDslError) as info:
        fn()
    return info.value.diagnostics[0].message


def test_a_pad_bomb_csv_is_refused_before_padding(tmp_path, monkeypatch):
    # one long trajectory and many one-row ones: padded, n_traj x longest x columns
    rows = ["trajectory,t,x"] + [f"0,{i},1" for i in range(400)] + [f"{k},0,1" for k in range(1, 400)]
    (tmp_path / "pad.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("NODEDSL_MAX_DATA_BYTES", "1000000")  # 400 x 400 x 4 x 8 bytes is 5 MB
    assert _codes(lambda: load_csv(tmp_path / "pad.csv", ["x"])) == ["too-large"]


def test_special_data_paths_are_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    assert _codes(lambda: read_columns(tmp_path / "pipe.csv")) == ["data-error"]
    assert "FIFO" in _message(lambda: load_csv(tmp_path / "pipe.csv", ["x"]))
    assert _codes(lambda: read_columns("/dev/zero")) == ["data-error"]
    assert _codes(lambda: read_npz(tmp_path / "pipe.csv")) == ["not-a-file"]


@pytest.mark.parametrize(
    "content, words",
    [
        ("t,u\n", "no data rows"),
        ("t,u\n0,1\n0.5,nan\n", "not finite"),
        ("t,u\n0,1\n0,2\n1,3\n", "not strictly increasing"),
        ("t,u\n0,1\n1,inf\n", "not finite"),
    ],
)
def test_input_csv_problems_are_data_errors(tmp_path, content, words):
    (tmp_path / "u.csv").write_text(content)
    prog = nodedsl.loads(MODEL)
    req = SimulationRequest(model="M", t_end=1, step=0.5, inputs=(f"u={tmp_path / 'u.csv'}",))
    with pytest.raises(NodeDslError) as info:
        run_simulation(prog, req)
    d = info.value.diagnostics[0]
    assert d.code == "data-error" and words in d.message and d.span.file.endswith("u.csv")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "m.node"
    path.write_text(MODEL)
    return str(path)


@pytest.mark.parametrize(
    "args, code",
    [
        (["--t-end", "inf"], "bad-argument"),
        (["--t-end", "nan"], "bad-argument"),
        (["--t-end", "1e9", "--step", "1e-3"], "too-large"),
        (["--solver", "rk4", "--solver-step", "1e-12"], "too-large"),
        (["--solver", "rk4(step = 1e-12)"], "too-large"),
        (["--solver", "dopri5(rtol = -1)"], "bad-argument"),
        (["--solver", "dopri5(rtol = 1e-8"], "bad-argument"),
        (["--solver", "nosuch(step = 1)"], "bad-argument"),
        (["--input", "u=sin(t)\n}\nmodel Evil {\n state y = 1\n der(y) = y"], "<--input>"),
        (["--input", "u=t; state z = 1"], "<--input>"),
        (["--set", "x=1e999"], "bad-argument"),
    ],
)
def test_bad_simulate_arguments(model_file, args, code):
    result = CliRunner().invoke(app, ["simulate", model_file, "--t-end", "1", "--step", "0.5", *args])
    assert result.exit_code == 1, result.output
    assert (code if code.startswith("<") else f"error[{code}]") in result.output
    assert "internal" not in result.output


def test_solver_options_in_the_train_block_syntax(model_file):
    for solver in ("dopri5(rtol = 1e-10, atol = 1e-12)", "taylor(order = 3)", "rk4(step = 0.01)"):
        result = CliRunner().invoke(app, ["simulate", model_file, "--t-end", "1", "--step", "0.5", "--solver", solver])
        assert result.exit_code == 0, result.output
        rows = result.output.strip().splitlines()
        # simulate writes the inputs that drove the run too (here the input u at its default)
        assert rows[0] == "trajectory,t,x,u" and abs(float(rows[-1].split(",")[2]) - np.exp(-1)) < 1e-6


_ARG = st.one_of(
    st.sampled_from(["--t-end", "--step", "--solver", "--solver-step", "--set", "--input", "--times", "-m"]),
    st.sampled_from(["inf", "-1", "0", "1e308", "nan", "x=", "u=", "rk4(", "dopri5()", "u=t", "/dev/zero"]),
    st.text(max_size=12),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_ARG, max_size=6))
def test_fuzzed_command_lines_never_fail_internally(model_file, args):
    result = CliRunner().invoke(app, ["simulate", model_file, "--t-end", "0.5", "--step", "0.25", *args])
    assert result.exit_code in (0, 1, 2), result.output
    assert "error[internal]" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_npz_bytes_give_diagnostics(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("npz") / "d.npz"
    path.write_bytes(b"PK\x03\x04" + data if data[:1] == b"\0" else data)
    with contextlib.suppress(NodeDslError):
        read_npz(path)


_CELL = st.one_of(st.sampled_from(["", "nan", "inf", "-0", "1e999", "x", '"', "0", "1"]), st.text(max_size=4))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_CELL, min_size=0, max_size=4), max_size=8))
def test_fuzzed_csv_gives_diagnostics(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text("trajectory,t,x\n" + "\n".join(",".join(r) for r in rows), encoding="utf-8", errors="replace")
    try:
        traj = load_csv(path, ["x"])
    except NodeDslError:
        return
    assert np.isfinite(traj.y.numpy()).all()


LEAPFROG = """
model Osc : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param delta = 0
    hamiltonian = p^2 / 2 + q^2 / 2
    R = [[0, 0], [0, delta]]
}

model Damped : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param c = 0.5
    hamiltonian = p^2 / 2 + q^2 / 2
    R = [[0, 0], [0, c]]
}
"""


def test_leapfrog_separability_after_known_parameters(tmp_path):
    (tmp_path / "lf.node").write_text(LEAPFROG)
    path = str(tmp_path / "lf.node")
    ok = CliRunner().invoke(app, ["simulate", path, "-m", "Osc", "--t-end", "1", "--step", "1", "--solver", "leapfrog"])
    assert ok.exit_code == 0, ok.output
    assert abs(float(ok.output.strip().splitlines()[-1].split(",")[2]) - np.cos(1.0)) < 1e-4
    bad = CliRunner().invoke(app, ["simulate", path, "-m", "Damped", "--t-end", "1", "--solver", "leapfrog"])
    assert bad.exit_code == 1 and "der(q)" in bad.output
    assert "symplectic_split" not in bad.output and "field." not in bad.output


def test_solver_calls_in_train_overrides():
    from nodedsl.frontend.config.overrides import apply_overrides
    from nodedsl.frontend.config.schema import TrainConfig

    cfg = TrainConfig.model_validate({"model": "M", "data": "d"})
    assert str(apply_overrides(cfg, {"solver": "dopri5(rtol = 1e-10)"}).solver) == "dopri5(rtol = 1e-10)"
    for bad in ("dopri5(rtol = -1)", "rk4(step = 0.1", "nosuch(step = 1)"):
        assert _codes(lambda bad=bad: apply_overrides(cfg, {"solver": bad})) == ["bad-override"]
    assert _codes(lambda: apply_overrides(cfg, {"seed": str(10**30)})) == ["bad-override"]
