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
