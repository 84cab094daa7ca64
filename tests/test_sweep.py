"""Sweeps and ensembles (issue 12): ``nodedsl sweep`` on the pendulum example (2 x 2 settings x 2 seeds,
tiny epochs), an interrupted sweep resumed, Optuna over a finished grid, ensemble evaluation against the
individual evaluations, and located errors for bad ``--grid`` arguments."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nodedsl import load
from nodedsl.cli.main import app
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.sweep import evaluate_ensemble, parse_grid, plot_ensemble, run_sweep
from nodedsl.train.run import evaluate

PENDULUM = str(Path(__file__).parent.parent / "examples" / "pendulum.node")
GRID = {"lr": ["1e-3", "3e-3"], "batch": ["16", "64"]}
SETS = {"epochs": "1"}


def _rows(folder: Path) -> list[dict]:
    with open(folder / "sweep.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _run_ids(folder: Path) -> dict[str, str]:
    return {p.name: (p / "config.json").read_text() for p in folder.iterdir() if (p / "config.json").is_file()}


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A 2 x 2 x 2 sweep, interrupted after 5 runs, then resumed to the end."""
    out = tmp_path_factory.mktemp("sweep")
    first = run_sweep(PENDULUM, GRID, out, seeds=2, sets=SETS, stop_after=5)
    assert first.stopped and first.trained == 5 and len(_rows(out)) == 5
    before = _run_ids(out)
    second = run_sweep(PENDULUM, GRID, out, seeds=2, sets=SETS)
    assert (second.trained, second.reused) == (3, 5)  # only the missing ones
    assert all(_run_ids(out)[k] == v for k, v in before.items())  # the finished ones untouched
    return out


def test_sweep_csv_has_one_right_row_per_run(sweep_dir):
    rows = _rows(sweep_dir)
    assert len(rows) == 8
    expected = {(lr, b, s) for lr in GRID["lr"] for b in GRID["batch"] for s in ("0", "1")}
    assert {(r["lr"], r["batch"], r["seed"]) for r in rows} == expected
    for r in rows:
        run = sweep_dir / r["run"]
        metrics = __import__("json").loads((run / "metrics.json").read_text())
        # the row is the run's own numbers, and the run was trained with the row's settings
        assert float(r["train_loss"]) == pytest.approx(metrics["final"]["train_loss"], rel=1e-12)
        assert float(r["rollout_rmse"]) == pytest.approx(metrics["evaluation"]["rmse"], rel=1e-12)
        assert float(r["violation:at_rest"]) == pytest.approx(metrics["evaluation"]["violations"]["at_rest"])
        cfg = metrics["config"]
        assert cfg["optimizer"]["lr"] == float(r["lr"]) and cfg["batch"] == int(r["batch"])
        assert cfg["seed"] == int(r["seed"]) and cfg["epochs"] == 1
        assert r["status"] == "completed" and float(r["time_s"]) > 0


def test_resume_redoes_only_a_deleted_run(sweep_dir, tmp_path):
    victim = sorted(p for p in sweep_dir.iterdir() if p.is_dir())[3]
    before = _run_ids(sweep_dir)
    (victim / "metrics.json").unlink()  # killed before it finished
    res = run_sweep(PENDULUM, GRID, sweep_dir, seeds=2, sets=SETS)
    assert (res.trained, res.reused, len(res.rows)) == (1, 7, 8)
    after = _run_ids(sweep_dir)
    assert [k for k in before if before[k] != after[k]] == [victim.name]
    assert res.best is not None and set(res.best["params"]) == {"lr", "batch"}
    rows = res.rows
    means = {}
    for r in rows:
        means.setdefault((r["lr"], r["batch"]), []).append(r["rollout_rmse"])
    best = min(means, key=lambda k: sum(means[k]) / 2)
    assert (res.best["params"]["lr"], res.best["params"]["batch"]) == best


def test_optuna_over_a_finished_grid_trains_nothing(sweep_dir):
    pytest.importorskip("optuna")
    res = run_sweep(PENDULUM, GRID, sweep_dir, seeds=2, sets=SETS, optuna_trials=3)
    assert res.trained == 0 and res.reused >= 2 and len(_rows(sweep_dir)) == 8


