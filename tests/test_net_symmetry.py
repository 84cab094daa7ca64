"""Nets declared odd/even in some arguments (issue 20): exact symmetry whatever the weights, in the field
and its Jacobian; the options' errors are located (the error corpus has the cases)."""

from __future__ import annotations

import pytest
import torch

import nodedsl
from nodedsl.core.diagnostics import NodeDslError

SRC = """
model M {
    state x = 0.3
    state y = -0.2
    state z = 0.5
    net f(p[2], q) -> 2 { hidden = [8], OPTIONS }
    der(x) = f([x, y], z)[0]
    der(y) = f([x, y], z)[1]
    der(z) = 0
}
"""


def _field(options: str):
    model = nodedsl.loads(SRC.replace("OPTIONS", options)).model("M")
    torch.manual_seed(0)
    with torch.no_grad():  # weights far from any symmetric initialization
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return lambda x: model.field(torch.zeros(x.shape[0]), x, x.new_zeros(x.shape[0], 0))[:, :2]


@pytest.mark.parametrize(
    ("options", "flip", "sign"),
    [
        ("odd = [p]", [-1.0, -1.0, 1.0], -1.0),
        ("even = [q]", [1.0, 1.0, -1.0], 1.0),
        ("odd = [p], even = [q]", [-1.0, -1.0, 1.0], -1.0),
        ("odd = [p], even = [q]", [1.0, 1.0, -1.0], 1.0),
        ("odd = [p, q]", [-1.0, -1.0, -1.0], -1.0),
    ],
)
def test_declared_symmetry_is_exact(options, flip, sign):
    f = _field(options)
    x = torch.randn(64, 3)
    s = torch.tensor(flip)
    assert torch.allclose(f(x * s), sign * f(x), atol=1e-6)
    assert f(x).abs().max() > 0.05  # not trivially zero
    jac = torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, 3)).reshape(2), x[0])
    jac_flipped = torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, 3)).reshape(2), x[0] * s)
    assert torch.allclose(jac_flipped * s, sign * jac, atol=1e-5)  # the chain rule through the reflection


def test_plain_net_is_not_symmetric():
    f = _field("activation = tanh")
    x = torch.randn(64, 3)
    assert not torch.allclose(f(x * torch.tensor([-1.0, -1.0, 1.0])), -f(x), atol=1e-3)


def test_bad_symmetry_declarations_are_located():
    with pytest.raises(NodeDslError) as exc:
        nodedsl.loads(SRC.replace("OPTIONS", "odd = [p, w]"))
    d = exc.value.diagnostics[0]
    assert d.code == "net-symmetry" and "'w'" in d.message and d.span.line == 6
