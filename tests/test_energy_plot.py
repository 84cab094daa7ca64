"""Energy accounting plot of `nodedsl simulate --energy` output (nodedsl/energy_plot.py).

The truth mass-spring-damper of examples/msd.node, driven by force = sin(t), is simulated through the
CLI module; the balance ``H(t) - H(0) + int P_diss - int P_sup`` (trapezoid rule on the output grid) is
the quadrature error only: measured 3.1e-5 at an output step of 0.01 and 7.6e-4 at 0.05 (ratio 25, the
trapezoid rule's h^2), against energies of order 1 (H(0) = 1.5, 1.98 dissipated, 0.56 supplied).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from nodedsl import NodeDslError
from nodedsl.cli.energy import register
from nodedsl.plots.energy import energy_balance, plot_energy

ROOT = Path(__file__).resolve().parents[1]


def _simulate(tmp_path: Path, step: float) -> Path:
    shutil.copy(ROOT / "examples" / "msd.node", tmp_path / "msd.node")
    out = tmp_path / f"sim_{step}.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nodedsl.cli.main",
            "simulate",
            str(tmp_path / "msd.node"),
            "--model",
            "MassSpringDamperTruth",
            "--t-end",
            "10",
            "--step",
            str(step),
            "--energy",
            "--input",
            "force=sin(t)",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_energy_plot_of_simulation_balances(tmp_path):
    csv_fine, csv_coarse = _simulate(tmp_path, 0.01), _simulate(tmp_path, 0.05)
    png = tmp_path / "energy.png"
    summary = plot_energy(csv_fine, png)
    assert png.is_file() and png.stat().st_size > 10_000
    assert summary["trajectories"] == 1 and summary["H0"] == pytest.approx(1.5)
    assert summary["dissipated"] > 1.0 and abs(summary["supplied"]) > 0.1  # both flows really happen
    assert summary["max_abs_residual"] < 1e-4  # measured 3.1e-5
    (part,) = energy_balance(csv_fine)
    assert np.all(np.diff(part["dissipated"]) >= 0)  # P_dissipated >= 0
    coarse = plot_energy(csv_coarse, tmp_path / "coarse.png")
    ratio = coarse["max_abs_residual"] / summary["max_abs_residual"]
    assert 12 < ratio < 50  # h^2: the residual is the trapezoid rule's error, not a structural one


def test_energy_plot_command(tmp_path):
    csv_path = _simulate(tmp_path, 0.05)
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command, so that typer keeps "energy-plot" as a sub-command name
    def noop() -> None:
        pass

    runner = CliRunner()
    result = runner.invoke(app, ["energy-plot", str(csv_path), "-o", str(tmp_path / "cli.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.png").is_file() and "max |residual|" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("t,q\n0,1\n")
    result = runner.invoke(app, ["energy-plot", str(bad), "-o", str(tmp_path / "bad.png")])
    assert result.exit_code == 1 and "H, P_dissipated, P_supplied" in result.output


def test_table_input_and_missing_columns(tmp_path):
    table = {
        "trajectory": [0, 0, 0, 1, 1, 1],
        "t": [0, 0.5, 1, 0, 0.5, 1],
        "H": [1, 0.8, 0.7, 2, 2, 2],
        "P_dissipated": [0.4, 0.3, 0.2, 0, 0, 0],
        "P_supplied": [0, 0, 0, 0, 0, 0],
    }
    parts = energy_balance(table)
    assert len(parts) == 2 and np.allclose(parts[1]["residual"], 0)
    assert np.allclose(parts[0]["residual"], [0, -0.025, 0])
    with pytest.raises(NodeDslError) as err:
        energy_balance({"t": [0, 1], "H": [1, 1]})
    assert err.value.diagnostics[0].code == "data-error" and "P_dissipated" in err.value.diagnostics[0].message
