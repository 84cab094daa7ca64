"""Taylor-mode AD over compiled fields (``nodedsl.compiler.jet``) against nested forward-mode AD.

The reference is ``solvers.derivatives.taylor_coefficients`` on a plain callable (nested
``torch.func.jvp``), an independent computation. Checked in float64: every elementwise function and
net activation the language has, products, quotients, integer and fractional powers, min/max, time
dependence, inputs, the staged field of coupled composites, random expression models (hypothesis),
and gradients of the coefficients with respect to learned parameters (training differentiates them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nodedsl
from nodedsl.compiler.jet import jet_function
from nodedsl.solvers import derivatives as D

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

pytestmark = pytest.mark.usefixtures("float64")

EVERYTHING = """
model Everything {
    state a = 0.3
    state b = -0.2
    state c = 0.5
    input w = 0.1
    param k = 1.3 learn positive
    param s[2] = [0.5, -0.25] learn
    net g(a, b) -> 2 { hidden = [8], activation = tanh }
    net h(c) -> 1 { hidden = [5, 5], activation = softplus }
    net r(a) -> 1 { hidden = [6], activation = gelu }
    net q(b) -> 1 { hidden = [6], activation = silu }
    net e(c) -> 1 { hidden = [6], activation = elu }
    net m(a, c) -> 1 { hidden = [6], activation = sigmoid, output = softplus }
    net z(b, c) -> 1 { hidden = [4], activation = relu }
    der(a) = sin(b) * k + g(a, b)[0] + a^3 - exp(c) / (2 + b^2) + w + r(a) + s[0] * a * b
    der(b) = cos(a * b) + log(2 + c^2) + sqrt(3 + a^2) + tanh(c) * sigmoid(b) + g(a, b)[1] + q(b) + s[1] / (1 + c^2)
    der(c) = softplus(a) - abs(b + 2) + max(a, b) + min(c, 0.1) + h(c) + (1 + a^2)^1.5 + e(c) + m(a, c) + tan(0.3 * c) + t^2 + z(b, c) + clip(a, -1, 1)
}
"""


def _reference(model, u):
    return lambda tt, xx: model.field(tt, xx, u)


def _check(model, order: int, seed: int = 0, scale: float = 0.5):
    fn = jet_function(model._field, order, len(model.state_names), list(model._nets()))
    assert fn is not None
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, len(model.state_names), generator=gen) * scale
    t = torch.tensor(0.7)
    u = model.default_inputs(x)
    got = fn(t, x, u, x, model._pargs(), model._nets()).split(x.shape[1], -1)
    ref = D.taylor_coefficients(_reference(model, u), t, x, order)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)
    return got, ref


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_function_and_activation(order):
    torch.manual_seed(0)
    model = nodedsl.loads(EVERYTHING).model("Everything")
    _check(model, order)


def test_gradients_wrt_parameters_match():
    torch.manual_seed(1)
    model = nodedsl.loads(EVERYTHING).model("Everything")
    params = [p for p in model.parameters() if p.requires_grad]
    got, ref = _check(model, 3, seed=2)
    w = [torch.rand_like(g) for g in got]
    dg = torch.autograd.grad(sum((g * wi).sum() for g, wi in zip(got, w)), params, allow_unused=True)
    dr = torch.autograd.grad(sum((r * wi).sum() for r, wi in zip(ref, w)), params, allow_unused=True)
    for a, b in zip(dg, dr):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "file, name",
    [
        ("pendulum.node", "Pendulum"),
        ("two_masses.node", "TwoMasses"),
        ("lotka_volterra.node", "LotkaVolterra"),
        ("arm.node", "DrivenArm"),
        ("blackbox.node", "PendulumBlackBox"),
        ("msd.node", "MassSpringDamperTruth"),
    ],
)
def test_examples(file, name):
    torch.manual_seed(0)
    _check(nodedsl.load(EXAMPLES / file).model(name), 4)


def test_compiled_model_uses_it_and_learned_hamiltonian_falls_back():
    torch.manual_seed(0)
    pend = nodedsl.load(EXAMPLES / "pendulum.node").model("Pendulum")
    x, t = torch.randn(4, 2), torch.tensor(0.0)
    for a, b in zip(pend.taylor_coefficients(t, x, 4), D.taylor_coefficients(_reference(pend, None), t, x, 4)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    msd = nodedsl.load(EXAMPLES / "msd.node").model("MassSpringDamper")  # grad H through a net
    assert jet_function(msd._field, 3, 2, list(msd._nets())) is None
    with pytest.raises(NotImplementedError):
        msd.taylor_coefficients(t, x, 3)


# ------------------------------------------------------------------------------------------ random models
_LEAF = st.sampled_from(["a", "b", "c", "0.7", "t", "k"])


def _expr(depth: int):
    if depth == 0:
        return _LEAF
    sub = _expr(depth - 1)
    return st.one_of(
        _LEAF,
        st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda p: f"({p[0]} {p[1]} {p[2]})"),
        st.tuples(sub, sub).map(lambda p: f"({p[0]}) / (1.5 + ({p[1]})^2)"),
        st.tuples(st.sampled_from(["sin", "cos", "tanh", "sigmoid", "softplus", "exp"]), sub).map(
            lambda p: f"{p[0]}(0.5 * ({p[1]}))"
        ),
        st.tuples(sub, st.sampled_from(["2", "3", "4"])).map(lambda p: f"({p[0]})^{p[1]}"),
        st.tuples(sub).map(lambda p: f"sqrt(2 + ({p[0]})^2)"),
    )


@settings(max_examples=25, deadline=None)
@given(st.lists(_expr(3), min_size=3, max_size=3), st.integers(0, 2**16))
@example(exprs=["a", "a", "sqrt(2 + (((a + a) - (a + a)))^2)"], seed=0)  # a constant root: once compiled to sqrt(2.0)
@example(exprs=["a", "a", "(((0.7 - t))^3)^3"], seed=0)  # z^9 at z = 0: once the dividing recurrence, nan
def test_random_models(exprs, seed):
    src = (
        "model Rand {\n state a = 0.1\n state b = 0.2\n state c = 0.3\n param k = 0.8 learn\n"
        + "".join(f" der({s}) = {e}\n" for s, e in zip("abc", exprs))
        + "}\n"
    )
    model = nodedsl.loads(src).model("Rand")
    _check(model, 4, seed=seed, scale=0.4)


def test_staged_composite(tmp_path):
    """A coupled composite's staged field (coupling products, folded spring equations, views)."""
    text = 'import "mechanics" as mech\nmodel Chain : port_hamiltonian {\n'
    text += "".join(f"    sub m{i} = mech.MassSpringDamper(m = {1 + 0.2 * i:g}, q = 0.1)\n" for i in range(4))
    text += "".join(f"    sub s{j} = mech.NonlinearSpring(k = {1 + 0.3 * j:g})\n" for j in range(3))
    n, size = 4, 4 + 2 * 3
    C = [[0] * size for _ in range(size)]
    for j in range(3):
        for end, mass in ((0, j), (1, j + 1)):
            C[mass][n + 2 * j + end], C[n + 2 * j + end][mass] = -1, 1
    ports = [f"m{i}.force" for i in range(n)] + [f"s{j}.ends" for j in range(3)]
    text += f"    couple [{', '.join(ports)}] C = [{', '.join(str(r) for r in C)}]\n}}\n"
    (tmp_path / "chain.node").write_text(text)
    model = nodedsl.load(tmp_path / "chain.node").model("Chain")
    assert model.system.staged is not None and "matmul" in model._field.code
    _check(model, 4)


@pytest.mark.parametrize("power", [9, 12, 17])
def test_high_integer_powers_at_zero(power):
    """z^n for n > 8 by squarings (no division by z0): finite and exact where the base is 0."""
    src = (
        f"model P {{\n state a = 0\n state b = 0.3\n der(a) = b^{power} + 1\n der(b) = (a - 0.5 * t)^{power} - b\n}}\n"
    )
    model = nodedsl.loads(src).model("P")
    x = torch.tensor([[0.0, 0.0], [0.0, 0.4], [0.35, -0.2]])
    got, ref = _check(model, 4)
    assert all(torch.isfinite(g).all() for g in got)
    got = model.taylor_coefficients(torch.tensor(0.7), x, 3)
    ref = D.taylor_coefficients(_reference(model, model.default_inputs(x)), torch.tensor(0.7), x, 3)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-10)


def test_product_plans_reach_every_power():
    from nodedsl.compiler.jet import _product_plan

    for n in range(2, 65):
        exponents = [1]
        for a, b in _product_plan(n):
            exponents.append(exponents[a] + exponents[b])
        assert exponents[-1] == n
        assert len(_product_plan(n)) <= max(n - 1 if n <= 8 else 0, 2 * n.bit_length())
