"""The staged field of coupled port-Hamiltonian composites, and the compiler's layout passes.

A coupled composite is compiled in stages (port outputs ``y``, then ``u = C y`` as matmuls or a
sparse map, then the field with ``u`` free) instead of from the fully substituted expressions.
These tests compare the two forms, values and gradients, on every path of the coupling map:
one small matmul per piece of ``y``, one matmul over the combined ``y``, the sparse form for large
maps, the learned (non-numeric) map, inputs that no coupling drives, nesting, free ports, nets.
They also check the known-parameter vector after ``.double()``, in-place edits and state_dict
loads, and the split rewrite of column slices.
"""

from __future__ import annotations

import copy
import operator
from pathlib import Path

import pytest
import torch
from torch import fx

import nodedsl
from nodedsl.compiler.graph import build_function
from nodedsl.compiler.views import split_views

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.usefixtures("float64")

# a two-port mass with state-dependent damping (none in the stdlib); springs come from the stdlib
COMPONENTS = """
import "mechanics" as mech

model Mass : port_hamiltonian {
    state q = 0.1
    state p = 0.0
    param m = 1.0
    param k = 0.5
    param c = 0.1
    hamiltonian = p^2 / (2 * m) + k * q^2 / 2 + 0.25 * q^4
    R = [[0, 0], [0, c + 0.1 * p^2]]
    port left { G = [[0], [1]] }
    port right { G = [[0], [1]] }
}
"""


COUPLING = "[[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]"


def pairwise_chain(n: int) -> str:
    """n masses, n - 1 springs, one 4-port couple per spring; the end masses keep a free port."""
    lines = [COMPONENTS, "model Chain : port_hamiltonian {"]
    lines += [f"    sub m{i} = Mass(m = {1 + 0.1 * i:g}, k = {0.5 + 0.05 * i:g})" for i in range(n)]
    lines += [f"    sub s{i} = mech.NonlinearSpring(k = {1 + 0.2 * i:g})" for i in range(n - 1)]
    lines += [f"    couple [m{i}.right, m{i + 1}.left, s{i}.ends] C = {COUPLING}" for i in range(n - 1)]
    return "\n".join(lines + ["}"]) + "\n"


def single_couple_chain(n: int, gyrator: bool = False) -> str:
    """n masses, n - 1 springs, all coupled by one large couple (the end masses' outer ports too);
    ``gyrator``: masses 0 and 1 also push each other with their velocities (C[0][1] = -1, C[1][0] = 1)."""
    ports = [f"m{i}.right" for i in range(n)] + [f"s{j}.ends" for j in range(n - 1)]
    size = n + 2 * (n - 1)
    C = [[0] * size for _ in range(size)]
    for j in range(n - 1):
        for end, mass in ((0, j), (1, j + 1)):
            e = n + 2 * j + end
            C[mass][e], C[e][mass] = -1, 1
    if gyrator:
        C[0][1], C[1][0] = -1, 1
    rows = ", ".join("[" + ", ".join(map(str, r)) + "]" for r in C)
    lines = [COMPONENTS, "model Chain : port_hamiltonian {"]
    lines += [f"    sub m{i} = Mass(m = {1 + 0.1 * i:g})" for i in range(n)]
    lines += [f"    sub s{j} = mech.NonlinearSpring(k = {1 + 0.2 * j:g})" for j in range(n - 1)]
    lines.append(f"    couple [{', '.join(ports)}] C = [{rows}]")
    return "\n".join(lines + ["}"]) + "\n"


# a three-port couple whose third port is driven by nothing (a zero row of C), nested one level down
UNDRIVEN = (
    COMPONENTS
    + """
model Pair : port_hamiltonian {
    sub a = Mass(m = 1.0)
    sub b = Mass(m = 2.0)
    sub s = mech.NonlinearSpring(k = 3.0)
    couple [a.right, b.left, s.ends, b.right] C = [[0, 0, -1, 0, 0], [0, 0, 0, -1, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 0]]
}

model Outer : port_hamiltonian {
    sub pair = Pair()
    sub tip = Mass(m = 0.5)
    sub s = mech.NonlinearSpring(k = 2.0)
    couple [pair.a.left, tip.left, s.ends] C = """
    + COUPLING
    + """
}
"""
)


