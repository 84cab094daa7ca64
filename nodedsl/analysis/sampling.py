"""Samples of a norm ball and the geometry behind the GoTube bound.

The statistical bound of :mod:`nodedsl.analysis.verify` needs three things from the initial ball:
uniform samples of its boundary (where the largest distance is attained: the flow map is a
homeomorphism, so the image of the ball's boundary is the boundary of the image), samples of its
interior, and the size of the smallest "cap" around any boundary point whose measure is ``eps``.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = boundary_samples(3, 5, 2.0, "2", g)
    >>> x.shape, bool(torch.allclose(x.norm(dim=1), torch.full((5,), 2.0, dtype=x.dtype)))
    (torch.Size([5, 3]), True)
    >>> round(coverage_eps(4603, 0.99), 6)
    0.001
    >>> round(cap_margin_factor(2, 1e-3, "2"), 6)   # the arc angle pi * eps on a circle
    0.003142
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["boundary_samples", "cap_margin_factor", "coverage_eps", "default_samples", "interior_samples"]

EPS_DEFAULT = 1e-3  # the measure of the boundary left unexplored, for the default sample count


def default_samples(confidence: float, eps: float = EPS_DEFAULT) -> int:
    """The number of boundary samples ``N`` with ``(1 - eps)^N <= 1 - confidence``.

    Example:
        >>> default_samples(0.99)
        4603
    """
    return math.ceil(math.log(1.0 - confidence) / math.log1p(-eps))


def coverage_eps(samples: int, confidence: float) -> float:
    """``eps`` with ``(1 - eps)^samples = 1 - confidence``: with that confidence, the boundary points
    farther than the sample maximum have measure at most ``eps`` (order statistics of the maximum).

    Example:
        >>> round(coverage_eps(100, 0.99), 4)
        0.045
    """
    return -math.expm1(math.log(1.0 - confidence) / samples)


def cap_margin_factor(n: int, eps: float, norm: str) -> float:
    """Path length (in units of the ball's radius) that reaches every point of a boundary region of
    measure ``eps`` around any boundary point; the margin is the tangential Lipschitz bound times it.

    2-norm: a spherical cap of normalized area ``eps`` has angular radius ``theta`` with
    ``eps = int_0^theta sin^(n-2) / int_0^pi sin^(n-2)`` (``= I_{sin^2 theta}((n-1)/2, 1/2) / 2``);
    the geodesic from its centre is ``r theta`` long.
    inf-norm: around any point of a cube's surface lies a square patch of side ``rho`` of one face
    (a corner of the patch at the point), measure ``(rho / 2r)^(n-1) / (2n)``; paths in it have
    inf-norm length at most ``rho``. ``ValueError`` if ``eps`` is too large for the argument.

    Example:
        >>> round(cap_margin_factor(3, 0.25, "2"), 4)   # a hemisphere's half: 60 degrees
        1.0472
    """
    if n <= 1:
        return 0.0  # the boundary is two points, both sampled
    if norm == "2":
        if not eps < 0.5:
            raise ValueError("too few samples for the requested confidence (eps must be < 1/2)")
        return _cap_angle(n, eps)
    if not eps < 1.0 / (2 * n):
        raise ValueError(f"too few samples for the requested confidence (eps must be < 1/{2 * n})")
    return 2.0 * (2 * n * eps) ** (1.0 / (n - 1))


def boundary_samples(n: int, count: int, radius: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """``[count, n]`` offsets uniform on the sphere (``"2"``) or the cube surface (``"inf"``) of ``radius``.

    Example:
        >>> g = torch.Generator().manual_seed(1)
        >>> x = boundary_samples(2, 4, 1.0, "inf", g)
        >>> x.abs().amax(dim=1).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    dtype = torch.get_default_dtype()
    if n == 1:
        base = torch.tensor([[-1.0], [1.0]], dtype=dtype)
        return radius * base.repeat((count + 1) // 2, 1)[:count]
    if norm == "2":
        z = torch.randn(count, n, generator=gen, dtype=dtype)
        return radius * z / z.norm(dim=1, keepdim=True)
    # faces of a cube all have the same area: pick one uniformly, then a uniform point on it
    x = 2.0 * torch.rand(count, n, generator=gen, dtype=dtype) - 1.0
    face = torch.randint(0, n, (count,), generator=gen)
    sign = torch.randint(0, 2, (count,), generator=gen).to(dtype) * 2.0 - 1.0
    x[torch.arange(count), face] = sign
    return radius * x


def interior_samples(n: int, count: int, radius: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """``[count, n]`` offsets uniform in the ball of ``radius``.

    Example:
        >>> g = torch.Generator().manual_seed(2)
        >>> bool((interior_samples(3, 100, 0.5, "2", g).norm(dim=1) <= 0.5).all())
        True
    """
    dtype = torch.get_default_dtype()
    if norm == "inf":
        return radius * (2.0 * torch.rand(count, n, generator=gen, dtype=dtype) - 1.0)
    z = torch.randn(count, n, generator=gen, dtype=dtype)
    u = torch.rand(count, 1, generator=gen, dtype=dtype) ** (1.0 / n)
    return radius * u * z / z.norm(dim=1, keepdim=True)


def _cap_angle(n: int, eps: float) -> float:
    """The angle ``theta`` whose cap on the sphere in ``R^n`` has normalized area ``eps``.

    The area ``int_0^theta sin^(n-2)`` by the trapezoid rule on a fine grid (in logs, so high dimensions
    do not underflow), inverted by interpolation and rounded up to the next grid point: never smaller
    than the exact angle by more than the quadrature error (below 1e-8 relative)."""
    phi = np.linspace(0.0, math.pi, 400_001)
    dens = np.ones_like(phi)
    if n > 2:
        with np.errstate(divide="ignore"):
            logs = (n - 2) * np.log(np.sin(phi))
        dens = np.exp(logs - logs[1:-1].max())
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]))])
    cdf /= cdf[-1]
    i = int(np.searchsorted(cdf, eps))
    return float(phi[min(i, len(phi) - 1)])
