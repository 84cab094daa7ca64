"""Learned state observers (contract §11): KKL and Luenberger, trained on simulated trajectories.

KKL (Kazantzis-Kravaris-Luenberger; Andrieu & Praly 2006): the observer state follows
``z' = D z + F y(x)`` with ``D`` diagonal and stable, ``F`` ones; after a transient ``z`` is a function
``T(x)`` of the state, and the estimate is ``x_hat = T*(z)``. As in Buisson-Fenet et al. ("Towards gain
tuning for numerical KKL observers", 2023) ``T`` and ``T*`` are nets fitted to pairs ``(x(t), z(t))``
from simulations of the model from random initial states, keeping times after ``t_c = 5 / |slowest
pole|`` when the initial ``z(0) = 0`` is forgotten: ``|z - T(x)|^2 + |x - T*(z)|^2 + |x - T*(T(x))|^2``.
Faster poles forget ``z(0)`` sooner but amplify measurement noise: the trade-off of docs/observers.md.

Luenberger: ``x_hat' = f(x_hat) + L (y - h(x_hat))`` with ``L`` given or trained on simulated
trajectories (the estimate's error after ``time / 2``).

Example:
    >>> import torch
    >>> z = kkl_filter(torch.tensor([-1.0, -2.0]), torch.ones(2, 1), torch.zeros(3, 11, 1), 0.1)
    >>> tuple(z.shape), float(z.abs().max())
    ((3, 11, 2), 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..frontend import ast

__all__ = ["Observer", "build_observer", "kkl_filter", "measure_fn", "simulate_pairs", "train_observer"]

_FUNCS: dict[str, Callable] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "exp": torch.exp,
    "tanh": torch.tanh,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
}


def _eval(e: ast.Expr, cols: dict[str, torch.Tensor]) -> torch.Tensor:
    """A measured expression on a batch of states (a tree walk over the checked AST, never ``eval``)."""
    if isinstance(e, ast.Num):
        return torch.tensor(e.value)
    if isinstance(e, ast.Name):
        return cols[e.dotted]
    if isinstance(e, ast.Neg):
        return -_eval(e.operand, cols)
    if isinstance(e, ast.Index) and isinstance(e.index, ast.Num):
        return _eval(e.target, cols)[..., int(e.index.value)]
    if isinstance(e, ast.Call) and e.func.dotted in _FUNCS and len(e.args) == 1:
        return _FUNCS[e.func.dotted](_eval(e.args[0], cols))
    if isinstance(e, ast.BinOp):
        a, b = _eval(e.left, cols), _eval(e.right, cols)
        ops = {"+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "^": torch.pow}
        if e.op in ops:
            return ops[e.op](a, b)
    raise ValueError(f"unsupported measured expression: {e!r}")


def measure_fn(spec) -> Callable[[torch.Tensor], torch.Tensor]:
    """``h(x)``: states ``[..., n]`` (in ``spec.states`` order) -> measurements ``[..., p]``."""
    bases: dict[str, list[int]] = {}
    for i, name in enumerate(spec.states):
        bases.setdefault(name.split("[")[0], []).append(i)

    def h(x: torch.Tensor) -> torch.Tensor:
        cols = {b: (x[..., idx[0]] if len(idx) == 1 else x[..., idx]) for b, idx in bases.items()}
        outs = [_eval(m.expr, cols).to(x.dtype).expand(x.shape[:-1]) for m in spec.measures]
        return torch.stack(outs, dim=-1)

    return h


def kkl_filter(poles: torch.Tensor, F: torch.Tensor, y: torch.Tensor, dt: float) -> torch.Tensor:
    """``z [B, T, m]`` from ``z(0) = 0`` driven by samples ``y [B, T, p]`` (uniform step ``dt``): the exact
    solution of ``z' = D z + F y`` for ``y`` linear between samples (no step-size limit for fast poles)."""
    a = torch.exp(poles * dt)  # [m]
    # z_{k+1} = a z_k + b0 F y_k + b1 F y_{k+1}, the integrals of e^{lambda (dt - s)} (1 - s/dt) and s/dt
    lam = poles
    b1 = (a - 1 - lam * dt) / (lam * lam * dt)
    b0 = (a - 1) / lam - b1
    fy = y @ F.T  # [B, T, m]
    z = [torch.zeros_like(fy[:, 0])]
    for k in range(y.shape[1] - 1):
        z.append(a * z[-1] + b0 * fy[:, k] + b1 * fy[:, k + 1])
    return torch.stack(z, dim=1)


