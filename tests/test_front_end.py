"""Front end: grammar, parser, checker and the check/show/simulate commands on the contract examples."""

from __future__ import annotations

import csv
import filecmp
import math
import subprocess
import sys
from pathlib import Path

import pytest
from lark import Lark

import nodedsl
from nodedsl.core.diagnostics import render
from nodedsl.frontend.parse import parse_source

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "examples"
EXAMPLES = sorted((ROOT / "examples").glob("*.node"))


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "nodedsl.cli.main", *args], cwd=cwd, capture_output=True, text=True)


def test_grammar_is_conflict_free_lalr():
    # strict=True raises on any shift/reduce or reduce/reduce conflict and on terminal collisions
    Lark((ROOT / "grammar" / "nodedsl.lark").read_text(), parser="lalr", strict=True)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_check(path):
    prog = nodedsl.load(path)
    assert prog.checked.root_models()


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/examples not present")
def test_examples_are_copies_of_the_contract():
    for f in SHARED.glob("*.node"):
        assert filecmp.cmp(f, ROOT / "examples" / f.name, shallow=False), f.name


def test_check_cli_on_contract_examples():
    files = [str(p) for p in (sorted(SHARED.glob("*.node")) if SHARED.is_dir() else EXAMPLES)]
    res = run_cli("check", *files)
    assert res.returncode == 0, res.stderr
    assert "Pendulum: 2 states, 1 inputs, 2 params (1 learned), 1 nets, 2 constraints" in res.stdout
    assert "DrivenArm: 6 states, 2 inputs" in res.stdout


def test_newlines_inside_brackets_and_semicolons():
    mod = parse_source("model M { state x = 1; der(x) = -(x +\n 1) * [1,\n 2][0] }\n")
    assert len(mod.models[0].body) == 2


def test_keywords_usable_as_block_keys_but_not_as_names():
    mod = parse_source("dataset d { model = M\n output = 1 }\n")
    assert [e.key for e in mod.datasets[0].entries] == ["model", "output"]
    with pytest.raises(nodedsl.NodeDslError) as err:
        parse_source("model M { state for = 1\n der(for) = 1 }")
    assert err.value.diagnostics[0].code == "reserved-name"


def test_all_diagnostics_collected_with_spans_and_suggestion():
    src = "model M {\n  state theta = 1\n  state v[2] = 0\n  der(theta) = thta\n  der(v) = [1, 2, 3]\n}\n"
    with pytest.raises(nodedsl.NodeDslError) as err:
        nodedsl.loads(src, "m.node")
    diags = err.value.diagnostics
    assert [(d.code, d.span.line) for d in diags] == [("undefined-name", 4), ("size-mismatch", 5)]
    assert "did you mean 'theta'?" in diags[0].notes
    assert "vector[2]" in diags[1].message and "vector[3]" in diags[1].message
    text = render(diags[0], src)
    assert text.splitlines()[0] == "m.node:4:16: error[undefined-name]: unknown name 'thta'"
    assert text.splitlines()[2].strip() == "|" + " " * 0 + "               ^~~~".strip() or "^~~~" in text


def test_syntax_error_says_what_was_expected():
    with pytest.raises(nodedsl.NodeDslError) as err:
        nodedsl.loads("model M {\n  param g 9.81\n}\n", "m.node")
    d = err.value.diagnostics[0]
    assert (d.code, d.span.line) == ("missing-equals", 2)
    assert any("expected" in n for n in d.notes)


def test_cli_never_shows_a_traceback(tmp_path):
    for text in ["model {", "\x00", "model M { der(x) = 1 }", "import \"nope.node\"", "train X { epochs = -1 }"]:
        f = tmp_path / "bad.node"
        f.write_text(text)
        res = run_cli("check", str(f))
        assert res.returncode == 1
        assert "Traceback" not in res.stderr and "error[" in res.stderr
    res = run_cli("check", str(tmp_path / "missing.node"))
    assert res.returncode == 1 and "error[file-not-found]" in res.stderr


def test_import_cycle_names_the_cycle(tmp_path):
    (tmp_path / "a.node").write_text('import "b.node"\nmodel A { state x = 0\n der(x) = 0 }\n')
    (tmp_path / "b.node").write_text('import "a.node"\n')
    with pytest.raises(nodedsl.NodeDslError) as err:
        nodedsl.load(tmp_path / "a.node")
    d = err.value.diagnostics[0]
    assert d.code == "import-cycle" and "a.node -> " in d.message and "b.node" in d.message


def test_show_port_hamiltonian_derived_dynamics():
    res = run_cli("show", "examples/msd.node", "--model", "MassSpringDamper")
    assert res.returncode == 0, res.stderr
    assert "d/dt p = force - V'(q) - p*damping(p)/m" in res.stdout
    assert "output y(force) = p/m" in res.stdout
    res = run_cli("show", "examples/pendulum.node", "--model", "Pendulum", "--latex")
    assert res.returncode == 0 and "\\operatorname{friction}" in res.stdout


def test_simulate_csv_roundtrip(tmp_path):
    out = tmp_path / "sim.csv"
    res = run_cli(
        "simulate",
        "examples/pendulum.node",
        "--model",
        "PendulumTruth",
        "--t-end",
        "1",
        "--step",
        "0.1",
        "--set",
        "theta=0.5",
        "--input",
        "torque=0.1*sin(2*t)",
        "-o",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["trajectory", "t", "theta", "omega", "torque"]  # inputs are always written
    assert len(rows) == 11 and float(rows[0]["theta"]) == 0.5
    assert float(rows[3]["torque"]) == pytest.approx(0.1 * math.sin(2 * 0.3), abs=1e-12)
    res = run_cli("simulate", "examples/pendulum.node", "--model", "PendulumTruth", "--input", "torque=__import__(1)")
    assert res.returncode == 1 and "Traceback" not in res.stderr


def test_simulate_energy_columns(tmp_path):
    out = tmp_path / "e.csv"
    res = run_cli(
        "simulate",
        "examples/msd.node",
        "--model",
        "MassSpringDamperTruth",
        "--t-end",
        "1",
        "--step",
        "0.5",
        "--energy",
        "-o",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(out.open()))
    assert float(rows[0]["H"]) == pytest.approx(1.5)  # k q^2/2 + 0.5 q^4 at q = 1, p = 0
    assert float(rows[-1]["H"]) < 1.5  # damping dissipates
