"""Sub-model instances: one template per model, renamed per use, given each instance's overrides.

The renaming rebuilds sums and products without re-canonicalizing them (``rename._rebuild``); it must
give exactly the tree ``xreplace`` gives, and instances of one model with different overrides must keep
their own numbers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nodedsl.frontend.check import check_source
from nodedsl.frontend.loader import source_from_text
from nodedsl.program import Program
from nodedsl.symbolic import rename
from nodedsl.symbolic.lower import lower

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from compile_scaling import chain_source

MIXED = """
model Leaky {
    state x = 1.0
    input u = 0.5
    param k = 2.0
    param k2 = k * k
    output y = x
    der(x) = -k2 * x + sin(t) * u
}
model Two {
    sub a = Leaky(k = 3.0, x = 4.0)
    sub b = Leaky(u = -1.0)
    connect a.y -> b.u
}
"""


def _system(text: str, name: str):
    source = source_from_text(text, "m.node")
    checked, diags = check_source(source)
    assert not [d for d in diags if d.severity == "error"], diags
    return lower(Program(checked, diags).info(name))


@pytest.mark.parametrize("text,name", [(chain_source(6), "Chain"), (MIXED, "Two")])
def test_renaming_gives_the_trees_xreplace_gives(monkeypatch, text, name):
    fast = _system(text, name)
    monkeypatch.setattr(rename, "_rebuild", lambda e, mapping: e.xreplace(mapping))
    slow = _system(text, name)
    assert [str(s) for s in fast.states] == [str(s) for s in slow.states]
    assert all(a == b for a, b in zip(fast.rhs, slow.rhs, strict=True))  # structurally equal, not just equivalent


def test_each_instance_keeps_its_overrides():
    system = _system(chain_source(4), "Chain")
    values = {p.name: p.value for p in system.params}
    assert [values[f"m{i}.m"] for i in range(4)] == [[1.0], [1.01], [1.02], [1.03]]
    assert [values[f"s{i}.k"] for i in range(3)] == [[1.0], [1.02], [1.04]]
    x0 = dict(zip([str(s) for s in system.states], system.x0, strict=True))
    assert [x0[f"m{i}.q"] for i in range(4)] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_overrides_reach_derived_params_and_inputs():
    system = _system(MIXED, "Two")
    values = {p.name: p.value for p in system.params}
    assert values["a.k"] == [3.0] and values["a.k2"] == [9.0]  # k2 = k * k follows the override
    assert values["b.k"] == [2.0] and values["b.k2"] == [4.0]
    x0 = dict(zip([str(s) for s in system.states], system.x0, strict=True))
    assert x0 == {"a.x": 4.0, "b.x": 1.0}
    assert dict(zip([str(s) for s in system.inputs], system.u0, strict=True)) == {"a.u": 0.5}
