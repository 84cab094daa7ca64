"""The GoTube construction (Gruenbacher et al., AAAI 2022): a statistical reachtube around a ball.

At each output time ``t_k`` the tube radius bounds ``max_{x in ball} ||chi(t_k, x) - chi(t_k, c)||``:

1. ``N`` points uniform on the ball's boundary (where the maximum is attained: the flow map is a
   homeomorphism) and ``N/4`` in its interior are integrated with the centre, in one batch, together
   with their sensitivities ``S = d chi / d x`` (the variational equation ``S' = J S``, ``J`` the
   compiled symbolic Jacobian, or autograd where there is none);
2. the distance ``d_k(x)`` of each sample from the centre, and its gradient ``S^T grad ||.||``;
3. ``M_k``, the largest sampled distance, and ``L_k``, the largest *tangential* gradient norm on the
   boundary (the stochastic Lipschitz constant of ``d_k`` along the boundary, as in GoTube);
4. the radius ``R_k = M_k + L_k r theta_eps``. Order statistics of the maximum: with probability
   ``1 - (1 - eps)^N`` (the confidence), the boundary points where ``d_k > M_k`` have measure at most
   ``eps``; if the true maximum exceeded ``R_k``, the whole cap of measure ``eps`` around the maximiser
   (every point within path length ``r theta_eps``, see :func:`cap_margin_factor`) would lie above
   ``M_k``. So ``R_k`` bounds every trajectory from the ball at ``t_k`` with that confidence, provided
   ``L_k`` bounds the tangential gradient near the maximiser (the one statistical assumption).

Distances do not accumulate between output times: each ``R_k`` comes from the samples at ``t_k`` alone.

Example:
    >>> import torch
    >>> from nodedsl.solvers import make_solver
    >>> A = torch.tensor([[-1.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    >>> field = lambda t, x: x @ A.T
    >>> out = gotube(field, torch.tensor([1.0, 1.0], dtype=torch.float64), torch.linspace(0, 1, 3,
    ...              dtype=torch.float64), 0.1, "2", 0.99, 500, make_solver("rk4", step=0.05),
    ...              torch.Generator().manual_seed(0))
    >>> [round(v, 3) for v in out.radii.tolist()]   # exact: 0.1 e^{-t}
    [0.1, 0.061, 0.037]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from ..solvers import jacobian, solve
from .prop import Property
from .sampling import boundary_samples, cap_margin_factor, coverage_eps, interior_samples

__all__ = ["GoTubeOutput", "gotube"]


@dataclass
class GoTubeOutput:
    """Per output time: ``radii``, ``center``, ``sample_max`` (M_k), ``lipschitz`` (L_k) and the samples'
    property margins (``margins [K, batch]`` with the initial states ``x0s``; None without a property)."""

    radii: torch.Tensor
    center: torch.Tensor
    sample_max: torch.Tensor
    lipschitz: torch.Tensor
    x0s: torch.Tensor
    margins: torch.Tensor | None
    stats: dict = field(default_factory=dict)


class _Variational(torch.nn.Module):
    """``[x, vec S] -> [f(t, x), vec(J(t, x) S)]``: the flow and its sensitivity to the initial state."""

    def __init__(self, field, n: int):
        super().__init__()
        self.f, self.n = field, n

    def forward(self, t, z):
        n = self.n
        x, s = z[:, :n], z[:, n:].reshape(-1, n, n)
        jac = jacobian(self.f, t, x)
        return torch.cat([self.f(t, x), torch.bmm(jac, s).reshape(-1, n * n)], dim=1)


def _distance(diff: torch.Tensor, norm: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``||diff||`` per row and its gradient with respect to ``diff`` (a subgradient for inf)."""
    if norm == "2":
        d = diff.norm(dim=1)
        return d, diff / d.clamp_min(torch.finfo(diff.dtype).tiny)[:, None]
    d, arg = diff.abs().max(dim=1)
    grad = torch.zeros_like(diff)
    grad[torch.arange(len(diff)), arg] = torch.sign(diff[torch.arange(len(diff)), arg])
    return d, grad


def _tangential_bound(grad: torch.Tensor, offsets: torch.Tensor, norm: str) -> torch.Tensor:
    """The largest gradient norm along the boundary (dual norm, normal component removed)."""
    if norm == "2":
        nu = offsets / offsets.norm(dim=1, keepdim=True)
        tan = grad - (grad * nu).sum(dim=1, keepdim=True) * nu
        return tan.norm(dim=1).max()
    face = offsets.abs().argmax(dim=1)
    tan = grad.clone()
    tan[torch.arange(len(grad)), face] = 0.0
    return tan.abs().sum(dim=1).max()


