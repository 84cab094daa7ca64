"""Stateless port-Hamiltonian elements (issue 18): a resistor and a voltage source from the circuits
stdlib in a series RLC loop, against scipy on the hand-written ODE; their energy books; a learned
resistor curve sitting in the port relation (the training benchmark is benchmarks/rlc_resistor.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import sympy as sp
import torch
from scipy.integrate import solve_ivp
from typer.testing import CliRunner

import nodedsl
from nodedsl.cli.main import app
from nodedsl.compiler.power import supplied_power
from nodedsl.core.resources import data_dir

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
L, C, R0 = 0.5, 2.0, 0.3
SOURCE = f"""
import "circuits" as ckt

model Loop : port_hamiltonian {{
    sub inductor = ckt.Inductor(L = {L}, phi = 1.0)
    sub capacitor = ckt.Capacitor(C = {C}, q = -0.5)
    sub resistor = ckt.Resistor(r = {R0})
    sub source = ckt.VoltageSource()
    couple [inductor.terminal, capacitor.terminal, resistor.terminal, source.terminal] K = [[0, -1, -1, 1], [1, 0, 0, 0], [1, 0, 0, 0], [-1, 0, 0, 0]]
}}
"""


def _rows(path: Path) -> dict[str, np.ndarray]:
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def test_series_rlc_checks_and_matches_scipy(tmp_path):
    path = tmp_path / "rlc.node"
    path.write_text(SOURCE)
    runner = CliRunner()
    res = runner.invoke(app, ["check", str(path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Loop (port-Hamiltonian): 2 states, 1 inputs, 3 params (0 learned)" in res.output
    out = tmp_path / "sim.csv"
    args = ["simulate", str(path), "-m", "Loop", "--t-end", "5", "--step", "0.1"]
    args += ["--input", "source.V=sin(t)", "--energy", "-o", str(out)]
    res = runner.invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    got = _rows(out)

    def rlc(t, x):  # Kirchhoff's voltage law around the loop, written by hand
        phi, q = x
        return [np.sin(t) - R0 * phi / L - q / C, phi / L]

    ref = solve_ivp(rlc, (0, 5), [1.0, -0.5], t_eval=got["t"], rtol=1e-12, atol=1e-12, method="DOP853")
    assert np.abs(got["inductor.phi"] - ref.y[0]).max() < 1e-6
    assert np.abs(got["capacitor.q"] - ref.y[1]).max() < 1e-6
    i = got["inductor.phi"] / L
    np.testing.assert_allclose(got["source.V"], np.sin(got["t"]), atol=1e-12)
    # the resistor's power is dissipated, the source's supplied: dH/dt = -r i^2 + V i
    np.testing.assert_allclose(got["P_dissipated"], R0 * i**2, atol=1e-9)
    np.testing.assert_allclose(got["P_supplied"], got["source.V"] * i, atol=1e-9)


def test_stdlib_series_rlc_lowers_to_kirchhoff():
    system = nodedsl.load(data_dir("stdlib") / "circuits.node").system("SeriesRLC")
    assert system.input_names == ["source.V"]
    phi, q = system.states
    V = system.inputs[0]
    known = {s: v for p in system.params for s, v in zip(p.symbols, p.value)}  # L = C = 1, r = 0.5
    rhs = [e.xreplace(known) for e in system.rhs]
    assert sp.simplify(rhs[0] - (V - phi / 2 - q)) == 0
    assert sp.simplify(rhs[1] - phi) == 0
    assert sp.simplify(system.ph.dissipation.xreplace(known) - phi**2 / 2) == 0
    assert sp.simplify(system.ph.supplied.xreplace(known) - V * phi) == 0


def test_learned_resistor_net_sits_in_the_relation():
    torch.manual_seed(0)
    model = nodedsl.load(EXAMPLES / "rlc.node").model("RLC", dtype=torch.float64)
    i = torch.linspace(-2, 2, 9, dtype=torch.float64)
    x = torch.stack([i, torch.zeros_like(i)], -1)  # L = 1: phi = i; q = 0; V = 0
    dphi = model.field(0.0, x, torch.zeros(9, 1, dtype=torch.float64))[:, 0]
    net = model.nets["resistor__g"]
    with torch.no_grad():
        g = net(i[:, None])[:, 0]
    torch.testing.assert_close(-dphi.detach(), 0.5 * i + g, atol=1e-12, rtol=0)  # y = r u + g(u), r = 0.5
    dphi.pow(2).sum().backward()  # gradients reach the net through the coupling
    assert any(float(p.grad.abs().sum()) > 0 for p in net.parameters() if p.grad is not None)


def test_free_stateless_port_is_an_input_and_output_only(tmp_path):
    """A resistor left uncoupled does not act on the states, and its u y is no energy supplied to H."""
    path = tmp_path / "free.node"
    path.write_text(
        'import "circuits" as ckt\nmodel M : port_hamiltonian {\n    sub l = ckt.Inductor(phi = 1.0)\n'
        "    sub r = ckt.Resistor(r = 2.0)\n}\n"
    )
    model = nodedsl.load(path).model("M", dtype=torch.float64)
    assert model.input_names == ("l.terminal", "r.terminal")
    x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    u = torch.tensor([[0.5, 3.0], [0.0, -1.0]], dtype=torch.float64)
    torch.testing.assert_close(model.field(0.0, x, u)[:, 0], u[:, 0])  # d phi/dt = v_L only
    torch.testing.assert_close(model.port_outputs(x, 0.0, u), torch.tensor([[1.0, 6.0], [2.0, -2.0]]).double())
    torch.testing.assert_close(supplied_power(model, x, 0.0, u), x[:, 0] * u[:, 0])  # the inductor's i v only
