"""A matrix product stays one matmul (issue 21): ``der(x) = A @ x`` with a matrix parameter compiles to a
graph whose size does not grow with ``A``, and computes what the expanded (per-entry) field computes."""

from __future__ import annotations

import pytest
import torch

import nodedsl
import nodedsl.compiler.affine as affine

pytestmark = pytest.mark.usefixtures("float64")


def _source(n: int, kind: str) -> str:
    if kind == "learned":
        return f"model M {{\n state x[{n}] = 1\n param A[{n}, {n}] = 0 learn\n der(x) = A @ x\n}}\n"
    if kind == "scaled let":
        return f"model M {{\n state x[{n}] = 1\n param A[{n}, {n}] = 0 learn\n let B = -2 * A\n der(x) = B @ x\n}}\n"
    # a known matrix (a literal) times part of the state, plus another state's term
    rows = ", ".join("[" + ", ".join(f"{((3 * i + 7 * j) % 11 - 5) / 10}" for j in range(n)) + "]" for i in range(n))
    return (
        f"model M {{\n state x[{n}] = 1\n state y = 0.5\n param A = [{rows}]\n der(x) = A @ x + y\n der(y) = -y\n}}\n"
    )


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


@pytest.mark.parametrize("kind", ["learned", "scaled let", "known, part of the state"])
def test_matrix_vector_product_is_one_matmul_of_constant_size(kind: str) -> None:
    small, big = nodedsl.loads(_source(3, kind)).model("M"), nodedsl.loads(_source(20, kind)).model("M")
    assert _nodes(big) == _nodes(small) <= 20  # O(1): 20x20 entries would be hundreds of nodes
    matmuls = [n for n in big._field.graph.nodes if n.target is torch.matmul]
    assert len(matmuls) == 1


@pytest.mark.parametrize("kind", ["learned", "scaled let", "known, part of the state"])
def test_the_product_matches_the_expanded_field_values_and_gradients(kind: str) -> None:
    split, plain = _pair(_source(20, kind))
    assert _nodes(plain) > 5 * _nodes(split)  # the expansion this replaces
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


@pytest.mark.parametrize("kind", ["learned", "known, part of the state"])
def test_taylor_coefficients_and_jacobian_through_the_product(kind: str) -> None:
    split, plain = _pair(_source(20, kind))
    x = 0.3 * torch.randn(4, len(split.state_names), generator=torch.Generator().manual_seed(3))
    t = torch.tensor(0.2)
    for got, ref in zip(split.taylor_coefficients(t, x, 4), plain.taylor_coefficients(t, x, 4)):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(split.jacobian(t, x), plain.jacobian(t, x), rtol=1e-12, atol=1e-12)
