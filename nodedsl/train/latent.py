"""Latent states while training: how each window's unobserved initial state is estimated, and nudging.

``window_init`` (train block) picks the estimate of the components of a window's first state that no
output observes (latent states, and any other unobserved state):

* ``data`` / ``learned(after)``: per-window trained parameters (:class:`~nodedsl.train.setup.Shooting`);
* ``zero``: the unobserved components start at 0 and are not trained;
* ``encoder(hidden = k, steps = s)``: a GRU of ``k`` units reads the window's first ``s`` observations
  and a linear layer maps its last hidden state to the unobserved components; it is trained jointly
  with the model, so a new window (held out, or at inference) gets an estimate without an optimization.

``assimilate = nudging(gain = g, steps = s)`` pulls the rollout toward the observations over the
first ``s`` steps (``x' = f(x) + g (y - x)`` on observed states) and leaves the rest of the window free:
the loss compares only the free part, so the model is judged on forecasts from assimilated states.

Example:
    >>> import torch
    >>> enc = WindowEncoder(n_obs=1, n_latent=2, hidden=4, steps=3)
    >>> enc(torch.zeros(5, 10, 1)).shape
    torch.Size([5, 2])
"""

from __future__ import annotations

import torch

from .rollout import WindowField, initial_states, observe
from .setup import Shooting

__all__ = ["EncoderShooting", "NudgedField", "WindowEncoder", "make_shooting", "nudged_predict", "unobserved"]


def unobserved(model, obs_map) -> list[int]:
    """Indices of the states that no output equals (latent and otherwise unobserved)."""
    seen = {i for i in obs_map if i is not None}
    return [i for i in range(len(model.state_names)) if i not in seen]


class WindowEncoder(torch.nn.Module):
    """GRU over a window's first ``steps`` observations ``[B, >=steps, n_obs]`` -> unobserved states
    ``[B, n_latent]``."""

    def __init__(self, n_obs: int, n_latent: int, hidden: int, steps: int, dtype=None):
        super().__init__()
        self.steps = steps
        self.gru = torch.nn.GRU(n_obs, hidden, batch_first=True, dtype=dtype)
        self.head = torch.nn.Linear(hidden, n_latent, dtype=dtype)
        # a linear path from the raw observations: for (near-)linear dynamics the latent start is close
        # to a linear function of the first samples (finite differences), which plain GRU training
        # reaches slowly; the GRU then only learns the nonlinear remainder
        self.skip = torch.nn.Linear(steps * n_obs, n_latent, dtype=dtype)
        torch.nn.init.zeros_(self.skip.weight)
        torch.nn.init.zeros_(self.skip.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        seq = y[:, : self.steps]
        # read the sequence backwards, so the last hidden state is about the window's first sample
        _, h = self.gru(seq.flip(1))
        return self.head(h[-1]) + self.skip(seq.reshape(seq.shape[0], -1))


class EncoderShooting(Shooting):
    """Windows whose unobserved initial components come from a shared :class:`WindowEncoder` (or zero)."""

    def __init__(self, model, windows, obs_map, encoder: WindowEncoder | None):
        super().__init__(model, windows, obs_map, learned=False)
        self.encoder = encoder
        self.hidden = unobserved(model, obs_map)
        self.estimated = True  # no horizon curriculum: sub-segments would restart from data without latents
        if self.hidden:
            self.x0 = self.x0.clone()
            self.x0[:, self.hidden] = 0.0

    def initial(self, idx: torch.Tensor) -> torch.Tensor:
        x0 = self.x0[idx]
        if self.encoder is None or not self.hidden:
            return x0
        est = self.encoder(self.w.y[idx])
        x0 = x0.clone()
        x0[:, self.hidden] = est.to(x0.dtype)
        return x0


def make_shooting(model, windows, obs_map, init, learned: bool, encoder: WindowEncoder | None) -> Shooting:
    """The shooting windows for ``window_init = init`` (``learned`` for the per-window parameter kinds)."""
    if init.kind in ("zero", "encoder"):
        return EncoderShooting(model, windows, obs_map, encoder if init.kind == "encoder" else None)
    return Shooting(model, windows, obs_map, learned)


def make_encoder(model, obs_map, init, points: int) -> WindowEncoder | None:
    """The encoder of ``window_init = encoder(...)`` (None for other kinds or a fully observed model);
    it reads at most ``points`` samples (a window's length)."""
    hidden = unobserved(model, obs_map)
    if init.kind != "encoder" or not hidden:
        return None
    steps = min(init.steps, points)
    with torch.random.fork_rng(devices=[]):  # seeded by the run, the global RNG left alone
        torch.manual_seed(0)
        return WindowEncoder(len(obs_map), len(hidden), init.hidden, steps, dtype=model.x0_default.dtype)


class NudgedField(torch.nn.Module):
    """``f(x) + gain (y(s) - x_obs)`` on the observed states, ``y`` linearly interpolated on ``grid``."""

    def __init__(self, inner: WindowField, grid: torch.Tensor, y: torch.Tensor, states: list[int], gain: float):
        super().__init__()
        self.inner, self.grid, self.y, self.states, self.gain = inner, grid, y, states, gain
        self.dy = y[:, 1:] - y[:, :-1]
        self.dg = grid[1:] - grid[:-1]

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        k = (torch.searchsorted(self.grid, s.reshape(1).to(self.grid.dtype), right=True) - 1).clamp(
            0, len(self.grid) - 2
        )[0]
        w = ((s - self.grid[k]) / self.dg[k]).clamp(0, 1).to(self.y.dtype)
        y = self.y[:, k] + w * self.dy[:, k]
        pull = torch.zeros_like(x)
        pull[:, self.states] = self.gain * (y - x[:, self.states])
        return self.inner(s, x) + pull


def nudged_predict(trainer, shoot: Shooting, idx: torch.Tensor, grid: torch.Tensor):
    """``(states [B, K+1, n], yhat, target, tb, ub)``: nudged over the first steps, free afterwards;
    ``yhat`` and ``target`` cover only the free part."""
    from ..solvers import solve

    spec = trainer.cfg.assimilate
    w = shoot.w
    tb, ub, y = w.t[idx], w.u[idx], w.y[idx]
    model, obs = trainer.model, trainer.obs_map
    k = grid.numel() - 1
    s = max(1, min(spec.steps, k - 1))
    x0 = shoot.initial(idx)
    cols = [j for j, i in enumerate(obs) if i is not None]
    states_idx = [obs[j] for j in cols]
    inner = WindowField(model, tb[:, 0], grid[: s + 1], ub[:, : s + 1], trainer.autonomous)
    nudged = NudgedField(inner, grid[: s + 1], y[:, : s + 1, cols], states_idx, spec.gain)
    head = solve(nudged, x0, grid[: s + 1], solver=trainer.solver, gradient=trainer.gradient).ys
    free_grid = grid[s:] - grid[s]
    fieldw = WindowField(model, tb[:, s], free_grid, ub[:, s:], trainer.autonomous)
    tail = solve(fieldw, head[-1], free_grid, solver=trainer.solver, gradient=trainer.gradient).ys
    states = torch.cat([head[:-1], tail]).transpose(0, 1)
    yhat = observe(model, states[:, s:], tb[:, s:], ub[:, s:], obs)
    return states, yhat, y[:, s:], tb, ub


def zero_initial(model, y0: torch.Tensor, obs_map) -> torch.Tensor:
    """Initial states with observed components from ``y0`` and every unobserved one at zero."""
    x0 = initial_states(model, y0, obs_map)
    x0[:, unobserved(model, obs_map)] = 0.0
    return x0