class Observer(torch.nn.Module):
    """A trained observer: ``estimate(y [B, T, p], dt) -> x_hat [B, T, n]``."""

    def __init__(self, spec, model, dtype=torch.float32):
        super().__init__()
        from ..compiler.nets import build_mlp
        from ..frontend.netspec import NetSpec

        self.spec, self.model, self.kind = spec, model, spec.kind
        n, p = len(spec.states), len(spec.measures)
        self.h = measure_fn(spec)
        self.register_buffer("x_mean", torch.zeros(n, dtype=dtype))
        self.register_buffer("x_std", torch.ones(n, dtype=dtype))
        self.register_buffer("z_mean", torch.zeros(max(spec.dim, 1), dtype=dtype))
        self.register_buffer("z_std", torch.ones(max(spec.dim, 1), dtype=dtype))
        if spec.kind == "kkl":
            rate = torch.tensor([math.log(-p_) for p_ in spec.poles], dtype=dtype)
            self.log_rate = torch.nn.Parameter(rate, requires_grad=spec.learn_D)  # D = -exp(log_rate): stable
            self.register_buffer("F", torch.ones(spec.dim, p, dtype=dtype))
            self.T_inv = build_mlp(spec.net, dtype)
            self.T = build_mlp(NetSpec("T", n, spec.dim, spec.net.hidden, spec.net.activation), dtype)
        else:
            gain = torch.zeros(n, p, dtype=dtype) if spec.gain is None else torch.tensor(spec.gain, dtype=dtype)
            self.gain = torch.nn.Parameter(gain, requires_grad=spec.gain is None)

    @property
    def poles(self) -> torch.Tensor:
        return -torch.exp(self.log_rate)

    def settle_time(self) -> float:
        """``5 / |slowest pole|`` (KKL), after which ``z(0)`` is forgotten to ``e^-5``."""
        return 5.0 / float(self.poles.abs().min()) if self.kind == "kkl" else 0.0

    def from_z(self, z: torch.Tensor) -> torch.Tensor:
        return self.T_inv((z - self.z_mean) / self.z_std) * self.x_std + self.x_mean

    def to_z(self, x: torch.Tensor) -> torch.Tensor:
        return self.T((x - self.x_mean) / self.x_std) * self.z_std + self.z_mean

    def estimate(self, y: torch.Tensor, dt: float, x0: torch.Tensor | None = None) -> torch.Tensor:
        """Estimates ``[B, T, n]`` from measurements ``y [B, T, p]`` sampled every ``dt``."""
        if self.kind == "kkl":
            return self.from_z(kkl_filter(self.poles, self.F, y, dt))
        return self._luenberger(y, dt, x0)

    def _luenberger(self, y: torch.Tensor, dt: float, x0: torch.Tensor | None) -> torch.Tensor:
        B, n = y.shape[0], len(self.spec.states)
        x = self.model.x0_default.to(y.dtype).expand(B, n).clone() if x0 is None else x0
        u = y.new_zeros(B, len(self.model.input_names))
        t = y.new_zeros(())

        def f(xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
            return self.model.field(t, xc, u) + (yc - self.h(xc)) @ self.gain.T

        out = [x]
        for k in range(y.shape[1] - 1):  # rk4, measurements linear between samples
            ya, yb = y[:, k], y[:, k + 1]
            ym = 0.5 * (ya + yb)
            k1 = f(x, ya)
            k2 = f(x + 0.5 * dt * k1, ym)
            k3 = f(x + 0.5 * dt * k2, ym)
            k4 = f(x + dt * k3, yb)
            x = x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            out.append(x)
        return torch.stack(out, dim=1)


def build_observer(program, spec, dtype=torch.float32) -> Observer:
    """A fresh observer of the checked ``spec`` for its model in ``program``."""
    model = program.model(spec.model, dtype)
    for p in model.parameters():
        p.requires_grad_(False)
    return Observer(spec, model, dtype)


def simulate_pairs(observer: Observer, x0: torch.Tensor, steps: int, dt: float) -> torch.Tensor:
    """States ``[B, steps + 1, n]`` of the observer's model from ``x0`` (rk4 with step ``dt``)."""
    from ..solvers import make_solver, solve
    from .rollout import WindowField

    grid = torch.arange(steps + 1, dtype=x0.dtype) * dt
    u = x0.new_zeros(x0.shape[0], steps + 1, len(observer.model.input_names))
    field = WindowField(observer.model, x0.new_zeros(x0.shape[0]), grid, u, True)
    with torch.no_grad():
        return solve(field, x0, grid, solver=make_solver("rk4", step=dt)).ys.transpose(0, 1)


def sample_initial(spec, n_traj: int, g: torch.Generator, dtype) -> torch.Tensor:
    """Initial states drawn uniformly from the block's ``initial`` box (default ``[-1, 1]`` per state)."""
    box = spec.training.get("initial", {})
    lows = torch.tensor([float(box.get(s.split("[")[0], {"args": [-1, 1]})["args"][0]) for s in spec.states])
    highs = torch.tensor([float(box.get(s.split("[")[0], {"args": [-1, 1]})["args"][1]) for s in spec.states])
    r = torch.rand(n_traj, len(spec.states), generator=g, dtype=torch.float64)
    return (lows + (highs - lows) * r).to(dtype)


def train_observer(observer: Observer, progress: Callable[[int, int, float], None] | None = None) -> dict:
    """Fit the observer on trajectories of its model; returns a summary (losses, settle time)."""
    tr = observer.spec.training
    g = torch.Generator().manual_seed(int(tr.get("seed", 0)))
    dtype = observer.x_mean.dtype
    dt = float(tr.get("step", 0.01))
    settle = observer.settle_time()
    horizon = float(tr.get("time", settle + 10.0))
    steps = max(2, int(round(horizon / dt)))
    x0 = sample_initial(observer.spec, int(tr.get("trajectories", 200)), g, dtype)
    xs = simulate_pairs(observer, x0, steps, dt)
    y = observer.h(xs)
    noise = float(tr.get("noise", 0.0))
    if noise:
        y = y + noise * torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype)
    if observer.kind == "kkl":
        return _train_kkl(observer, xs, y, dt, settle, tr, g, progress)
    return _train_luenberger(observer, xs, y, dt, tr, g, progress)


