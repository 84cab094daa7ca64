"""Data loading: every bad-data case is a `data-error` Diagnostic naming file, column and line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fake_model import FakeDecay, FakePendulum

from nodedsl.core.diagnostics import NodeDslError
from nodedsl.data.loading import (
    Trajectories,
    load_csv,
    load_file,
    load_npz,
    make_windows,
    match_model,
    split_by_trajectory,
)
from nodedsl.data.synth import generate
from nodedsl.frontend.config import validate_dataset
from nodedsl.frontend.parse import parse_source

OUT = ("theta", "omega")
INP = ("torque",)


def write(tmp_path, text: str, name: str = "d.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(fn, *args, **kw):
    with pytest.raises(NodeDslError) as exc:
        fn(*args, **kw)
    diags = exc.value.diagnostics
    assert diags and all(d.code == "data-error" for d in diags)
    return diags


GOOD = """trajectory,t,theta,omega,torque
0,0.0,1.0,0.0,0
0,0.1,0.9,-0.1,0
0,0.2,0.8,-0.2,0
1,0.0,0.5,0.0,1
1,0.1,0.4,-0.1,1
1,0.2,0.3,-0.2,1
"""


def test_csv_good(tmp_path):
    tr = load_csv(write(tmp_path, GOOD), OUT, INP)
    assert tr.y.shape == (2, 3, 2) and tr.u.shape == (2, 3, 1) and tr.t.dtype == torch.float64
    assert tr.ids == (0, 1) and tr.lengths.tolist() == [3, 3]
    assert tr.y[1, 2].tolist() == pytest.approx([0.3, -0.2]) and tr.u[1, 0, 0] == 1
    assert tr.rows[1, 0] == 5  # CSV line numbers (header is line 1)


def test_csv_without_trajectory_column_and_state_columns(tmp_path):
    text = "t,theta_measured,omega,theta\n0,1,0,1\n0.5,0.9,0.1,0.9\n"
    tr = load_csv(write(tmp_path, text), ("theta_measured",), (), ("theta", "omega"), input_defaults=[])
    assert tr.n_traj == 1 and tr.x is not None and tr.x.shape == (1, 2, 2)


def test_missing_column_suggests(tmp_path):
    diags = error_of(load_csv, write(tmp_path, GOOD.replace("theta", "thta")), OUT, INP)
    d = diags[0]
    assert "'theta'" in d.message and d.span.file.endswith("d.csv") and d.span.line == 1
    assert any("thta" in n for n in d.notes)


def test_missing_time_column(tmp_path):
    diags = error_of(load_csv, write(tmp_path, GOOD.replace(",t,", ",time,")), OUT, INP)
    assert any("'t'" in d.message for d in diags)


def add_column(name: str) -> str:
    lines = GOOD.splitlines()
    return "\n".join([lines[0] + f",{name}"] + [ln + ",1" for ln in lines[1:]]) + "\n"


def test_unknown_column(tmp_path):
    text = add_column("energy")
    diags = error_of(load_csv, write(tmp_path, text), OUT, INP)
    assert any("unknown column 'energy'" in d.message for d in diags)


def test_state_columns_are_allowed_extras(tmp_path):
    text = add_column("hidden")
    tr = load_csv(write(tmp_path, text), OUT, INP, ("theta", "omega", "hidden"))
    assert tr.x.shape == (2, 3, 3)


@pytest.mark.parametrize(
    "row, col, word",
    [
        ("0,0.2,inf,-0.2,0", "theta", "finite"),
        ("0,0.2,abc,-0.2,0", "theta", "non-numeric"),
        ("0,0.2,0.7,-0.2,nan", "torque", "finite"),  # a gap in an input: no value to interpolate from
        ("0,0.2,0.7,-0.2,", "torque", "non-numeric"),
        ("0,,0.7,-0.2,0", "t", "non-numeric"),
    ],
)
def test_bad_cells_name_column_and_line(tmp_path, row, col, word):
    lines = GOOD.splitlines()
    lines[3] = row
    diags = error_of(load_csv, write(tmp_path, "\n".join(lines) + "\n"), OUT, INP)
    d = diags[0]
    assert word in d.message and f"'{col}'" in d.message and "line 4" in d.message and d.span.line == 4


@pytest.mark.parametrize("gap", ["", "nan", "NaN"])
def test_missing_outputs_are_nan_not_errors(tmp_path, gap):
    """An empty or NaN output cell is a missing observation, by both readers (pyarrow and rows): marked in
    ``missing``, with ``y`` interpolated in time there."""
    lines = GOOD.splitlines()
    lines[3] = f"0,0.2,{gap},-0.2,0"
    for quoted in (False, True):  # a quote anywhere sends the file to the row reader
        text = "\n".join(lines[:4]) + "\n" + ('"0",0.3,0.1,0.2,0\n' if quoted else "")
        tr = load_csv(write(tmp_path, text), OUT, INP)
        assert tr.missing is not None and bool(tr.missing[0, 2, 0]) and tr.n_missing == 1
        assert bool(torch.isfinite(tr.y).all()) and tr.rows[0, 2] == 4  # filled in time: a start for estimates


def test_fast_and_row_readers_agree(tmp_path):
    """pyarrow's columns and the row reader give the same trajectories, ids and line numbers."""
    from nodedsl.data import loading

    text = GOOD.replace("\n1,", "\n\n1,", 1) + "\n"  # a blank line shifts the line numbers
    path = write(tmp_path, text)
    fast = load_csv(path, OUT, INP)
    slow_reader = loading.read_csv_table
    try:
        loading.read_csv_table = lambda p, numeric=(): None
        slow = load_csv(path, OUT, INP)
    finally:
        loading.read_csv_table = slow_reader
    assert fast.ids == slow.ids and (fast.rows == slow.rows).all()
    assert torch.equal(fast.t, slow.t) and torch.equal(fast.y, slow.y) and torch.equal(fast.u, slow.u)


