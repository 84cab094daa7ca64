"""Training objectives of SDE models: the Euler-Maruyama transition likelihood and distribution matching.

* ``transition_likelihood``: for densely sampled paths, each transition ``x_k -> x_{k+1}`` over
  ``dt`` is Gaussian under the Euler-Maruyama scheme, ``x_{k+1} ~ N(x_k + f(t_k, x_k) dt,
  g g^T dt)``; its negative log-likelihood is the loss (the standard estimator of drift and
  diffusion from dense paths). Observation noise of standard deviation ``s`` adds ``2 s^2`` to
  the variance of each increment (it enters both ends; the correlation between consecutive
  increments is neglected).
* ``distribution``: for sparse data or learned diffusion nets, simulate an ensemble of paths from
  the observed initial states and match its empirical distribution to the observed ensemble at
  every observation time by the energy distance or the MMD (Gaussian kernels), differentiating
  through the solver (or torchsde's stochastic adjoint).

Example:
    >>> import torch
    >>> x, y = torch.zeros(1, 200, 1), torch.ones(1, 200, 1)
    >>> round(float(energy_distance(x, y)), 6), round(float(energy_distance(x, x)), 6)
    (2.0, 0.0)
    >>> r, var = torch.zeros(3, 2), torch.ones(3, 2)
    >>> round(float(gaussian_nll(r, var)), 4)   # log(2 pi) per component
    1.8379
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_nll(residual: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-log N(residual; 0, diag(var))`` (``[rows, n]`` each)."""
    return 0.5 * ((residual**2 / var) + torch.log(var) + LOG_2PI).sum(-1).mean()


def gaussian_nll_cov(residual: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-log N(residual; 0, cov)`` (``[rows, n]``, ``[rows, n, n]``), by Cholesky.

    Example:
        >>> r = torch.zeros(2, 2); cov = torch.eye(2).expand(2, 2, 2)
        >>> round(float(gaussian_nll_cov(r, cov)), 4)
        1.8379
    """
    chol = torch.linalg.cholesky(cov)
    z = torch.linalg.solve_triangular(chol, residual.unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * ((z**2).sum(-1) + logdet + residual.shape[-1] * LOG_2PI).mean()


def em_transition_nll(
    drift: torch.Tensor,
    diffusion: torch.Tensor,
    x: torch.Tensor,
    dx: torch.Tensor,
    dt: torch.Tensor,
    obs_noise: torch.Tensor | float | None = None,
    floor: float = 1e-10,
) -> torch.Tensor:
    """The Euler-Maruyama transition NLL of increments ``dx`` (``[rows, n]``) taken from ``x`` over ``dt``
    (``[rows, 1]``), with ``drift`` ``[rows, n]`` and ``diffusion`` ``[rows, n]`` (diagonal) or
    ``[rows, n, m]`` (general). ``floor`` keeps the variance of deterministic states positive (they
    then count as a heavily weighted squared error).

    Example:
        >>> x = torch.zeros(4, 1); dt = torch.full((4, 1), 0.1)
        >>> a = em_transition_nll(torch.zeros(4, 1), torch.ones(4, 1), x, torch.zeros(4, 1), dt)
        >>> round(float(a), 4) == round(0.5 * (math.log(0.1) + LOG_2PI), 4)
        True
    """
    residual = dx - drift * dt
    extra = 0.0 if obs_noise is None else 2 * torch.as_tensor(obs_noise, dtype=x.dtype) ** 2
    if diffusion.dim() == 2:
        return gaussian_nll(residual, diffusion**2 * dt + extra + floor)
    cov = diffusion @ diffusion.transpose(-1, -2) * dt.unsqueeze(-1)
    eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    return gaussian_nll_cov(residual, cov + (extra + floor) * eye)


def _pairwise(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-24) -> torch.Tensor:
    """Euclidean distances ``[T, S, N]``, smooth at 0 (``torch.cdist``'s gradient there is NaN)."""
    d2 = ((a.unsqueeze(-2) - b.unsqueeze(-3)) ** 2).sum(-1)
    return torch.sqrt(d2 + eps)


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Sum over times of the energy distance ``2 E|X-Y| - E|X-X'| - E|Y-Y'|`` between the ensembles
    ``x`` ``[T, S, n]`` and ``y`` ``[T, N, n]`` (V-statistics: zero iff the samples coincide)."""
    xy = _pairwise(x, y).mean((-1, -2))
    xx = _pairwise(x, x).mean((-1, -2))
    yy = _pairwise(y, y).mean((-1, -2))
    return (2 * xy - xx - yy).sum()


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] | None = None) -> torch.Tensor:
    """Sum over times of the squared MMD between ``x`` ``[T, S, n]`` and ``y`` ``[T, N, n]`` with a sum of
    Gaussian kernels; default bandwidths: ``(0.2, 0.5, 1, 2, 5)`` times the observed spread at that time.

    Example:
        >>> x = torch.randn(2, 300, 1, generator=torch.Generator().manual_seed(0))
        >>> float(mmd(x, x)) == 0.0, float(mmd(x, x + 3)) > 0.5
        (True, True)
    """
    if bandwidths is None:
        scale = y.std(dim=1).mean(-1).clamp_min(1e-3)  # [T]
        widths = torch.stack([scale * f for f in (0.2, 0.5, 1.0, 2.0, 5.0)], -1)  # [T, K]
    else:
        widths = torch.tensor(list(bandwidths), dtype=x.dtype, device=x.device).expand(x.shape[0], -1)
    widths = widths.detach()

    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d2 = ((a.unsqueeze(-2) - b.unsqueeze(-3)) ** 2).sum(-1)  # [T, S, N]
        w2 = (widths**2)[:, :, None, None]  # [T, K, 1, 1]
        return torch.exp(-d2.unsqueeze(1) / (2 * w2)).sum(1).mean((-1, -2))

    return (kernel(x, x) + kernel(y, y) - 2 * kernel(x, y)).sum()


METRICS = {"energy": energy_distance, "mmd": mmd}


def ensemble_loss(simulated: torch.Tensor, observed: torch.Tensor, metric: str = "energy") -> torch.Tensor:
    """The distribution-matching loss of ensembles ``[T, S, n]`` vs ``[T, N, n]`` by ``metric``."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return METRICS[metric](simulated, observed)


def simulate_ensemble(
    model: Any,
    x0: torch.Tensor,
    t: torch.Tensor,
    solver: Any,
    *,
    samples: int = 1,
    seed: int | None = None,
    gradient: str = "backprop",
    inputs: Any = None,
) -> torch.Tensor:
    """``samples`` paths of ``model`` (a compiled SDE model) from each row of ``x0`` ``[B, n]`` at ``t``:
    ``[len(t), B * samples, n]`` (the copies of one initial state are adjacent)."""
    from ..solvers.sde import sdeint

    drift, diffusion = model.sde_functions(inputs)
    x = x0.repeat_interleave(samples, dim=0)
    return sdeint(drift, diffusion, x, t, solver=solver, noise=model.noise, seed=seed, gradient=gradient).ys