@pytest.fixture
def load(tmp_path):
    def run(text: str, name: str):
        path = tmp_path / "model.node"
        path.write_text(text)
        return nodedsl.load(path).model(name)

    return run


def _substituted(model):
    """The field compiled from the fully substituted expressions (the unstaged reference)."""
    system = model.system
    return build_function(
        list(system.rhs), {"x": system.states, "u": system.inputs, "z": []}, model._layout, model._net_order
    )


def _compare(model, seed: int = 0):
    assert model.system.staged is not None
    gen = torch.Generator().manual_seed(seed)
    n, m = len(model.state_names), len(model.input_names)
    x = (torch.rand(7, n, generator=gen) - 0.5).requires_grad_(True)
    u = torch.rand(7, m, generator=gen) - 0.5
    t = torch.tensor(0.3)
    ref_fn = _substituted(model)
    got = model.field(t, x, u)
    ref = ref_fn(t, x, u, x, model._pargs(), model._nets())
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    params = [p for p in model.parameters() if p.requires_grad]
    weights = torch.rand(got.shape, generator=gen)
    g_got = torch.autograd.grad((got * weights).sum(), [x] + params, allow_unused=True)
    ref = ref_fn(t, x, u, x, model._pargs(), model._nets())
    g_ref = torch.autograd.grad((ref * weights).sum(), [x] + params, allow_unused=True)
    for a, b in zip(g_got, g_ref):  # None: a parameter neither form uses (a net's last bias under d/dq)
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    return model._field.code


def _ops(code: str, name: str) -> int:
    return code.count(name)


def test_single_couple_uses_one_product_per_piece(load):
    code = _compare(load(single_couple_chain(6), "Chain"))
    assert _ops(code, "torch.matmul(") == 2  # forces from springs, end velocities from masses
    assert "index_add" not in code


def test_pairwise_couples_merge_into_products(load):
    code = _compare(load(pairwise_chain(5), "Chain"))
    assert "torch.matmul(" in code


def test_large_coupling_uses_the_sparse_map(load):
    code = _compare(load(single_couple_chain(70), "Chain"))  # 70 x 69 blocks: over _DENSE_MAX
    assert "index_add" in code or "_scatter_cols" in code
    assert "torch.matmul(" not in code


def test_undriven_inputs_and_nesting(load):
    model = load(UNDRIVEN, "Outer")
    _compare(model)
    assert "tip.right" in model.input_names and "pair.b.right" not in model.input_names


@pytest.mark.parametrize("name", ["TwoMasses", "TwoMassesLearned"])
def test_examples(name):
    torch.manual_seed(0)
    model = nodedsl.load(EXAMPLES / "two_masses.node").model(name)
    if "C" in model.learned:  # a learned, non-numeric map: random, not its zero start
        with torch.no_grad():
            model.learned["C"].copy_(torch.randn_like(model.learned["C"]))
    _compare(model)


# ------------------------------------------------------------------------------------------ known parameters
def test_known_parameters_follow_edits_dtype_and_loads(load):
    src = single_couple_chain(3)
    model = load(src, "Chain")
    x = torch.rand(4, len(model.state_names))
    before = model.field(0.0, x)
    model.known__s0__k.fill_(7.0)  # an in-place edit of one buffer reaches the flat vector
    after = model.field(0.0, x)
    assert not torch.allclose(before, after)
    assert model._known.data_ptr() == model.known__m0__m.data_ptr()

    f32 = copy.deepcopy(model).float()  # conversion re-ties the views
    assert f32.known__s0__k.dtype == torch.float32 and f32._known.dtype == torch.float32
    f32.known__s0__k.fill_(1.0)
    assert float(f32._known[f32._layout[next(s for s in f32._layout if s.name == "s0.k")][1]]) == 1.0
    assert float(model.known__s0__k) == 7.0  # the copy is independent

    fresh = load(src, "Chain")
    fresh.load_state_dict(model.state_dict())
    torch.testing.assert_close(fresh.field(0.0, x), after)
    assert "_known" not in model.state_dict()  # checkpoints keep one entry per parameter