def test_nonincreasing_time(tmp_path):
    text = GOOD.replace("0,0.2,0.8", "0,0.1,0.8")
    d = error_of(load_csv, write(tmp_path, text), OUT, INP)[0]
    assert "not increasing" in d.message and "trajectory 0" in d.message and d.span.line == 4


def test_wrong_cell_count_and_empty_file(tmp_path):
    d = error_of(load_csv, write(tmp_path, GOOD + "1,0.3,0.2\n"), OUT, INP)[0]
    assert "line 8" in d.message and "cells" in d.message
    assert "empty" in error_of(load_csv, write(tmp_path, "\n\n"), OUT, INP)[0].message
    assert "no data rows" in error_of(load_csv, write(tmp_path, "t,theta,omega,torque\n"), OUT, INP)[0].message


def test_missing_file_and_binary_garbage(tmp_path):
    assert "does not exist" in error_of(load_csv, tmp_path / "nope.csv", OUT, INP)[0].message
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    error_of(load_csv, p, OUT, INP)


def test_ragged_csv_windows_and_too_short(tmp_path):
    text = GOOD + "1,0.3,0.2,-0.3,1\n1,0.4,0.1,-0.4,1\n"
    tr = load_csv(write(tmp_path, text), OUT, INP)
    assert tr.lengths.tolist() == [3, 5] and tr.t.shape == (2, 5)
    w = make_windows(tr, 2)
    assert len(w) == 3 and w.traj.tolist() == [0, 1, 1] and w.next.tolist() == [-1, 2, -1]
    assert w.t[2].tolist() == pytest.approx([0.2, 0.3, 0.4])
    d = error_of(make_windows, tr, 3)[0]
    assert "trajectory 0 has 3 samples" in d.message and d.span.line == 2


def test_missing_input_uses_defaults_and_alias(tmp_path):
    text = "trajectory,t,theta\n0,0,1\n0,1,2\n"
    tr = load_csv(
        write(tmp_path, text),
        ("theta_measured",),
        INP,
        ("theta", "omega"),
        aliases={"theta_measured": "theta"},
        input_defaults=[0.5],
    )
    assert tr.y[0, :, 0].tolist() == [1, 2] and tr.u[0, :, 0].tolist() == [0.5, 0.5]
    diags = error_of(load_csv, write(tmp_path, text), ("theta_measured",), INP, ("theta", "omega"))
    assert any("'torque'" in d.message for d in diags) and any("'theta_measured'" in d.message for d in diags)


def test_npz_good_and_errors(tmp_path):
    t = np.linspace(0, 1, 5)
    x = np.random.default_rng(0).normal(size=(3, 5, 2))
    good = tmp_path / "g.npz"
    np.savez(good, t=t, x=x, names=np.array(["omega", "theta"]), u=np.zeros((3, 5, 1)))
    tr = load_npz(good, OUT, INP)
    assert tr.y.shape == (3, 5, 2) and torch.allclose(tr.y[..., 0], torch.tensor(x[..., 1], dtype=tr.y.dtype))
    assert load_file(good, OUT, INP).n_traj == 3
    # corrupt / truncated
    bad = tmp_path / "bad.npz"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert "cannot read" in error_of(load_npz, bad, OUT, INP)[0].message
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    error_of(load_npz, junk, OUT, INP)
    # missing array, NaN, ragged, wrong names
    p = tmp_path / "m.npz"
    np.savez(p, t=t)
    assert "'x'" in error_of(load_npz, p, OUT, INP)[0].message
    xn = x.copy()
    xn[1, 2, 0] = np.nan
    np.savez(p, t=t, x=xn, names=np.array(["theta", "omega"]))
    d = error_of(load_npz, p, OUT, INP, input_defaults=[0.0])[0]
    assert "'theta'" in d.message and "trajectory 1, sample 2" in d.message
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = np.zeros((3, 2)), np.zeros((4, 2))
    np.savez(p, t=t, x=ragged)
    assert "ragged" in error_of(load_npz, p, OUT, INP)[0].message
    np.savez(p, t=t, x=x, names=np.array(["theta", "omeg"]))
    diags = error_of(load_npz, p, OUT, INP, input_defaults=[0.0])
    assert any("'omega'" in d.message for d in diags) and any("'omeg'" in d.message for d in diags)
    np.savez(p, t=np.array([0, 1, 1, 2, 3.0]), x=x, names=np.array(["theta", "omega"]))
    assert "not increasing" in error_of(load_npz, p, OUT, INP, input_defaults=[0.0])[0].message
    np.savez(p, t=np.linspace(0, 1, 4), x=x, names=np.array(["theta", "omega"]))
    assert "ragged" in error_of(load_npz, p, OUT, INP, input_defaults=[0.0])[0].message


