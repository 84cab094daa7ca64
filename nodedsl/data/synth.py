"""Synthetic trajectories from a ``dataset`` block: sample initial states, simulate, observe, add noise.

Example:
    >>> import nodedsl                                                         # doctest: +SKIP
    >>> prog = nodedsl.load("examples/pendulum.node")                          # doctest: +SKIP
    >>> cfg, _ = validate_dataset(prog.dataset("swings"))                      # doctest: +SKIP
    >>> data = generate(prog.model(cfg.model), cfg)                            # doctest: +SKIP
    >>> tuple(data.y.shape)                                                    # doctest: +SKIP
    (32, 81, 2)
"""

from __future__ import annotations

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, suggest
from ..frontend.config import DatasetConfig, key_span
from ..frontend.config.schema import InputExpression, Signal
from .expressions import expression_inputs
from .loading import Trajectories
from .signals import draw, make_signal

__all__ = ["generate", "sample_initial", "state_groups"]


def state_groups(names: tuple[str, ...]) -> dict[str, list[int]]:
    """Flattened component indices per declared state: ``q[0], q[1] -> {"q": [0, 1]}``."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        base = name.split("[", 1)[0] if name.endswith("]") else name
        groups.setdefault(base, []).append(i)
        if base != name:
            groups.setdefault(name, []).append(i)
    return groups


def sample_initial(
    state_names: tuple[str, ...], x0_default: torch.Tensor, initial: dict, count: int, g: torch.Generator, cfg=None
) -> torch.Tensor:
    """``[count, n]`` initial states: declared distributions where given, the model default elsewhere.

    Components are drawn in state order (each a vector of ``count`` draws), so the result depends only
    on the seed and the ``initial`` map. Unknown or mis-sized entries raise ``NodeDslError``.
    """
    groups = state_groups(state_names)
    x0 = x0_default.detach().to(torch.float64).reshape(1, -1).repeat(count, 1)
    diags: list[Diagnostic] = []
    per_component: dict[int, object] = {}
    for name, spec in initial.items():
        span = key_span(cfg, "initial", name) if cfg is not None else None
        if name not in groups:
            bases = sorted(k for k in groups if "[" not in k)
            diags.append(
                Diagnostic(
                    "undefined-name",
                    f"'initial' names '{name}', which is not a state of the model",
                    span or key_span(cfg, "initial"),
                    tuple(n for n in (suggest(name, bases), "states: " + ", ".join(bases)) if n),
                )
            )
            continue
        idx = groups[name]
        if isinstance(spec, list):
            if len(spec) != len(idx):
                diags.append(
                    Diagnostic(
                        "bad-value",
                        f"'initial.{name}' has {len(spec)} entries but the state has {len(idx)} components",
                        span,
                    )
                )
                continue
            for i, s in zip(idx, spec):
                per_component[i] = s
        else:
            for i in idx:
                per_component[i] = spec
    if diags:
        raise NodeDslError(diags)
    for i in range(len(state_names)):
        if i in per_component:
            x0[:, i] = draw(per_component[i], count, g)
    return x0


class _DrivenInput(torch.nn.Module):
    """The model's field with inputs ``u(t) -> [N, m]`` (constants and per-trajectory signals)."""

    def __init__(self, model, u):
        super().__init__()
        self.model = model
        self.u = u

    def forward(self, t, x):
        return self.model.field(t, x, self.u(t).to(x.dtype))

    @property
    def events(self):
        """The model's ``when`` blocks with these inputs (``solve`` locates them)."""
        return self.model.driven(lambda t, batch: self.u(t)).events


def _input_function(model, cfg: DatasetConfig, count: int, g: torch.Generator, t0: float, t1: float):
    """``u(t) -> [count, m]``: the constant inputs, with each signal's component drawn per trajectory."""
    u, signals = _inputs(model, cfg)
    base = u.to(torch.float64).reshape(1, -1).expand(count, -1)
    if not signals:
        return lambda t: base
    exprs = {i: s.expr for i, s in signals.items() if isinstance(s, InputExpression)}
    fns = {i: make_signal(spec, count, g, t0, t1) for i, spec in sorted(signals.items()) if i not in exprs}
    by_expr = expression_inputs(exprs, cfg.draws, count, g) if exprs else None
    columns = {i: k for k, i in enumerate(sorted(exprs))}

    def inputs(t):
        ex = by_expr(float(t)) if by_expr is not None else None
        cols = [
            fns[i](float(t)) if i in fns else ex[:, columns[i]] if i in columns else base[:, i]  # type: ignore[index]
            for i in range(base.shape[1])
        ]
        return torch.stack(cols, dim=-1)

    return inputs


def _inputs(model, cfg: DatasetConfig) -> tuple[torch.Tensor, dict[int, Signal | InputExpression]]:
    """The constant inputs (defaults and given numbers) and the signals and expressions by input component."""
    names = tuple(model.input_names)
    u = model.u_default.detach().clone().reshape(-1)
    signals: dict[int, Signal | InputExpression] = {}
    groups = state_groups(names)
    diags = []
    for name, value in cfg.inputs.items():
        if name not in groups:
            diags.append(
                Diagnostic(
                    "undefined-name",
                    f"'inputs' names '{name}', which is not an input of the model",
                    key_span(cfg, "inputs", name),
                    tuple(n for n in (suggest(name, groups),) if n),
                )
            )
            continue
        idx = groups[name]
        if isinstance(value, (Signal, InputExpression)):  # each component its own draws
            signals.update((i, value) for i in idx)
            continue
        vals = value if isinstance(value, list) else [value] * len(idx)
        if len(vals) != len(idx):
            diags.append(
                Diagnostic(
                    "bad-value",
                    f"'inputs.{name}' has {len(vals)} entries but the input has {len(idx)} components",
                    key_span(cfg, "inputs", name),
                )
            )
            continue
        for i, v in zip(idx, vals):
            u[i] = float(v)
    if diags:
        raise NodeDslError(diags)
    return u, signals