def _train_kkl(obs: Observer, xs, y, dt, settle, tr, g, progress) -> dict:
    first = min(int(math.ceil(settle / dt)), xs.shape[1] - 1)
    z = kkl_filter(obs.poles.detach(), obs.F, y, dt)[:, first:]
    x = xs[:, first:]
    keep = int(tr.get("samples", 200))
    idx = torch.randperm(x.shape[1], generator=g)[:keep]
    x, z = x[:, idx].reshape(-1, x.shape[-1]), z[:, idx].reshape(-1, z.shape[-1])
    with torch.no_grad():
        obs.x_mean.copy_(x.mean(0))
        obs.x_std.copy_(x.std(0).clamp_min(1e-6))
        obs.z_mean.copy_(z.mean(0))
        obs.z_std.copy_(z.std(0).clamp_min(1e-6))
    nets = [*obs.T_inv.parameters(), *obs.T.parameters()]
    learn_d = obs.log_rate.requires_grad  # kkl(learn_D = true): the poles are trained with T and T*
    epochs, lr, batch = int(tr.get("epochs", 300)), float(tr.get("lr", 3e-3)), 256
    opt = torch.optim.Adam(nets + ([obs.log_rate] if learn_d else []), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    loss_v = float("nan")
    for epoch in range(epochs):
        if learn_d:  # z depends on D: filter a fresh subset with the current poles, gradients through it
            x, z = _kkl_pairs(obs, xs, y, dt, first, keep, g)
        perm = torch.randperm(x.shape[0], generator=g)
        total = 0.0
        for i in range(0, x.shape[0], batch):
            b = perm[i : i + batch]
            xn, zn = (x[b] - obs.x_mean) / obs.x_std, (z[b] - obs.z_mean) / obs.z_std
            zh = obs.T(xn)
            loss = (zh - zn).pow(2).mean() + (obs.T_inv(zn) - xn).pow(2).mean() + (obs.T_inv(zh) - xn).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward(retain_graph=learn_d)
            opt.step()
            total += float(loss.detach()) * len(b)
        sched.step()
        loss_v = total / x.shape[0]
        if progress is not None:
            progress(epoch + 1, epochs, loss_v)
    return {"loss": loss_v, "pairs": int(x.shape[0]), "settle_time": settle, "poles": obs.poles.tolist()}


def _kkl_pairs(obs: Observer, xs, y, dt: float, first: int, keep: int, g) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, z) pairs after the transient from 32 trajectories, z filtered with the current (learned)
    poles so the loss reaches D; the z normalization follows the poles (without gradient)."""
    rows = torch.randperm(xs.shape[0], generator=g)[:32]
    z = kkl_filter(obs.poles, obs.F, y[rows], dt)[:, first:]
    idx = torch.randperm(z.shape[1], generator=g)[:keep]
    x, z = xs[rows, first:][:, idx].reshape(-1, xs.shape[-1]), z[:, idx].reshape(-1, z.shape[-1])
    with torch.no_grad():
        obs.z_mean.copy_(z.mean(0))
        obs.z_std.copy_(z.std(0).clamp_min(1e-6))
    return x, z


def _train_luenberger(obs: Observer, xs, y, dt, tr, g, progress) -> dict:
    if not obs.gain.requires_grad:
        return {"loss": None, "gain": obs.gain.tolist()}
    epochs, lr = int(tr.get("epochs", 100)), float(tr.get("lr", 5e-2))
    opt = torch.optim.Adam([obs.gain], lr=lr)
    half = xs.shape[1] // 2
    loss_v = float("nan")
    for epoch in range(epochs):
        rows = torch.randperm(xs.shape[0], generator=g)[:32]
        est = obs.estimate(y[rows], dt)
        loss = (est[:, half:] - xs[rows, half:]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_v = float(loss.detach())
        if progress is not None:
            progress(epoch + 1, epochs, loss_v)
    return {"loss": loss_v, "gain": obs.gain.detach().tolist()}
