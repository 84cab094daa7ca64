"""Jacobians and Taylor coefficients of a vector field, exact or by AD.

A field may provide ``jacobian(t, x)`` and ``taylor_coefficients(t, x, order)``
itself (e.g. from symbolic differentiation, ``CompiledModel``); when they are
absent or raise ``NotImplementedError``, we differentiate it:
``vmap(jacrev)`` for Jacobians, nested forward mode (``torch.func.jvp``) for
the derivatives along the flow ``x' = f, x'' = f_t + J f, ...``.

Example:
    >>> import torch
    >>> A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    >>> f = lambda t, x: x @ A.T
    >>> x = torch.tensor([[1.0, 0.0]])
    >>> [c.tolist() for c in taylor_coefficients(f, torch.tensor(0.0), x, 3)]
    [[[0.0, -1.0]], [[-1.0, 0.0]], [[0.0, 1.0]]]
    >>> jacobian(f, torch.tensor(0.0), x).shape
    torch.Size([1, 2, 2])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jacrev, jvp, vmap

from .base import Field


def jacobian(field: Field, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[batch, n, n]`` Jacobian ``d field(t, x)_b / d x_b`` (rows are outputs).

    Example:
        >>> jacobian(lambda t, x: x ** 2, torch.tensor(0.0), torch.tensor([[1.0, 3.0]])).tolist()
        [[[2.0, 0.0], [0.0, 6.0]]]
    """
    exact = getattr(field, "jacobian", None)
    if exact is not None:
        try:
            return exact(t, x)
        except NotImplementedError:
            pass  # e.g. a compiled model whose Jacobian cannot be formed symbolically: use AD
    try:
        # Per-sample function: the field sees a [1, n] batch, as its contract says.
        return vmap(jacrev(lambda xi: field(t, xi.unsqueeze(0)).squeeze(0)))(x)
    except (RuntimeError, NotImplementedError):
        # Some ops have no vmap rule (or the field calls .item()); fall back to
        # n reverse passes, valid because samples in a batch do not interact.
        return _jacobian_autograd(field, t, x)


def _jacobian_autograd(field: Field, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        out = field(t, xg)
        rows = [torch.autograd.grad(out[:, i].sum(), xg, retain_graph=True)[0] for i in range(out.shape[1])]
    return torch.stack(rows, dim=1)


def taylor_coefficients(field: Field, t: torch.Tensor, x: torch.Tensor, order: int) -> list[torch.Tensor]:
    """``[x', x'', ..., x^(order)]`` at ``(t, x)`` along the flow of ``field``.

    Uses ``field.taylor_coefficients`` when present (unless it raises
    ``NotImplementedError``). Otherwise level ``k+1`` is
    the directional derivative of level ``k`` in direction ``(dt, dx) = (1, f)``
    (time is treated as a state with derivative 1, so non-autonomous fields are
    handled). All levels come out of one nested ``jvp`` call, so order ``p``
    costs ``p`` traced field evaluations; the results stay differentiable with
    respect to the field's parameters for training.

    Example:
        >>> c = taylor_coefficients(lambda t, x: -x, torch.tensor(0.0), torch.ones(1, 1), 3)
        >>> [float(v) for v in c]
        [-1.0, 1.0, -1.0]
    """
    exact = getattr(field, "taylor_coefficients", None)
    if exact is not None:
        try:
            return list(exact(t, x, order))
        except NotImplementedError:
            pass  # e.g. a model with nets whose second derivatives would be needed: use AD

    def fn(tt: torch.Tensor, xx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (field(tt, xx),)

    for _ in range(order - 1):
        fn = _along_flow(field, fn)
    try:
        return list(fn(t, x))
    except RuntimeError:
        if order == 1:
            raise
        # The field cannot run under torch.func (e.g. a compiled model that takes a net's
        # derivative with torch.autograd.grad): reverse mode with double backward instead.
        return _taylor_autograd(field, t, x, order)


def _taylor_autograd(field: Field, t: torch.Tensor, x: torch.Tensor, order: int) -> list[torch.Tensor]:
    """Taylor coefficients by reverse mode only: each level's directional derivative along
    ``(1, f)`` as a JVP built from two VJPs (the "double-backward trick"). Slower than nested
    ``jvp`` (level k re-evaluates levels below it), but works for fields that call autograd."""
    grad_on = torch.is_grad_enabled()

    def level(k: int, tt: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        if k == 1:
            return field(tt, xx)
        eps = torch.zeros((), dtype=xx.dtype, device=xx.device, requires_grad=True)
        inner = level(k - 1, tt + eps, xx + eps * field(tt, xx))
        if not inner.requires_grad:
            return torch.zeros_like(inner)
        w = torch.zeros_like(inner, requires_grad=True)
        (g,) = torch.autograd.grad(inner, eps, grad_outputs=w, create_graph=True, allow_unused=True)
        if g is None or not g.requires_grad:
            return torch.zeros_like(inner)
        (d,) = torch.autograd.grad(g, w, create_graph=True, allow_unused=True)
        return torch.zeros_like(inner) if d is None else d

    with torch.enable_grad():
        out = [level(k, t, x) for k in range(1, order + 1)]
    return out if grad_on else [c.detach() for c in out]


def _along_flow(
    field: Field, inner: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]
) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]:
    def lifted(t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # The tangent of (d1..dk) along (1, f) is (d2..dk+1); keep d1 in front.
        outs, tangents = jvp(inner, (t, x), (torch.ones_like(t), field(t, x)))
        return (outs[0],) + tuple(tangents)

    return lifted
