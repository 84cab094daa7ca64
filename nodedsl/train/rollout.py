"""Simulation helpers shared by training, evaluation and plots.

* :func:`observation_map` finds which outputs are plain copies of states (probing ``observe``);
* :class:`WindowField` is the vector field of a batch of windows in local time, with per-row absolute
  start times and linearly interpolated inputs;
* :func:`rollout` simulates whole trajectories from given initial states.

Example:
    >>> import torch
    >>> from nodedsl.train.rollout import WindowField
    >>> class M(torch.nn.Module):
    ...     def field(self, t, x, u): return -x + u
    >>> f = WindowField(M(), torch.zeros(2), torch.tensor([0.0, 1.0]), torch.ones(2, 2, 1))
    >>> f(torch.tensor(0.5), torch.zeros(2, 1)).tolist()
    [[1.0], [1.0]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["WindowField", "initial_states", "is_autonomous", "observation_map", "rollout", "time_groups"]


def _probe_inputs(model, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    m = len(model.input_names)
    return torch.randn(x.shape[0], m, generator=g, dtype=torch.float64).to(x.dtype)


def observation_map(model) -> list[int | None]:
    """For each output, the index of the state it equals exactly (``None`` when it is anything else)."""
    outs, states = tuple(model.output_names), tuple(model.state_names)
    if outs == states:
        return list(range(len(states)))
    n = len(states)
    dtype = model.x0_default.dtype
    g = torch.Generator().manual_seed(2024)
    x = (1.3 * torch.randn(9, n, generator=g, dtype=torch.float64) + 0.17).to(dtype)
    u = _probe_inputs(model, x, g)
    with torch.no_grad():
        y = model.observe(torch.full((9,), 0.37, dtype=dtype), x, u)
    out: list[int | None] = []
    for j in range(y.shape[1]):
        match = None
        for i in range(n):
            if torch.equal(y[:, j], x[:, i]):
                match = i
                break
        out.append(match)
    return out


def is_autonomous(model) -> bool:
    """True when neither ``field`` nor ``observe`` depends on ``t`` (probed at random states)."""
    n = len(model.state_names)
    dtype = model.x0_default.dtype
    g = torch.Generator().manual_seed(7)
    x = (torch.randn(5, n, generator=g, dtype=torch.float64) * 0.8).to(dtype)
    u = _probe_inputs(model, x, g)
    try:
        with torch.no_grad():
            a = model.field(torch.tensor(0.0, dtype=dtype), x, u)
            b = model.field(torch.tensor(1.7, dtype=dtype), x, u)
            c = model.field(torch.full((5,), -2.3, dtype=dtype), x, u)
            oa = model.observe(torch.tensor(0.0, dtype=dtype), x, u)
            ob = model.observe(torch.tensor(3.1, dtype=dtype), x, u)
    except Exception:
        return False
    return bool(torch.equal(a, b) and torch.equal(a, c) and torch.equal(oa, ob))


class WindowField(torch.nn.Module):
    """``field(s, x)`` of windows in local time ``s``: absolute time ``t0 + s``, inputs interpolated.

    ``t0 [B]`` start times, ``grid [K+1]`` local sample times (shared by the batch), ``u [B, K+1, m]``
    inputs at the samples (``m`` may be 0). ``autonomous`` skips building absolute times.

    When every row has the same inputs and time, the field is a per-sample function (what the
    solvers' vmapped Jacobian assumes); otherwise :meth:`jacobian` supplies the Jacobian row by row.
    """

    def __init__(self, model, t0: torch.Tensor, grid: torch.Tensor, u: torch.Tensor, autonomous: bool = False):
        super().__init__()
        self.model = model
        self.symplectic_split = getattr(model, "symplectic_split", None)  # for leapfrog
        self.grid = grid
        m = u.shape[-1]
        self.const = m == 0 or bool((u == u[:, :1]).all())
        self.shared_u = m == 0 or bool((u == u[:1, :1]).all())  # one input value for every row and time
        self.u0 = u[:1, 0] if self.shared_u else u[:, 0]
        self.u = u
        self.offset = not autonomous  # the model depends on t: pass t0 + s
        same_t0 = bool((t0 == t0[:1]).all())
        self.t0 = t0[:1].reshape(()) if same_t0 else t0  # a scalar when all windows start together
        self.per_row = not self.shared_u or (self.offset and not same_t0)
        if not self.const:
            self.du = u[:, 1:] - u[:, :-1]
            self.dg = grid[1:] - grid[:-1]

    def inputs(self, s: torch.Tensor, batch: int) -> torch.Tensor:
        if self.const:
            return self.u0.expand(batch, -1) if self.shared_u else self.u0
        s = s.to(self.grid.dtype)
        k = (torch.searchsorted(self.grid, s.reshape(1), right=True) - 1).clamp(0, len(self.grid) - 2)[0]
        w = ((s - self.grid[k]) / self.dg[k]).clamp(0, 1)
        return self.u[:, k] + w.to(self.u.dtype) * self.du[:, k]

    def absolute(self, s: torch.Tensor) -> torch.Tensor:
        return self.t0 + s if self.offset else s

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.model.field(self.absolute(s), x, self.inputs(s, x.shape[0]))

    @property
    def events(self) -> list:
        """The model's ``when`` blocks in local time, inputs interpolated (``solve`` locates them)."""
        if not getattr(getattr(self.model, "system", None), "events", None):
            return []
        from ..compiler.events import compiled_events

        return compiled_events(self.model, self.inputs, self.absolute)

    def row(self, r: int) -> WindowField:
        """This field for window ``r`` alone (events are located row by row)."""
        if not self.per_row:
            return self
        t0 = self.t0 if self.t0.dim() == 0 else self.t0[r : r + 1]
        return WindowField(self.model, t0.reshape(-1), self.grid, self.u[r : r + 1], not self.offset)

    def taylor_coefficients(self, s: torch.Tensor, x: torch.Tensor, order: int) -> list[torch.Tensor]:
        """The model's Taylor coefficients (Taylor-mode or symbolic; NotImplementedError: nested AD)."""
        fn = getattr(self.model, "taylor_coefficients", None)
        if fn is None:
            raise NotImplementedError
        return fn(self.absolute(s), x, order, self.inputs(s, x.shape[0]))

    def semilinear(self):
        """``(A, N)`` of the model's semilinear split in local time, inputs interpolated (``etd``)."""
        from ..compiler.semilinear import semilinear_parts

        return semilinear_parts(self.model, lambda s, x: self.inputs(s, x.shape[0]), self.absolute)

    def jacobian(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``[B, n, n]``: the model's symbolic Jacobian when it has one; else ``n`` reverse passes when
        rows differ (else the solver's per-sample vmap)."""
        fn = getattr(self.model, "jacobian", None)
        if fn is not None:
            try:
                return fn(self.absolute(s), x, self.inputs(s, x.shape[0]))
            except NotImplementedError:
                pass
        if not self.per_row:
            raise NotImplementedError
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            out = self(s, xg)
            rows = [torch.autograd.grad(out[:, i].sum(), xg, retain_graph=True)[0] for i in range(out.shape[1])]
        return torch.stack(rows, dim=1)


def time_groups(t: torch.Tensor, lengths: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Rows of ``t [R, P]`` grouped by identical local time grids ``t - t[:, :1]`` (within 1e-9 relative).

    ``lengths`` (optional) cuts each row to its real samples first. Returns ``(row indices, grid)``.
    """
    groups: list[tuple[list[int], torch.Tensor]] = []
    for r in range(t.shape[0]):
        L = int(lengths[r]) if lengths is not None else t.shape[1]
        local = t[r, :L] - t[r, 0]
        for rows, grid in groups:
            if grid.shape == local.shape and bool(
                torch.allclose(grid, local, rtol=1e-9, atol=1e-9 * float(local.abs().max().clamp_min(1.0)))
            ):
                rows.append(r)
                break
        else:
            groups.append(([r], local))
    return [(torch.tensor(rows, dtype=torch.long), grid) for rows, grid in groups]


def rollout(
    model,
    x0: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    solver,
    lengths: torch.Tensor | None = None,
    autonomous: bool = False,
) -> torch.Tensor:
    """States ``[N, T, n]`` of whole trajectories (``t [N, T]``, ``u [N, T, m]``) from ``x0 [N, n]``.

    Rows past ``lengths`` repeat the last simulated state. Runs without gradients.
    """
    from ..solvers import solve

    N, T = t.shape
    out = x0.new_zeros(N, T, x0.shape[1])
    with torch.no_grad():
        for rows, grid in time_groups(t, lengths):
            L = grid.shape[0]
            fieldw = WindowField(model, t[rows, 0], grid, u[rows, :L], autonomous)
            ys = solve(fieldw, x0[rows], grid, solver=solver).ys.transpose(0, 1)
            out[rows, :L] = ys
            if L < T:
                out[rows, L:] = ys[:, -1:]
    return out


def initial_states(model, y0: torch.Tensor, obs_map: Sequence[int | None]) -> torch.Tensor:
    """``[N, n]`` initial states: observed components from ``y0 [N, n_out]``, the model's defaults elsewhere."""
    n = len(model.state_names)
    x0 = model.x0_default.detach().to(y0.dtype).reshape(1, n).repeat(y0.shape[0], 1)
    for j, i in enumerate(obs_map):
        if i is not None:
            x0[:, i] = y0[:, j]
    return x0


def observe(
    model, states: torch.Tensor, t: torch.Tensor, u: torch.Tensor, obs_map: Sequence[int | None]
) -> torch.Tensor:
    """Outputs ``[..., n_out]`` of states ``[..., n]`` (a gather when every output is a state)."""
    if all(i is not None for i in obs_map):
        return states[..., list(obs_map)]
    shape = states.shape[:-1]
    flat = model.observe(t.reshape(-1), states.reshape(-1, states.shape[-1]), u.reshape(t.numel(), u.shape[-1]))
    return flat.reshape(*shape, flat.shape[-1])