def _solver(model, cfg: DatasetConfig, dt: float):
    """``cfg.solver`` (its step defaulting to a quarter of the smallest sampling interval), or rk4 /
    euler_maruyama (an SDE model) with that step."""
    from ..solvers import SolverError, make_solver

    default = "rk4" if getattr(model, "noise", None) is None else "euler_maruyama"
    if cfg.solver is None:
        return make_solver(default, step=dt / 4)
    opts = dict(cfg.solver.options)
    try:
        solver = make_solver(cfg.solver.kind, **opts)
    except SolverError as err:
        if err.option != "step" or "step" in opts:
            raise
        solver = make_solver(cfg.solver.kind, **opts, step=dt / 4)
    is_sde = getattr(solver, "strong_order", None) is not None
    if is_sde != (getattr(model, "noise", None) is not None):
        what = "an SDE solver needs a model with noise" if is_sde else "a model with noise needs an SDE solver"
        raise SolverError(f"{what} (euler_maruyama, milstein, srk, reversible_heun); got '{cfg.solver.kind}'")
    return solver


def _sample_paths(model, u_of_t, x0: torch.Tensor, times: torch.Tensor, solver, cfg: DatasetConfig):
    """``[T, N, n]`` sample paths; the Brownian paths are fixed by the solver's ``seed`` or the dataset's."""
    from ..solvers.sde import sdeint

    drift, diffusion = model.sde_functions(lambda t, batch: u_of_t(float(t)).to(x0.dtype).expand(batch, -1))
    t = times.to(x0.dtype)
    return sdeint(
        drift,
        diffusion,
        x0,
        t,
        solver=solver,
        noise=model.noise,
        seed=None if solver.seed is not None else int(cfg.seed),
    ).ys


def generate(model, cfg: DatasetConfig) -> Trajectories:
    """Simulate ``cfg.trajectories`` runs of ``model`` at ``cfg.times()``.

    Initial states follow ``cfg.initial`` (others: the model's defaults), drawn from a
    ``torch.Generator`` seeded with ``cfg.seed``, then the inputs' signals (``data/signals.py``); the
    solver is ``cfg.solver`` or rk4 with a step of a quarter of the smallest sampling interval (an SDE
    model: euler_maruyama, its Brownian paths fixed by the seed too). Outputs get Gaussian noise of std
    ``cfg.noise`` (same generator); the noise-free states are kept in ``x``.
    """
    from ..solvers import SolverError, solve

    dtype = model.x0_default.dtype  # the model's precision (float64 for `nodedsl data`)
    g = torch.Generator().manual_seed(int(cfg.seed))
    n_traj = cfg.trajectories
    x0 = sample_initial(tuple(model.state_names), model.x0_default, cfg.initial, n_traj, g, cfg).to(dtype)
    times = torch.tensor(cfg.times(), dtype=torch.float64)
    u_of_t = _input_function(model, cfg, n_traj, g, float(times[0]), float(times[-1]))
    dt = float((times[1:] - times[:-1]).min()) if len(times) > 1 else 1.0
    try:
        solver = _solver(model, cfg, dt)
        with torch.no_grad():
            if getattr(model, "noise", None) is None:
                xs = solve(_DrivenInput(model, u_of_t), x0, times, solver=solver).ys  # [T, N, n]
            else:
                xs = _sample_paths(model, u_of_t, x0, times, solver, cfg)
    except SolverError as err:
        raise NodeDslError(
            [
                Diagnostic(
                    "solver-error",
                    f"simulating dataset for '{model.name}' failed: {err.message}",
                    key_span(cfg, "solver"),
                )
            ]
        ) from None
    T, N, n = xs.shape
    if not bool(torch.isfinite(xs).all()):
        bad = int((~torch.isfinite(xs)).any(-1).any(-1).nonzero()[0])
        raise NodeDslError(
            [
                Diagnostic(
                    "solver-error",
                    f"simulating '{model.name}' produced non-finite states "
                    f"at t = {float(times[bad]):g}; shorten 'time' or change 'initial'",
                    key_span(cfg, "time"),
                )
            ]
        )
    us = torch.stack([u_of_t(float(ti)) for ti in times]).to(dtype)  # [T, N, m]
    flat_x = xs.reshape(T * N, n)
    flat_t = times.repeat_interleave(N)
    flat_u = us.reshape(T * N, -1)
    with torch.no_grad():
        ys = model.observe(flat_t, flat_x, flat_u).reshape(T, N, -1)
    ys = ys.transpose(0, 1).contiguous()
    if cfg.noise > 0:
        ys = ys + cfg.noise * torch.randn(ys.shape, generator=g, dtype=torch.float64).to(dtype)
    return Trajectories(
        t=times.repeat(N, 1),
        y=ys,
        u=us.transpose(0, 1).contiguous(),
        output_names=tuple(model.output_names),
        input_names=tuple(model.input_names),
        x=xs.transpose(0, 1).contiguous(),
        state_names=tuple(model.state_names),
        source=f"dataset for {model.name}",
    )
