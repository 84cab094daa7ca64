"""The compiler's op vocabulary (nodedsl/compiler/ops.py): every op of every generated graph is declared,
and every declared op has a Taylor rule in the jet or an explicit constant / no-rule mark."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import fx

import nodedsl
from nodedsl.compiler import jet, jetrules, ops
from nodedsl.core.resources import data_dir

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "examples").glob("*.node")) + sorted(data_dir("stdlib").glob("*.node"))

# every builtin, a net and its derivative (grad H of a learned Hamiltonian), min/max/clip, a coupled composite
EXTRA = """
model AllBuiltins {
    state x[2] = [0.3, 0.2]
    input u = 0.1
    param a = 0.4
    let A = [[1.1, 0.2], [0.3, a]]
    param k = 2.0 learn positive
    net f(y[2]) -> 1 { hidden = [4], activation = tanh }
    der(x) = [sin(x[0]) + cos(x[1]) + tan(0.1 * x[0]) + exp(-x[1]) + log(2 + x[0]^2) + sqrt(1 + x[1]^2)
                + tanh(x[0]) + sigmoid(x[1]) + softplus(x[0]) + abs(x[1]) + sign(x[0]) + f(x),
              min(x[0], u) + max(x[1], 0) + clip(x[0], -1, 1) + dot(x, x) + norm(x) + k * x[0]
                + (solve(A, x) + diag(x) @ x + transpose(A) @ x)[0]]
}
model LearnedH : port_hamiltonian {
    state q = 0.5
    state p = 0.1
    net h(q, p) -> 1 { hidden = [4], activation = tanh }
    hamiltonian = h(q, p)
    R = psd([0.0, 0.0, 0.1])
    J = skew([1.0])
}
"""


def _graphs():
    progs = [nodedsl.load(path) for path in SOURCES] + [nodedsl.loads(EXTRA)]
    for prog in progs:
        for name in prog.model_names():
            model = prog.model(name)
            yield f"{prog.info(name).file}:{name}", model._field


def test_sources_found():
    assert len(SOURCES) >= 8


def test_every_graph_op_is_declared():
    seen = set()
    for where, gm in _graphs():
        for node in gm.graph.nodes:
            if node.op == "call_function":
                assert node.target in ops.FUNCTIONS, f"{where}: {node.target} is not declared in ops.py"
                seen.add(node.target)
            elif node.op == "call_method":
                assert node.target in ops.METHODS, f"{where}: method {node.target} is not declared in ops.py"
    # the extra models reach the ops of every builtin, nets and their derivatives
    for fn in (torch.sin, ops.apply, ops.mlp_grad, ops.minimum, ops.maximum, torch.sign, torch.abs):
        assert fn in seen, fn


def test_every_declared_op_has_a_rule_or_a_mark():
    for target, op in {**ops.FUNCTIONS, **ops.METHODS}.items():
        assert op.jet in jet.RULE_NAMES, f"{target}: no Taylor rule named {op.jet!r}"
        if op.jet in (ops.CONSTANT, ops.NO_RULE):
            assert op.why, f"{target}: a {op.jet} mark needs its reason"
        if op.jet == "unary":
            assert op.arg in jetrules.UNARY_NAMES, target
        if op.jet == "piecewise":
            assert op.arg in jetrules.PIECEWISE_KINDS, target
        if op.jet == "minmax":
            assert op.arg in jetrules.MINMAX_KINDS, target


def test_an_undeclared_op_makes_the_jet_decline():
    g = fx.Graph()
    names = ["t", "x", "u", "z", "params", "nets"]
    ph = {n: g.placeholder(n) for n in names}
    g.output(g.call_function(torch.atan, (ph["x"],)))  # not in the language, not declared
    assert jet.jet_function(fx.GraphModule(torch.nn.Module(), g), 2, 1, []) is None
    g2 = fx.Graph()
    ph = {n: g2.placeholder(n) for n in names}
    g2.output(g2.call_function(torch.sin, (ph["x"],)))
    fn = jet.jet_function(fx.GraphModule(torch.nn.Module(), g2), 2, 1, [])
    x = torch.tensor([[0.5]], dtype=torch.float64)
    out = fn(torch.tensor(0.0), x, x[:, :0], x[:, :0], None, ())
    # x' = sin x, x'' = cos(x) x' = cos x sin x
    want = torch.tensor([[0.5]], dtype=torch.float64)
    assert torch.allclose(out, torch.cat([want.sin(), want.cos() * want.sin()], dim=-1), atol=1e-12)


@pytest.mark.parametrize("order", [3])
def test_jet_of_every_builtin_matches_nested_jvp(order):
    """The Taylor coefficients of the all-builtins field (no net derivative) equal nested autograd."""
    model = nodedsl.loads(EXTRA.split("model LearnedH")[0]).model("AllBuiltins").double()
    fn = jet.jet_function(model._field, order, 2, list(model._nets()))
    assert fn is not None
    x = torch.tensor([[0.3, 0.2]], dtype=torch.float64)
    u = torch.tensor([[0.1]], dtype=torch.float64)
    z = x[:, :0]
    t = torch.tensor(0.0, dtype=torch.float64)
    got = fn(t, x, u, z, model._pargs(), tuple(model._nets()))

    def f(v):
        return model._field(t, v, u, z, model._pargs(), tuple(model._nets()))

    want, d = [], f
    for _ in range(order):
        want.append(d(x))
        d = (lambda g: lambda v: torch.func.jvp(g, (v,), (f(v),))[1])(d)
    assert torch.allclose(got, torch.cat(want, dim=-1), rtol=1e-9, atol=1e-9)
