"""The standard library (stdlib/*.node): every module loads, imports as a stdlib module, composes,
and its port-Hamiltonian components conserve (or dissipate) energy as documented."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import nodedsl
from nodedsl.core.resources import data_dir

STDLIB = data_dir("stdlib")
MODULES = ["mechanics", "circuits"]
COMPONENTS = {
    "mechanics": {"Mass", "Spring", "NonlinearSpring", "MassDamper", "MassSpringDamper", "Pendulum"},
    "circuits": {
        "Inductor",
        "Capacitor",
        "ResistiveInductor",
        "LCTank",
        "Resistor",
        "Conductor",
        "VoltageSource",
        "CurrentSource",
        "SeriesRLC",
    },
}


def _write(tmp_path: Path, text: str, name: str = "main.node") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _rk4(model, x: torch.Tensor, h: float, steps: int) -> torch.Tensor:
    t = torch.tensor(0.0, dtype=x.dtype)
    with torch.no_grad():
        for _ in range(steps):
            k1 = model(t, x)
            k2 = model(t, x + h / 2 * k1)
            k3 = model(t, x + h / 2 * k2)
            k4 = model(t, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def _energy_drift(model, steps: int = 1000, h: float = 1e-3) -> float:
    model = model.double()
    x0 = model.x0_default[None].double()
    h0 = model.hamiltonian(x0)
    x1 = _rk4(model, x0, h, steps)
    assert torch.isfinite(x1).all()
    return float((model.hamiltonian(x1) - h0).abs().max() / h0.abs().max())


@pytest.mark.parametrize("module", MODULES)
def test_stdlib_module_loads(module):
    prog = nodedsl.load(STDLIB / f"{module}.node")
    assert set(prog.model_names()) == COMPONENTS[module]
    for name in prog.model_names():
        info = prog.info(name)
        assert info.is_ph, name
        prog.model(name)  # lowers and compiles


@pytest.mark.parametrize("module", MODULES)
def test_every_component_has_a_doc_comment(module):
    lines = (STDLIB / f"{module}.node").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("model "):
            assert i > 0 and lines[i - 1].startswith("#"), f"{module}: no doc comment above {line!r}"


def test_import_stdlib_with_alias(tmp_path):
    path = _write(
        tmp_path, 'import "mechanics" as mech\n\nmodel One : port_hamiltonian {\n    sub a = mech.Mass(m = 2.0)\n}\n'
    )
    prog = nodedsl.load(path)
    assert "mech.Mass" in prog.model_names()
    model = prog.model("One")
    assert model.state_names == ("a.p",)
    values = {p.name: p.value for p in prog.system("One").params}
    assert values["a.m"] == [2.0]


def test_import_stdlib_without_alias(tmp_path):
    path = _write(
        tmp_path,
        'import "circuits"\n\nmodel Two : port_hamiltonian {\n    sub l = Inductor()\n    sub c = Capacitor()\n}\n',
    )
    prog = nodedsl.load(path)
    assert {"Inductor", "Capacitor", "Two"} <= set(prog.model_names())


def test_lc_circuit_from_stdlib_conserves_energy(tmp_path):
    path = _write(
        tmp_path,
        'import "circuits" as ckt\n\n'
        "model Tank : port_hamiltonian {\n"
        "    sub l = ckt.Inductor(L = 0.5, phi = 1.0)\n"
        "    sub c = ckt.Capacitor(C = 2.0, q = 0.5)\n"
        "    couple [l.terminal, c.terminal] K = [[0, 1], [-1, 0]]\n"
        "}\n",
    )
    model = nodedsl.load(path).model("Tank")
    assert model.state_names == ("l.phi", "c.q")
    assert model.input_names == ()
    assert _energy_drift(model) < 1e-6


def test_lctank_conserves_energy():
    model = nodedsl.load(STDLIB / "circuits.node").model("LCTank")
    assert _energy_drift(model) < 1e-6


def test_two_masses_from_stdlib_conserve_energy(tmp_path):
    path = _write(
        tmp_path,
        'import "mechanics" as mech\n\n'
        "model TwoMasses : port_hamiltonian {\n"
        "    sub left = mech.Mass(m = 1.0, p = 1.0)\n"
        "    sub right = mech.Mass(m = 2.0)\n"
        "    sub spring = mech.NonlinearSpring(k = 1.5, stretch = 0.3)\n"
        "    couple [left.force, right.force, spring.ends] C = "
        "[[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]\n"
        "}\n",
    )
    model = nodedsl.load(path).model("TwoMasses")
    assert _energy_drift(model) < 1e-6


def test_pendulum_conserves_energy():
    model = nodedsl.load(STDLIB / "mechanics.node").model("Pendulum")
    assert _energy_drift(model) < 1e-6


@pytest.mark.parametrize(
    "module,name", [("mechanics", "MassDamper"), ("mechanics", "MassSpringDamper"), ("circuits", "ResistiveInductor")]
)
def test_dissipative_components_lose_energy(tmp_path, module, name):
    state = {"MassDamper": "p", "MassSpringDamper": "p", "ResistiveInductor": "phi"}[name]
    path = _write(
        tmp_path,
        f'import "{module}" as lib\n\nmodel Free : port_hamiltonian {{\n    sub x = lib.{name}({state} = 1.0)\n}}\n',
    )
    model = nodedsl.load(path).model("Free").double()
    x0 = model.x0_default[None]
    x1 = _rk4(model, x0, 1e-2, 200)
    assert float(model.hamiltonian(x1)) < float(model.hamiltonian(x0))
    assert float(model.dissipation(x0)) > 0


def test_nested_composite_ports_can_be_coupled(tmp_path):
    path = _write(
        tmp_path,
        'import "mechanics" as mech\n\n'
        "model Single : port_hamiltonian {\n    sub a = mech.Mass(p = 1.0)\n}\n\n"
        "model Outer : port_hamiltonian {\n"
        "    sub one = Single()\n"
        "    sub m = mech.Mass(m = 2.0)\n"
        "    sub s = mech.Spring()\n"
        "    couple [one.a.force, m.force, s.ends] C = "
        "[[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]\n"
        "}\n",
    )
    model = nodedsl.load(path).model("Outer")
    assert _energy_drift(model) < 1e-6
