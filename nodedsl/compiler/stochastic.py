"""The diffusion of an SDE model as a second compiled function of ``(t, x)`` next to the drift.

A lowered system with noise carries ``system.noise`` (:class:`nodedsl.symbolic.noise.NoiseSym`): one
SymPy expression per state (diagonal noise, 0 for deterministic states) or the ``n x m`` matrix
row-major (general noise). It compiles like the field (params, nets and inputs allowed) and returns
``[batch, n]`` or ``[batch, n, m]``.

Example:
    >>> import nodedsl, torch
    >>> prog = nodedsl.loads("model M { state x = 1\\n param s = 0.3\\n der(x) = -x\\n noise(x) = s * x }")
    >>> model = prog.model("M")
    >>> model.noise
    Noise(kind='diagonal', channels=1, additive=False, sde_type='ito')
    >>> [round(v, 6) for v in model.diffusion(0.0, torch.full((2, 1), 2.0))[:, 0].tolist()]
    [0.6, 0.6]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..core.noise import Noise


def noise_of(system: Any) -> Noise | None:
    """The :class:`Noise` form of a lowered system (``None``: an ODE)."""
    sym = getattr(system, "noise", None)
    if sym is None:
        return None
    return Noise(sym.kind, sym.channels, sym.additive, getattr(sym, "sde_type", "ito"))


def diffusion(model: Any, t: Any, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """``g(t, x, u)``: ``[batch, n]`` (diagonal) or ``[batch, n, m]`` (general) of a compiled model."""
    sym = getattr(model.system, "noise", None)
    if sym is None:
        raise TypeError(f"model '{model.name}' has no noise (it is an ODE)")
    fn = model._function("diffusion", sym.exprs)
    u = model.default_inputs(x) if u is None else u
    out = model._call(fn, t, x, u)
    if out.shape[0] != x.shape[0]:  # a constant diffusion: one row for the batch
        out = out.expand(x.shape[0], -1)
    return out if sym.kind == "diagonal" else out.reshape(x.shape[0], len(model.state_names), sym.channels)


class DrivenDiffusion(nn.Module):
    """``g(t, x)`` of a model with its inputs given by ``signal(t, batch)`` (None: the defaults)."""

    def __init__(self, model: Any, signal: Callable | None = None):
        super().__init__()
        self.model = model
        self.signal = signal

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u = self.model.default_inputs(x) if self.signal is None else self.signal(t, x.shape[0])
        return self.model.diffusion(t, x, u)


def ito_correction(model: Any, t: Any, x: torch.Tensor, u: torch.Tensor | None = None) -> torch.Tensor:
    """``1/2 tr(g^T Hess(H) g)`` ``[batch]``: the Ito term of ``dH`` of a port-Hamiltonian SDE model
    (``dH = (-grad H^T R grad H + y^T u + this) dt + grad H^T g dW``), Hessian by autograd."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.hamiltonian(x, t, u).sum(), x, create_graph=True)
        rows = [torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0] for i in range(x.shape[1])]
    hess = torch.stack(rows, dim=1)  # [batch, n, n]
    extra = torch.zeros(x.shape[0], dtype=x.dtype)
    noise = model.noise
    if noise.sde_type == "stratonovich" and not noise.additive and noise.kind == "diagonal":
        # the Ito form of a Stratonovich model drifts by 1/2 g dg/dx more: its power enters dH too
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            gd = model.diffusion(t, xg, u)
            dg = [
                torch.autograd.grad(gd[:, i].sum(), xg, retain_graph=True, allow_unused=True)[0]
                for i in range(x.shape[1])
            ]
        slope = torch.stack([torch.zeros_like(gd[:, i]) if d is None else d[:, i] for i, d in enumerate(dg)], -1)
        extra = (grad.detach() * 0.5 * gd.detach() * slope).sum(-1)
    with torch.no_grad():
        g = model.diffusion(t, x.detach(), u)
        g = torch.diag_embed(g) if g.dim() == 2 else g
        return 0.5 * torch.einsum("bik,bij,bjk->b", g, hess, g).detach() + extra