def test_wrong_extension(tmp_path):
    error_of(load_file, tmp_path / "a.txt", OUT, INP)


def test_split_by_trajectory():
    tr = Trajectories(
        torch.arange(10.0)[:, None].repeat(1, 4), torch.zeros(10, 4, 1), torch.zeros(10, 4, 0), ("y",), ()
    )
    a, b = split_by_trajectory(tr, 0.3, seed=1)
    a2, b2 = split_by_trajectory(tr, 0.3, seed=1)
    assert b.n_traj == 3 and a.n_traj == 7 and a.ids == a2.ids and b.ids == b2.ids
    assert sorted(a.ids + b.ids) == list(range(10))
    assert split_by_trajectory(tr, 0.0, 0)[1] is None
    one = tr.subset([0])
    assert split_by_trajectory(one, 0.5, 0)[1] is None
    assert split_by_trajectory(tr.subset([0, 1]), 0.01, 0)[1].n_traj == 1


def test_synth_generate_and_match():
    ds = parse_source(
        "dataset d { model = P\n trajectories = 5\n time = span(0, 1, step = 0.1)\n"
        " initial = { theta = uniform(-1, 1), omega = 0.5 }\n noise = 0.01\n seed = 4 }",
        "d.node",
    )
    cfg, diags = validate_dataset(ds.datasets[0])
    assert diags == []
    truth = FakePendulum(L=1.3, c=0.4)
    a, b = generate(truth, cfg), generate(truth, cfg)
    assert a.y.shape == (5, 11, 2) and a.x.shape == (5, 11, 2) and torch.equal(a.y, b.y)
    assert (a.x[:, 0, 0].abs() <= 1).all() and torch.allclose(a.x[:, 0, 1], torch.full((5,), 0.5))
    assert 0 < (a.y - a.x).abs().max() < 0.1
    partial = FakePendulum(partial=True)
    m = match_model(
        a,
        partial.output_names,
        partial.input_names,
        partial.state_names,
        aliases={"theta_measured": "theta"},
        input_defaults=[0.0],
    )
    assert m.y.shape == (5, 11, 1) and torch.equal(m.y[..., 0], a.y[..., 0])
    with pytest.raises(NodeDslError):
        match_model(a, ("nope",), (), ())


def test_synth_unknown_state_and_vector_state():
    ds = parse_source(
        "dataset d { model = D\n trajectories = 2\n time = [0, 0.5, 1]\n initial = { xx = 1 } }", "d.node"
    )
    cfg, _ = validate_dataset(ds.datasets[0])
    with pytest.raises(NodeDslError) as exc:
        generate(FakeDecay(), cfg)
    d = exc.value.diagnostics[0]
    assert "'xx'" in d.message and d.span.line == 4 and any("'x'" in n for n in d.notes)
    ds = parse_source(
        "dataset d { model = D\n trajectories = 2\n time = [0, 0.5, 1]\n initial = { x = [2, uniform(0, 1)] } }",
        "d.node",
    )
    cfg, _ = validate_dataset(ds.datasets[0])
    tr = generate(FakeDecay(k=1.0), cfg)
    assert tr.x[:, 0, 0].tolist() == [2, 2]
    assert torch.allclose(tr.x[:, -1, 0], torch.full((2,), 2 * np.exp(-1.0)), rtol=1e-4)


@pytest.mark.parametrize("fmt", ["parquet", "h5"])
def test_columnar_files_equal_the_csv(tmp_path, fmt):
    """Parquet and HDF5 files with the CSV's columns give the same trajectories; a bad cell names its row."""
    import numpy as np

    from nodedsl.data.loading import load_file

    csv = load_csv(write(tmp_path, GOOD), OUT, INP)
    rows = [line.split(",") for line in GOOD.strip().splitlines()]
    cols = {name: np.array([float(r[j]) for r in rows[1:]]) for j, name in enumerate(rows[0])}
    path = tmp_path / f"d.{fmt}"

    def save(columns):
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table(columns), path)
        else:
            h5py = pytest.importorskip("h5py")
            with h5py.File(path, "w") as fh:
                for k, v in columns.items():
                    fh.create_dataset(k, data=v)

    save(cols)
    got = load_file(path, OUT, INP)
    assert got.ids == csv.ids and torch.equal(got.y, csv.y) and torch.equal(got.t, csv.t)
    cols["torque"] = cols["torque"].copy()
    cols["torque"][4] = np.inf
    save(cols)
    d = error_of(load_file, path, OUT, INP)[0]
    assert "'torque'" in d.message and "row 5" in d.message