def test_ensemble_eval_is_mean_and_spread_of_individual_evals(sweep_dir, tmp_path):
    prog = load(PENDULUM)
    runs = sorted(str(p) for p in sweep_dir.iterdir() if p.name.startswith("lr=3e-3_batch=16"))
    data = tmp_path / "held.csv"
    result = CliRunner().invoke(
        app, ["simulate", PENDULUM, "--model", "PendulumTruth", "--t-end", "2", "--step", "0.05", "-o", str(data)]
    )
    assert result.exit_code == 0, result.output
    singles = [evaluate(prog, None, r, str(data)) for r in runs]
    ens = evaluate_ensemble(runs, prog, None, str(data), tmp_path / "ens")
    for key in ("rmse", "nrmse"):
        vals = np.array([s[key] for s in singles])
        assert ens["mean"][key] == pytest.approx(vals.mean(), rel=1e-9)
        assert ens["std"][key] == pytest.approx(vals.std(), rel=1e-9, abs=1e-15)
    theta = np.array([s["per_output"]["theta"]["mae"] for s in singles])
    assert ens["std"]["per_output"]["theta"]["mae"] == pytest.approx(theta.std(), rel=1e-9)
    L = np.array([s["parameters"]["L"] for s in singles])
    assert ens["mean"]["parameters"]["L"] == pytest.approx(L.mean(), rel=1e-9)
    npz = np.load(tmp_path / "ens" / "ensemble.npz")
    assert npz["yhat"].shape[0] == 2
    np.testing.assert_allclose(npz["yhat_mean"], npz["yhat"].mean(0), rtol=1e-6)
    assert ens["prediction_spread"]["theta"] > 0  # two seeds do not agree exactly
    summary = plot_ensemble(runs, tmp_path / "bands.png")
    assert summary["members"] == 2 and (tmp_path / "bands.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "grid, needle",
    [
        (["lrr=1e-3,1e-2"], "--grid 'lrr=1e-3,1e-2': value '1e-3': unknown key 'lrr'"),
        (["batch=16,many"], "--grid 'batch=16,many': value 'many'"),
        (["batch"], "--grid 'batch': expected key=v1,v2"),
        (["batch=16,,32"], "empty value"),
        (["solver=rk4(step = 0.05),nosuch"], "value 'nosuch'"),
    ],
)
def test_bad_grid_is_a_located_error_before_anything_runs(tmp_path, grid, needle):
    out = tmp_path / "s"
    args = ["sweep", PENDULUM, "-o", str(out)] + [a for g in grid for a in ("--grid", g)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "<command line>" in result.output and "error[bad-override]" in result.output
    assert needle in result.output
    assert not out.exists() or not any(out.iterdir())


def test_grid_values_keep_commas_inside_calls():
    assert parse_grid(["solver=rk4(step = 0.1),dopri5(rtol = 1e-6, atol = 1e-8)"])["solver"][1] == (
        "dopri5(rtol = 1e-6, atol = 1e-8)"
    )
    with pytest.raises(NodeDslError):
        parse_grid(["lr=1,2", "lr=3"])


def test_cli_sweep_stops_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "s"
    args = ["sweep", PENDULUM, "-o", str(out), "--grid", "lr=1e-3,3e-3", "--set", "epochs=1", "-q"]
    monkeypatch.setenv("NODEDSL_SWEEP_STOP_AFTER", "1")
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0 and "1 trained now" in first.output and len(_rows(out)) == 1
    monkeypatch.delenv("NODEDSL_SWEEP_STOP_AFTER")
    second = CliRunner().invoke(app, args)
    assert "1 trained now, 1 reused" in second.output and "best: lr=" in second.output
    assert all(math.isfinite(float(r["rollout_rmse"])) for r in _rows(out))


@pytest.mark.slow
def test_process_pool_sweep(tmp_path):
    """Two worker processes (spawned: each imports torch, so this is slow on 2 shared cores)."""
    res = run_sweep(PENDULUM, {"lr": ["1e-3", "3e-3"]}, tmp_path, seeds=1, jobs=2, sets=SETS)
    assert res.trained == 2 and all(r["status"] == "completed" for r in res.rows)
    serial = run_sweep(PENDULUM, {"lr": ["1e-3", "3e-3"]}, tmp_path / "serial", sets=SETS)
    for a, b in zip(res.rows, serial.rows):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-12)  # same seeds, same numbers
    assert os.path.isfile(tmp_path / "sweep.csv")
