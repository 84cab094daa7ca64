"""Derivative supervision: targets ``d_i`` for ``dx/dt`` at the data points, estimated once per dataset
from the observed trajectories, and the loss term ``weight * mean |f(x_i, t_i, u_i) - d_i|^2``.

Estimators (the ``derivatives`` key of a train block):

* ``finite_difference``: second-order central differences on the (possibly irregular) time grid,
  one-sided second-order at the ends (``numpy.gradient(edge_order=2)``);
* ``spline``: a cubic smoothing spline per trajectory and output (``scipy.interpolate.
  make_smoothing_spline``, any spacing; ``smoothing`` is its ``lam``, GCV when absent), differentiated;
* ``ndo``: the pre-trained neural differential operator (:mod:`nodedsl.train.ndo`).

Only outputs that are states (``output x = x`` or the state itself) are supervised, so ``d_i`` is a
derivative of a state; estimates are cached by the data's bytes and the estimator's settings.

Example:
    >>> import numpy as np
    >>> t = np.array([0.0, 0.1, 0.25, 0.3, 0.5, 0.7, 0.75, 1.0])
    >>> d = estimate_series(t, t**2, "finite_difference")
    >>> bool(np.allclose(d, 2 * t))
    True
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from ..core.diagnostics import Diagnostic, NodeDslError

__all__ = ["DerivativeTargets", "estimate_series", "estimate_trajectories"]

_CACHE: dict[str, torch.Tensor] = {}
_CACHE_SIZE = 8


def estimate_series(t: np.ndarray, y: np.ndarray, kind: str, smoothing: float | None = None) -> np.ndarray:
    """``dy/dt`` of one sampled signal by the named estimator (at least 3 samples; splines need 5)."""
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(t) < 3:
        return np.gradient(y, t) if len(t) == 2 else np.zeros_like(y)
    if kind == "spline" and len(t) >= 5:
        from scipy.interpolate import make_smoothing_spline

        return make_smoothing_spline(t, y, lam=smoothing).derivative()(t)
    if kind == "ndo":
        from .ndo import ndo_derivative

        return ndo_derivative(t, y)
    return np.gradient(y, t, edge_order=2)


def estimate_trajectories(traj, spec) -> torch.Tensor:
    """``[N, T, n_out]`` derivative estimates of every output (NaN where there is no target: past each
    trajectory's length and at missing observations, which the estimators skip)."""
    smoothing = getattr(spec, "smoothing", None)
    h = hashlib.sha256()
    for a in (traj.t, traj.y, traj.lengths):
        h.update(a.detach().cpu().numpy().tobytes())
    key = f"{spec.kind}:{smoothing}:{h.hexdigest()}"
    if key in _CACHE:
        return _CACHE[key].clone()
    t, y = traj.t.double().numpy(), traj.y.double().numpy()
    missing = getattr(traj, "missing", None)
    ok_all = np.isfinite(y) & (~missing.numpy() if missing is not None else True)
    out = np.full_like(y, np.nan)  # NaN: no target (a missing observation, or past the trajectory's end)
    for i in range(y.shape[0]):
        n = int(traj.lengths[i])
        for j in range(y.shape[2]):
            ok = ok_all[i, :n, j]
            if ok.sum() >= 2:  # estimated from the observed samples only; no target where none was observed
                d = estimate_series(t[i, :n][ok], y[i, :n, j][ok], spec.kind, smoothing)
                out[i, :n, j][ok] = d
    d = torch.tensor(out, dtype=traj.y.dtype)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = d
    return d.clone()


class DerivativeTargets:
    """The derivative targets of a split's windows and the loss term of a batch.

    ``targets [W, K+1, n_out]`` are gathered from the whole trajectories' estimates (a window alone is
    too short for a good estimate); ``pairs`` are ``(output, state)`` index pairs of supervised outputs."""

    def __init__(self, model, traj, windows, obs_map, spec, span=None):
        self.weight = float(spec.weight)
        self.pairs = [(j, i) for j, i in enumerate(obs_map) if i is not None]
        if not self.pairs:
            raise NodeDslError(
                [
                    Diagnostic(
                        "bad-value",
                        f"derivatives = {spec.kind} needs an output that is a state; '{model.name}' has none",
                        span,
                    )
                ]
            )
        full = estimate_trajectories(traj, spec)
        steps = torch.arange(windows.t.shape[1])
        self.targets = full[windows.traj[:, None], windows.start[:, None] + steps[None, :]]

    def loss(self, model, windows, idx, states, obs_map) -> torch.Tensor:
        """``weight * mean |f(x_i, t_i, u_i) - d_i|^2`` over the batch's data points (observed state
        components from the data; unobserved ones from the prediction ``states``, held fixed)."""
        from .rollout import initial_states

        tb, ub, y = windows.t[idx], windows.u[idx], windows.y[idx]
        b, k = y.shape[0], y.shape[1]
        x = initial_states(model, y.reshape(b * k, -1), obs_map)
        if states.shape[:2] == (b, k) and len(self.pairs) < x.shape[1]:
            x = torch.where(self._observed(x), x, states.detach().reshape(b * k, -1))
        t = tb.reshape(-1).to(x.dtype)
        out_idx, st_idx = [j for j, _ in self.pairs], [i for _, i in self.pairs]
        target = self.targets.to(x.device)[idx].to(x.dtype).reshape(b * k, -1)[:, out_idx]
        # a point with a missing component is left out (its field value would be computed at a wrong state)
        mask = torch.isfinite(target) & torch.isfinite(x).all(-1, keepdim=True)
        f = model.field(t, torch.nan_to_num(x), ub.reshape(b * k, -1))
        err = torch.where(mask, f[:, st_idx] - torch.nan_to_num(target), torch.zeros_like(target))
        return self.weight * err.pow(2).sum() / mask.sum().clamp(min=1)

    def _observed(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
        mask[[i for _, i in self.pairs]] = True
        return mask[None, :]
