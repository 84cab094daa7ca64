"""The torch side of ``net`` declarations: an MLP built from a checked :class:`NetSpec`.

Example:
    >>> from nodedsl.frontend.netspec import NetSpec
    >>> build_mlp(NetSpec("f", in_size=3, out=1, hidden=(8,), output="softplus"))
    Sequential(
      (0): Linear(in_features=3, out_features=8, bias=True)
      (1): Tanh()
      (2): Linear(in_features=8, out_features=1, bias=True)
      (3): Softplus(beta=1.0, threshold=20.0)
    )
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..frontend.netspec import ACTIVATIONS, NetSpec


def activation(name: str) -> nn.Module:
    """The ``torch.nn`` module of an activation name (``tanh``, ``softplus``, ``identity``...)."""
    cls: type[nn.Module] = getattr(nn, ACTIVATIONS[name])
    return cls()


def fixed_scale(scales: tuple[float, ...], dtype: torch.dtype | None = None) -> nn.Linear:
    """A diagonal ``Linear`` layer multiplying component ``i`` by ``scales[i]``, not trained (a ``Linear``,
    so Taylor-mode AD and checkpoints treat it like any layer).

    Example:
        >>> fixed_scale((2.0, 0.5))(torch.tensor([[1.0, 4.0]]))
        tensor([[2., 2.]])
    """
    layer = nn.Linear(len(scales), len(scales), dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.diag(torch.tensor(scales, dtype=layer.weight.dtype)))
        layer.bias.zero_()
    layer.weight.requires_grad_(False)
    layer.bias.requires_grad_(False)
    return layer


def build_mlp(spec: NetSpec, dtype: torch.dtype | None = None) -> nn.Sequential:
    """An ``nn.Sequential`` MLP: Linear/activation layers, then the output activation (``dtype``: torch's
    default when None). ``input_scale`` divides the inputs and ``output_scale`` multiplies the outputs
    by fixed factors (layers that are not trained), so the trained layers see numbers of order one."""
    layers: list[nn.Module] = []
    if spec.input_scale or spec.scale_auto:  # scale = auto: identity until training sets it from the data
        layers.append(fixed_scale(tuple(1.0 / s for s in spec.input_scale or (1.0,) * spec.in_size), dtype))
    width = spec.in_size
    for h in spec.hidden:
        layers += [nn.Linear(width, h, dtype=dtype), activation(spec.activation)]
        width = h
    last = nn.Linear(width, spec.out, dtype=dtype)
    if spec.init == "zeros":
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    if spec.output not in ("identity", "none", "linear"):
        layers.append(activation(spec.output))
    if spec.output_scale or spec.scale_auto:
        layers.append(fixed_scale(spec.output_scale or (1.0,) * spec.out, dtype))
    return nn.Sequential(*layers)


def activation_derivative(layer: nn.Module, z: torch.Tensor) -> torch.Tensor | None:
    """``act'(z)`` of an activation layer at its input ``z`` as explicit operations, or None when there is
    no rule (then :func:`nodedsl.compiler.ops.mlp_grad` falls back to autograd). The same activations as
    the Taylor rules of :mod:`nodedsl.compiler.jetrules`.

    Example:
        >>> z = torch.tensor([0.0, 1.0])
        >>> torch.allclose(activation_derivative(nn.Tanh(), z), 1 - torch.tanh(z) ** 2)
        True
    """
    if isinstance(layer, nn.Identity):
        return torch.ones_like(z)
    if isinstance(layer, nn.Tanh):
        y = torch.tanh(z)
        return 1 - y * y
    if isinstance(layer, nn.Sigmoid):
        s = torch.sigmoid(z)
        return s * (1 - s)
    if isinstance(layer, nn.Softplus):  # torch's softplus is linear where beta z > threshold
        bz = z * layer.beta
        return torch.where(bz > layer.threshold, torch.ones_like(z), torch.sigmoid(bz))
    if isinstance(layer, nn.ReLU):
        return (z > 0).to(z.dtype)
    if isinstance(layer, nn.SiLU):
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    if isinstance(layer, nn.ELU):
        return torch.where(z > 0, torch.ones_like(z), layer.alpha * torch.exp(z))
    if isinstance(layer, nn.GELU) and layer.approximate == "none":  # Phi(z) + z phi(z)
        cdf = 0.5 * (1 + torch.erf(z * (1 / math.sqrt(2))))
        return cdf + z * torch.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))
    return None


_RULED = (nn.Linear, nn.Identity, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.ReLU, nn.SiLU, nn.ELU)


def mlp_supported(net: nn.Module) -> bool:
    """Whether every layer of ``net`` is a ``Linear`` or an activation with a derivative rule.

    Example:
        >>> mlp_supported(nn.Sequential(nn.Linear(1, 2), nn.GELU(approximate="tanh"), nn.Linear(2, 1)))
        False
    """
    return isinstance(net, nn.Sequential) and all(
        isinstance(layer, _RULED) or (isinstance(layer, nn.GELU) and layer.approximate == "none") for layer in net
    )


def mlp_gradient(net: nn.Sequential, inp: torch.Tensor, k: int) -> torch.Tensor:
    """``d net(inp)[..., k] / d inp`` by the chain rule written out: the forward pass keeps each layer's
    input, the backward pass multiplies by ``W`` for a ``Linear`` and by ``act'(z)`` for an activation.
    Plain tensor operations only (no ``torch.autograd.grad``), so it traces, exports and compiles; reverse
    mode differentiates it for training. ``net`` must pass :func:`mlp_supported`.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))
        >>> x = torch.randn(4, 2, requires_grad=True)
        >>> (g,) = torch.autograd.grad(net(x).sum(), x)
        >>> torch.allclose(mlp_gradient(net, x, 0), g)
        True
    """
    layers = list(net)
    inputs = []
    h = inp
    for layer in layers:
        inputs.append(h)
        h = layer(h)
    g = None  # the cotangent [..., width]; None while it is still the unit vector e_k times `scale`
    scale = None
    for layer, z in zip(reversed(layers), reversed(inputs)):
        if isinstance(layer, nn.Linear):
            if g is None:
                row = layer.weight[k]
                g = row if scale is None else scale * row
            else:
                g = g @ layer.weight
        else:
            d = activation_derivative(layer, z)
            assert d is not None, f"no derivative rule for {type(layer).__name__}"
            if g is None:
                dk = d[..., k : k + 1]
                scale = dk if scale is None else scale * dk
            else:
                g = g * d
    assert g is not None, "an MLP ends in a Linear layer"
    return g.expand(inp.shape)
