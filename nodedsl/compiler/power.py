"""The power supplied to a port-Hamiltonian model's energy: ``y^T u`` of its free ports of the states plus
what coupled sources deliver (stateless ports ``y = V``; ``PHParts.supplied``). A free stateless port
(a resistor left uncoupled) exchanges no energy with ``H`` and is left out.

Example:
    >>> import torch, nodedsl
    >>> prog = nodedsl.loads("model M : port_hamiltonian { state q = 1\\n hamiltonian = q^2 / 2\\n"
    ...     " J = [[0]]\\n port f { G = [[1]] } }")
    >>> model = prog.model("M", dtype=torch.float64)
    >>> supplied_power(model, torch.tensor([[2.0]], dtype=torch.float64), 0.0,
    ...     torch.tensor([[3.0]], dtype=torch.float64)).tolist()
    [6.0]
"""

from __future__ import annotations

import torch

__all__ = ["supplied_power"]


def supplied_power(model, x: torch.Tensor, t=0.0, u: torch.Tensor | None = None) -> torch.Tensor:
    """``[batch]`` supplied power of the compiled port-Hamiltonian ``model`` at states ``x``, inputs ``u``
    (None: the defaults)."""
    ph = model.system.ph
    if ph is None:
        raise TypeError(f"model '{model.name}' is not port-Hamiltonian")
    expr = sum((y * v for p in ph.ports if not p.static for y, v in zip(p.output, p.inputs)), ph.supplied)
    fn = model._function("supplied power", [expr])
    return model._call(fn, t, x, model.default_inputs(x) if u is None else u)[..., 0]
