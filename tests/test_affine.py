"""Fields whose linear part is dense compile to one ``x @ M^T`` (``nodedsl.compiler.affine``).

Each test compares the matmul form with the elementwise form the compiler emits when the split is
off (``MIN_ENTRIES`` raised), values and gradients, and the Taylor coefficients with nested jvp.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

import nodedsl
import nodedsl.compiler.affine as affine
from nodedsl.solvers import derivatives as D

pytestmark = pytest.mark.usefixtures("float64")

STIFF = """
model Stiff {
    state a = 1
    state b = 1
    param s = 1000
    param b11 = -0.5 learn
    param b12 = 0.2 learn
    param b21 = 0.3 learn
    param b22 = -0.7 learn
    der(a) = s * (b11 * a + b12 * b)
    der(b) = s * (b21 * a + b22 * b)
}
"""

MIXED = """
model Mixed {
    state a = 0.2
    state b = -0.1
    state c = 0.4
    input f = 0.3
    param k = 1.5
    param g = 0.7 learn
    der(a) = b - k * a + 2 * c + f
    der(b) = -g * a + k * g * c - 0.5 * b + t
    der(c) = sin(a) * b - c
}
"""


def _pair(src: str, name: str):
    split = nodedsl.loads(src).model(name)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(affine, "MIN_ENTRIES", 10**9)
        plain = nodedsl.loads(src).model(name)
    return split, plain


def _compare(split, plain, x, t=torch.tensor(0.3)):
    """Same values and the same gradients (parameters and state) in both forms."""
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    out1, out2 = split(t, x1), plain(t, x2)
    torch.testing.assert_close(out1, out2, rtol=1e-12, atol=1e-12)
    assert out1.requires_grad == out2.requires_grad
    if not out1.requires_grad:  # a field of constants
        return
    (out1 * w).sum().backward()
    (out2 * w).sum().backward()
    grads = [(x1.grad, x2.grad)] + [(p1.grad, p2.grad) for p1, p2 in zip(split.parameters(), plain.parameters())]
    for g1, g2 in grads:
        zero = torch.zeros(())
        torch.testing.assert_close(zero if g1 is None else g1, zero if g2 is None else g2, rtol=1e-12, atol=1e-12)


def test_linear_system_is_one_matmul():
    split, plain = _pair(STIFF, "Stiff")
    code, plain_code = split._field.code, plain._field.code
    assert code.count("torch.matmul") == 1 and "matmul" not in plain_code
    x = torch.randn(5, 2)
    B = torch.tensor([[-0.5, 0.2], [0.3, -0.7]])
    torch.testing.assert_close(split(torch.tensor(0.0), x), 1000 * x @ B.T, rtol=1e-13, atol=1e-12)
    _compare(split, plain, x)
    params = tuple(p for p in split.parameters())
    torch.autograd.gradcheck(lambda xx, *ps: split(torch.tensor(0.0), xx), (x.requires_grad_(), *params))


def test_mixed_rows_numbers_parameters_inputs_and_a_nonlinear_row():
    split, plain = _pair(MIXED, "Mixed")
    assert "put" in split._field.code  # numeric entries in a constant base, parameter entries written in
    _compare(split, plain, torch.randn(7, 3))


def test_taylor_coefficients_through_the_matmul():
    for src, name in ((STIFF, "Stiff"), (MIXED, "Mixed")):
        split, plain = _pair(src, name)
        x, t = torch.randn(4, len(split.state_names)) * 0.3, torch.tensor(0.2)
        u = split.default_inputs(x)
        got = split.taylor_coefficients(t, x, 4)
        ref = D.taylor_coefficients(lambda tt, xx: plain.field(tt, xx, u), t, x, 4)
        for g, r in zip(got, ref):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-9)


def test_a_sparse_linear_part_stays_elementwise():
    """der(q) = p / m, der(p) = -k q - c p / m: three entries of four, below the threshold."""
    src = (
        "model Msd {\n state q = 1\n state p = 0\n param m = 2\n param k = 1\n param c = 0.1\n"
        " der(q) = p / m\n der(p) = -k * q - c * p / m\n}\n"
    )
    assert "matmul" not in nodedsl.loads(src).model("Msd")._field.code


def test_dtype_and_device_moves_keep_the_constants_in_step():
    model = nodedsl.loads(MIXED).model("Mixed")
    x = torch.randn(3, 3)
    ref = model(torch.tensor(0.1), x)
    out = model.float()(torch.tensor(0.1), x.float())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


_COEF = st.sampled_from(["0", "0", "1", "-2.5", "k", "g", "k * g", "-g / k", "2 * g"])
_REST = st.sampled_from(["", " + f", " + t", " + sin(a)", " + g * f"])


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.data())
def test_random_linear_fields(n, data):
    states = "abcd"[:n]
    rows = []
    for _i in range(n):
        coefs = [data.draw(_COEF) for _ in range(n)]
        terms = [f"({c}) * {s}" for c, s in zip(coefs, states) if c != "0"] or ["0"]
        rows.append(" + ".join(terms) + data.draw(_REST))
    src = (
        "model Rnd {\n"
        + "".join(f" state {s} = 0.1\n" for s in states)
        + " input f = 0.2\n param k = 1.3\n param g = 0.6 learn\n"
        + "".join(f" der({s}) = {r}\n" for s, r in zip(states, rows))
        + "}\n"
    )
    split, plain = _pair(src, "Rnd")
    event("split" if "matmul" in split._field.code else "elementwise")
    x = torch.randn(4, n, generator=torch.Generator().manual_seed(n))
    _compare(split, plain, x)
    got = split.taylor_coefficients(torch.tensor(0.2), x, 3)
    u = split.default_inputs(x)
    ref = D.taylor_coefficients(lambda tt, xx: plain.field(tt, xx, u), torch.tensor(0.2), x, 3)
    for g, r in zip(got, ref):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-9)
