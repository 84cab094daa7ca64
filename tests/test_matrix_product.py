"""A matrix product stays one matmul (issue 21): ``der(x) = A @ x`` with a matrix parameter compiles to a
graph whose size does not grow with ``A``, and computes what the expanded (per-entry) field computes."""

from __future__ import annotations

import functools

import pytest
import torch

import nodedsl
import nodedsl.compiler.affine as affine
from nodedsl.compiler import ops

pytestmark = pytest.mark.usefixtures("float64")


def _source(n: int, kind: str) -> str:
    if kind == "learned":
        return f"model M {{\n state x[{n}] = 1\n param A[{n}, {n}] = 0 learn\n der(x) = A @ x\n}}\n"
    if kind == "scaled let":
        return f"model M {{\n state x[{n}] = 1\n param A[{n}, {n}] = 0 learn\n let B = -2 * A\n der(x) = B @ x\n}}\n"
    if kind == "matrix times matrix":
        return f"model M {{\n state X[{n}, 3] = 1\n param A[{n}, {n}] = 0 learn\n der(X) = A @ X\n}}\n"
    if kind == "rectangular, between other states":  # Y [2 x 3] = -B [2 x n] @ X [n x 3], rows and columns offset
        return (
            f"model M {{\n state z = 1\n state X[{n}, 3] = 1\n state Y[2, 3] = 0\n param B[2, {n}] = 0 learn\n"
            " der(z) = -z\n der(X) = -X\n der(Y) = -B @ X\n}\n"
        )
    # a known matrix (a literal) times part of the state, plus another state's term
    rows = ", ".join("[" + ", ".join(f"{((3 * i + 7 * j) % 11 - 5) / 10}" for j in range(n)) + "]" for i in range(n))
    return (
        f"model M {{\n state x[{n}] = 1\n state y = 0.5\n param A = [{rows}]\n der(x) = A @ x + y\n der(y) = -y\n}}\n"
    )


@functools.cache
def _pair(src: str):
    """The model as compiled, and as the per-entry expansion (the affine split switched off)."""
    split = nodedsl.loads(src).model("M")
    with pytest.MonkeyPatch.context() as m:
        m.setattr(affine, "MIN_ENTRIES", 10**9)
        plain = nodedsl.loads(src).model("M")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p1, p2 in zip(split.parameters(), plain.parameters()):
            p1.copy_(torch.randn(p1.shape, generator=gen) * 0.3)
            p2.copy_(p1)
    return split, plain


def _nodes(model) -> int:
    return len(model._field.graph.nodes)


KINDS = [
    "learned",
    "scaled let",
    "known, part of the state",
    "matrix times matrix",
    "rectangular, between other states",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_matrix_product_is_one_matmul_of_constant_size(kind: str) -> None:
    big = _pair(_source(20 if kind == "learned" else 8, kind))[0]  # the brief's 20x20 A @ x; others 8 wide
    small = nodedsl.loads(_source(3, kind)).model("M")
    assert _nodes(big) == _nodes(small) <= 25  # O(1): one node per entry would be hundreds
    matmuls = [n for n in big._field.graph.nodes if n.target in (torch.matmul, ops.matrix_times)]
    # the product; in the rectangular case the numeric rest (-z, -X) is a second, constant matrix
    assert len(matmuls) == (2 if kind.startswith("rectangular") else 1)
    assert any(n.target is ops.matrix_times for n in matmuls) == ("matrix" in kind or kind.startswith("rect"))


@pytest.mark.parametrize("kind", KINDS)
def test_the_product_matches_the_expanded_field_values_and_gradients(kind: str) -> None:
    split, plain = _pair(_source(20 if kind == "learned" else 8, kind))
    assert _nodes(plain) > 2 * _nodes(split)  # the expansion this replaces
    x = torch.randn(6, len(split.state_names), generator=torch.Generator().manual_seed(1))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    t = torch.tensor(0.3)
    out1, out2 = split(t, x1), plain(t, x2)
    torch.testing.assert_close(out1, out2, rtol=1e-12, atol=1e-12)
    if kind == "learned":  # and what A @ x is, with A as parameter_values reports it
        A = torch.tensor(split.parameter_values()["A"])
        torch.testing.assert_close(out1, x @ A.T, rtol=1e-12, atol=1e-12)
    w = torch.randn(out1.shape, generator=torch.Generator().manual_seed(2))
    (out1 * w).sum().backward()
    (out2 * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    for p1, p2 in zip(split.parameters(), plain.parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["learned", "known, part of the state", "rectangular, between other states"])
def test_taylor_coefficients_and_jacobian_through_the_product(kind: str) -> None:
    split, plain = _pair(_source(20 if kind == "learned" else 8, kind))
    x = 0.3 * torch.randn(4, len(split.state_names), generator=torch.Generator().manual_seed(3))
    t = torch.tensor(0.2)
    for got, ref in zip(split.taylor_coefficients(t, x, 4), plain.taylor_coefficients(t, x, 4)):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(split.jacobian(t, x), plain.jacobian(t, x), rtol=1e-12, atol=1e-12)
