"""The neural differential operator (NDO): a small net that maps a window of samples of a signal to the
signal's derivative at each sample, pre-trained on a library of basis functions (polynomials, sinusoids,
exponentials, damped oscillations and random sums of them; see :mod:`nodedsl.train.ndo_pretrain`).

Its weights ship with the package (``ndo_operator.safetensors``, a few tens of kB) and are loaded
weights-only (safetensors: plain tensors, no pickle). Windows are made scale- and offset-free before the
net sees them (samples minus their mean, over their standard deviation; time over the window's length),
so one net serves signals of any amplitude and sampling step.

Example:
    >>> import numpy as np
    >>> t = np.linspace(0, 6, 61)
    >>> d = ndo_derivative(t, np.sin(t))
    >>> bool(np.abs(d - np.cos(t)).max() < 0.05)
    True
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np
import torch

__all__ = ["WINDOW", "NdoNet", "load_operator", "ndo_derivative", "window_derivatives"]

WINDOW = 16  # samples per window (uniform in the window's own time)
WEIGHTS = "ndo_operator.safetensors"


class NdoNet(torch.nn.Module):
    """Normalized window ``[B, WINDOW]`` -> normalized derivative ``d y / d tau`` ``[B, WINDOW]``."""

    def __init__(self, window: int = WINDOW, hidden: int = 96):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(window, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, hidden),
            torch.nn.GELU(),
            torch.nn.Linear(hidden, window),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


@lru_cache(maxsize=1)
def load_operator() -> NdoNet:
    """The pre-trained operator from the package data (safetensors, weights only; cached)."""
    from safetensors.torch import load

    data = (resources.files(__package__) / WEIGHTS).read_bytes()
    state = load(data)
    hidden = int(state["net.0.weight"].shape[0])
    net = NdoNet(int(state["net.0.weight"].shape[1]), hidden)
    net.load_state_dict(state)
    net.train(False)  # inference mode (no dropout or batch-norm statistics to switch, but explicit)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def normalize(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows ``[B, W]`` minus their mean over their scale, and the scale ``[B, 1]``."""
    mean = y.mean(dim=1, keepdim=True)
    scale = y.std(dim=1, keepdim=True) + 1e-8 * (1 + mean.abs())
    return (y - mean) / scale, scale


def window_derivatives(net: torch.nn.Module, y: torch.Tensor) -> torch.Tensor:
    """``dy/dtau`` of windows ``[B, W]`` on the unit interval (in the units of ``y``)."""
    z, scale = normalize(y)
    return net(z) * scale


def ndo_derivative(t: np.ndarray, y: np.ndarray, net: torch.nn.Module | None = None) -> np.ndarray:
    """``dy/dt`` at the times ``t`` (increasing, any spacing) of one signal ``y``.

    The signal is resampled on a uniform grid of as many points (at least ``WINDOW``) by linear
    interpolation, every window of ``WINDOW`` consecutive grid points goes through the operator, the
    estimates of overlapping windows are averaged, and the result is interpolated back to ``t``."""
    net = net if net is not None else load_operator()
    t, y = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    w = int(net.net[0].in_features)
    m = max(len(t), w)
    grid = np.linspace(t[0], t[-1], m)
    ys = np.interp(grid, t, y)
    starts = np.arange(m - w + 1)
    windows = torch.tensor(ys[starts[:, None] + np.arange(w)], dtype=torch.float32)
    with torch.no_grad():
        d = window_derivatives(net, windows).double().numpy()
    span = grid[w - 1] - grid[0]
    acc, count = np.zeros(m), np.zeros(m)
    for s, row in zip(starts, d):
        acc[s : s + w] += row / span
        count[s : s + w] += 1
    return np.interp(t, grid, acc / count)