def gotube(field, x0, t, radius: float, norm: str, confidence: float, samples: int, solver, gen, prop=None):
    """The statistical tube of ``field`` around ``x0`` (ball of ``radius`` in ``norm``) at times ``t``.

    ``prop``: a :class:`~nodedsl.analysis.prop.Property` evaluated on every sample at every time."""
    start = time.perf_counter()
    n = x0.shape[0]
    n_in = max(samples // 4, 1)
    off_b = boundary_samples(n, samples, radius, norm, gen).to(x0.device)
    off_i = interior_samples(n, n_in, radius, norm, gen).to(x0.device)
    x0s = torch.cat([x0[None], x0 + off_b, x0 + off_i])
    eps = coverage_eps(samples, confidence) if n > 1 else 0.0
    factor = cap_margin_factor(n, eps, norm)
    eye = torch.eye(n, dtype=x0.dtype, device=x0.device).reshape(1, n * n).expand(len(x0s), -1)
    z = torch.cat([x0s, eye], dim=1)
    aug = _Variational(field, n)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("radii", "center", "sample_max", "lipschitz", "margins")}
    steps = nfe = 0
    for k in range(len(t)):
        if k > 0:
            with torch.no_grad():
                res = solve(aug, z, t[k - 1 : k + 1], solver=solver)
            z, steps, nfe = res.ys[-1], steps + res.stats.steps, nfe + res.stats.nfe
        if not bool(torch.isfinite(z).all()):
            raise FloatingPointError(f"a sampled trajectory became non-finite before t = {float(t[k]):g}")
        y, sens = z[:, :n], z[1:, n:].reshape(-1, n, n)
        dist, gy = _distance(y[1:] - y[0], norm)
        grad = torch.einsum("bij,bi->bj", sens[:samples], gy[:samples])  # d dist / d x0 = S^T d dist / d y
        lip = _tangential_bound(grad, off_b, norm) if n > 1 else dist.new_zeros(())
        m = dist.max()
        out["radii"].append(m + lip * radius * factor)
        out["center"].append(y[0])
        out["sample_max"].append(m)
        out["lipschitz"].append(lip)
        if prop is not None:
            out["margins"].append(prop.margin(y))
    stats = {
        "boundary_samples": samples,
        "interior_samples": n_in,
        "eps": eps,
        "cap_factor": factor,
        "steps": steps,
        "nfe": nfe,
        "seconds": time.perf_counter() - start,
    }
    margins = torch.stack(out["margins"]) if prop is not None else None
    stacked = {k: torch.stack(out[k]) for k in ("radii", "center", "sample_max", "lipschitz")}
    return GoTubeOutput(**stacked, x0s=x0s, margins=margins, stats=stats)


def property_bound(prop: Property, center, radii, norm: str, confidence: float, gen, points: int = 2000):
    """``[K]`` upper bounds of ``prop.margin`` over each tube ball ``B(center_k, radii_k)``.

    The smaller of two bounds, both from ``G``, the largest sampled norm of ``grad margin`` in the ball
    (a statistical Lipschitz constant): the mean value theorem, ``margin(c) + G R``; and the sample
    maximum of ``points`` uniform points plus ``G rho``, where a ball of radius ``rho = 2 R eps^(1/n)``
    around the maximiser holds a sub-ball of volume fraction ``eps`` (order statistics as above)."""
    n = center.shape[1]
    unit = interior_samples(n, points, 1.0, norm, gen).to(center.device)
    eps = coverage_eps(points, confidence)
    bounds = []
    for c, r in zip(center, radii):
        with torch.enable_grad():
            pts = (c + r * unit).detach().requires_grad_(True)
            g = prop.margin(pts)
            (grad,) = torch.autograd.grad(g.sum(), pts)
        lip = (grad.norm(dim=1) if norm == "2" else grad.abs().sum(dim=1)).max()
        at_c = prop.margin(c[None])[0]
        sampled = g.detach().max() + lip * 2.0 * r * eps ** (1.0 / n)
        bounds.append(torch.minimum(at_c + lip * r, sampled))
    return torch.stack(bounds)
