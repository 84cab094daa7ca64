"""The built wheel carries grammar/ and stdlib/ and its `nodedsl check` works in a fresh venv."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("nodedsl-*.whl")
    return whl


def test_wheel_contains_grammar_and_stdlib(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "nodedsl/_data/grammar/nodedsl.lark" in names
    assert "nodedsl/_data/stdlib/mechanics.node" in names
    assert "nodedsl/_data/stdlib/circuits.node" in names
    assert "nodedsl/train/ndo_operator.safetensors" in names  # the NDO operator's weights (package data)


def test_wheel_installs_and_checks_in_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # Dependencies (torch, sympy, ...) come from this interpreter's site-packages through a .pth file,
    # appended after the fresh venv's own site-packages, so `nodedsl` itself resolves to the wheel.
    fresh_site = next((env_dir / "lib").glob("python*/site-packages"))
    deps = [p for p in site.getsitepackages() if "site-packages" in p]
    (fresh_site / "zz_deps.pth").write_text("\n".join(deps) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    for name in ("pendulum.node", "msd.node", "two_masses.node"):
        shutil.copy(ROOT / "examples" / name, work / name)
    (work / "uses_stdlib.node").write_text(
        'import "mechanics" as mech\nmodel Two : port_hamiltonian {\n  sub a = mech.Mass(m = 2.0)\n}\n'
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run(
        [str(py), "-c", "import nodedsl, sys; print(nodedsl.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(fresh_site) in where
    exe = env_dir / "bin" / "nodedsl"
    res = subprocess.run(
        [str(exe), "check", "pendulum.node", "two_masses.node", "uses_stdlib.node"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "Pendulum: 2 states" in res.stdout
    assert "TwoMasses (port-Hamiltonian): 5 states" in res.stdout
    bad = work / "bad.node"
    bad.write_text("model M {\n  state x = 1\n  der(x) = -y\n}\n")
    res = subprocess.run([str(exe), "check", "bad.node"], cwd=work, env=env, capture_output=True, text=True)
    assert res.returncode == 1
    assert "bad.node:3:13: error[undefined-name]: unknown name 'y'" in res.stderr
    assert "Traceback" not in res.stderr
