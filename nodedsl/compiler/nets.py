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


def build_mlp(spec: NetSpec, dtype: torch.dtype | None = None) -> nn.Sequential:
    """An ``nn.Sequential`` MLP: Linear/activation layers, then the output activation (``dtype``: torch's
    default when None)."""
    layers: list[nn.Module] = []
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
    return nn.Sequential(*layers)