# ------------------------------------------------------------------------------------------ split rewrite
def _graph(slices, width=6):
    g = fx.Graph()
    x = g.placeholder("x")
    nodes = [g.call_function(operator.getitem, (x, (Ellipsis, s))) for s in slices]
    out = nodes[0]
    for k, node in enumerate(nodes[1:], 2):
        out = g.call_function(operator.add, (out, g.call_function(operator.mul, (float(k), node))))
    g.output(out)
    return g, x


@pytest.mark.parametrize(
    "slices, rewritten",
    [
        ([slice(0, 3), slice(3, 6)], True),
        ([0, slice(1, 2), 2], True),
        ([slice(0, 6, 2), slice(1, 6, 2)], False),  # interleaved: strided slices stay
        ([slice(0, 3), slice(2, 5)], False),  # overlapping
        ([slice(0, 4, 2), slice(1, 2)], False),  # column 1 read inside an interleaved run
    ],
)
def test_split_views(slices, rewritten):
    g, x = _graph(slices)
    reference = fx.GraphModule(torch.nn.Module(), copy.deepcopy(g))
    assert split_views(g, x, 6) is rewritten
    g.lint()
    module = fx.GraphModule(torch.nn.Module(), g)
    assert ("split" in module.code) is rewritten
    a = torch.rand(5, 6, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    torch.testing.assert_close(module(a), reference(b))
    module(a).square().sum().backward()
    reference(b).square().sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_linear_equations_of_coupled_inputs_fold_into_the_map():
    """``u1 - u0`` (a spring's stretch rate) becomes a row of the coupling map; ``k * u0`` (not a
    numeric combination) and a bare ``u2`` stay; inputs no equation reads are dropped."""
    import sympy as sp

    from nodedsl.compiler.graph import _fold_linear

    u0, u1, u2, u3, k = sp.symbols("u0 u1 u2 u3 k", real=True)
    entries = [
        (0, 0, sp.Integer(1)),
        (1, 1, sp.Integer(-1)),
        (1, 2, sp.Integer(2)),
        (2, 0, sp.Integer(3)),
        (3, 2, sp.Integer(5)),
    ]
    exprs, inputs, got = _fold_linear([u1 - u0, k * u0, u2], [u0, u1, u2, u3], entries)
    new = exprs[0]
    assert exprs[1:] == [k * u0, u2] and new not in (u0, u1, u2, u3)
    assert inputs == [u0, u2, new]  # u1 and u3 are read by no equation any more
    rows = {}
    for r, c, v in got:
        rows.setdefault(inputs[r], {}).setdefault(c, 0)
        rows[inputs[r]][c] += v
    assert rows[new] == {0: -1, 1: -1, 2: 2}  # (u1 - u0) = (-y1 + 2 y2) - (y0)
    assert rows[u0] == {0: 1} and rows[u2] == {0: 3}


def test_inputs_driven_by_two_pieces_use_one_product(load):
    """Mass 0's force sums a spring's force and mass 1's velocity, so two pieces of y drive the same
    input: one matmul over the combined y, no sparse map."""
    code = _compare(load(single_couple_chain(5, gyrator=True), "Chain"))
    assert _ops(code, "torch.matmul(") == 1 and "index_add" not in code and "_scatter_cols" not in code


def test_small_composite_computes_each_velocity_once():
    """Two masses: the port outputs p/m are grouped like the field's, so one vector division serves both
    (they were two scalar divisions for y and a vector one for the field)."""
    model = nodedsl.load(EXAMPLES / "two_masses.node").model("TwoMasses")
    assert model._field.code.count(" / ") == 1
