"""SDE solvers through torchsde: ``euler_maruyama``, ``milstein``, ``srk``, ``reversible_heun``.

The model is the Ito SDE ``dx = f(t, x) dt + g(t, x) dW``. ``g`` is *diagonal* (``[batch, n]``: an
independent Wiener process per component, zero for deterministic states) or *general*
(``[batch, n, m]``: ``m`` Wiener processes); :class:`Noise` says which, and whether ``g`` is free of
the state (*additive*), which decides what a method supports:

============== ======== =========================== =====================================
method          type     noise                        strong order
============== ======== =========================== =====================================
euler_maruyama  Ito      any                          0.5 (1.0 for additive noise)
milstein        Ito      diagonal, scalar, additive   1.0
srk             Ito      diagonal, scalar, additive   1.5 (diagonal/scalar), 2.0 additive
reversible_heun Strat.   diagonal or additive (Ito)   0.5 (1.0 for additive noise)
============== ======== =========================== =====================================

``reversible_heun`` is a Stratonovich method: an Ito model is converted by subtracting the Ito
correction ``1/2 g dg/dx`` from the drift (zero for additive noise, computed by autograd for
diagonal noise). Every output interval is split into ``ceil(dt / step)`` equal steps, as for the
ODE solvers, so output times are hit exactly (torchsde alone would interpolate between steps).
One ``torchsde.BrownianInterval`` spans the whole time range: its ``entropy`` (the ``seed``) fixes
the sample path, and querying it at a finer step gives the same path.

Example:
    >>> import torch
    >>> solver = make_sde_solver("euler_maruyama", step=0.01, seed=0)
    >>> res = sdeint(lambda t, x: -x, lambda t, x: 0.3 * torch.ones_like(x), torch.ones(4, 1),
    ...              torch.linspace(0, 1, 5), solver=solver)
    >>> res.ys.shape, res.stats.steps
    (torch.Size([5, 4, 1]), 100)
    >>> again = sdeint(lambda t, x: -x, lambda t, x: 0.3 * torch.ones_like(x), torch.ones(4, 1),
    ...                torch.linspace(0, 1, 5), solver=solver)
    >>> bool(torch.equal(res.ys, again.ys))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torchsde

from ..core.errors import SolverError
from ..core.noise import Noise
from ..core.solvers import check_options, solver_spec
from .base import Field, Solver, check_inputs
from .brownian import GridBrownian
from .result import SolveResult, SolveStats

# our name -> (torchsde method, sde type, torchsde noise types it supports)
ALL_NOISE = ("diagonal", "scalar", "additive", "general")
METHODS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "euler_maruyama": ("euler", "ito", ALL_NOISE),
    "milstein": ("milstein", "ito", ("diagonal", "scalar", "additive")),
    "srk": ("srk", "ito", ("diagonal", "scalar", "additive")),
    "reversible_heun": ("reversible_heun", "stratonovich", ALL_NOISE),
}
STRONG_ORDER = {"euler_maruyama": 0.5, "milstein": 1.0, "srk": 1.5, "reversible_heun": 0.5}


def sde_plan(times: list[float], step: float) -> list[tuple[int, float]]:
    """``(n_steps, h)`` per output interval: ``ceil(dt / step)`` equal steps, where an interval up to
    0.1% longer than a multiple of ``step`` gets no extra step (float32 times: 0.01 is 0.0100002).

    Example:
        >>> [n for n, h in sde_plan([0.0, 0.0100002, 0.03, 0.0305], 0.001)]
        [10, 20, 1]
    """
    plan = []
    for a, b in zip(times, times[1:]):
        n = max(1, math.ceil(abs(b - a) / step - 1e-3))
        plan.append((n, (b - a) / n))
    return plan


def sde_grid(times: list[float], step: float) -> list[float]:
    """Every step boundary of :func:`sde_plan`, the output times copied exactly."""
    grid = [times[0]]
    for (n, h), a, b in zip(sde_plan(times, step), times, times[1:]):
        grid.extend(a + m * h for m in range(1, n))
        grid.append(b)
    return grid


class SDESolver(Solver):
    """A torchsde method with a fixed ``step`` and an optional ``seed`` for the Brownian path."""

    supports_adjoint = False  # the ODE adjoint of solve(); SDE adjoints go through sdeint(gradient=...)

    def __init__(self, name: str, step: float, seed: int | None = None) -> None:
        self.name = name
        self.step_size = step
        self.seed = seed
        self.options = {"step": step, "seed": seed}
        self.strong_order = STRONG_ORDER[name]
        self.method, self.sde_type, self.noise_types = METHODS[name]

    def check_noise(self, noise: Noise) -> None:
        """``SolverError`` naming the method and the noise when the pair is not supported."""
        kind = noise.torchsde_type
        if kind not in self.noise_types:
            raise SolverError(
                f"solver '{self.name}' does not support {kind} noise (it supports "
                f"{', '.join(self.noise_types)}); use euler_maruyama",
                option="solver",
            )
        if noise.sde_type != self.sde_type and not (noise.additive or noise.kind == "diagonal"):
            raise SolverError(
                f"solver '{self.name}' integrates {self.sde_type} SDEs; converting this {noise.sde_type} model "
                f"needs diagonal or additive noise, not {kind}; use euler_maruyama",
                option="solver",
            )

    def integrate(self, field: Field, x0: torch.Tensor, t: torch.Tensor, stats: SolveStats) -> torch.Tensor:
        """An ODE (zero diffusion): the method's deterministic part, so ``solve`` accepts it too."""

        def zero(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros_like(x)

        noise = Noise("diagonal", additive=True, sde_type=self.sde_type)
        return _integrate(self, field, zero, x0, t, noise, None, "backprop", stats)


def make_sde_solver(name: str, **options: Any) -> SDESolver:
    """Build an SDE solver by name, validating its options against the catalog.

    Example:
        >>> make_sde_solver("milstein", step=0.1).options
        {'step': 0.1, 'seed': None}
    """
    spec = solver_spec(name)
    if spec.family != "sde":
        raise SolverError(f"'{name}' is an ODE solver; SDE solvers: {', '.join(METHODS)}", option="solver")
    return SDESolver(spec.name, **check_options(spec.name, options))


class _SDE(torch.nn.Module):
    """The torchsde interface (``f``, ``g``, ``noise_type``, ``sde_type``) over two functions."""

    def __init__(self, drift: Field, diffusion: Field, noise: Noise, sde_type: str, stats: SolveStats) -> None:
        super().__init__()
        self.drift, self.diffusion, self.stats = drift, diffusion, stats
        self.noise_type = noise.torchsde_type
        self.sde_type = sde_type
        # converting between Ito and Stratonovich adds -/+ 1/2 g dg/dx to the drift
        self.sign = 0.0 if (noise.additive or noise.sde_type == sde_type) else (-0.5 if sde_type != "ito" else 0.5)

    def f(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.stats.nfe += 1
        out = self.drift(t, y)
        if self.sign:
            out = out + self.sign * _diagonal_correction(self.diffusion, t, y)
        return out

    def g(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.diffusion(t, y)


def stratonovich_correction(noise: Noise, diffusion: Field, t: Any, y: torch.Tensor) -> torch.Tensor:
    """``1/2 g dg/dx`` (diagonal noise): the Ito drift of a Stratonovich model is its drift plus this;
    zero for additive noise. General state-dependent noise is refused (``SolverError``)."""
    if noise.additive:
        return torch.zeros_like(y)
    if noise.kind != "diagonal":
        raise SolverError("converting Stratonovich noise needs diagonal or additive noise", option="solver")
    return 0.5 * _diagonal_correction(diffusion, t, y)


def _diagonal_correction(diffusion: Field, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``g_i dg_i/dx_i`` for diagonal noise (one vector-Jacobian product per component)."""
    with torch.enable_grad():
        y = y if y.requires_grad else y.detach().requires_grad_(True)
        g = diffusion(t, y)
        if not g.requires_grad:  # g does not depend on y (nor on anything trainable): no correction
            return torch.zeros_like(g)
        cols = []
        for i in range(y.shape[-1]):
            (grad,) = torch.autograd.grad(g[:, i].sum(), y, create_graph=True, allow_unused=True)
            cols.append(torch.zeros_like(y[:, i]) if grad is None else grad[:, i])
    return g * torch.stack(cols, dim=-1)


def brownian(
    solver: SDESolver, x0: torch.Tensor, t: torch.Tensor, channels: int, seed: int | None = None, interval: bool = False
) -> Any:
    """The Brownian path over ``[t[0], t[-1]]`` with ``channels`` components per batch member.

    ``seed`` (else the solver's, else one drawn from torch's generator) fixes the path. ``srk``
    gets torchsde's ``BrownianInterval`` (it needs the space-time Levy area), the other methods a
    :class:`~nodedsl.solvers.brownian.GridBrownian` on the solver's step grid (the same increments in
    distribution, drawn at once: ~7x faster sampling). ``interval=True``: always the
    ``BrownianInterval``, which gives the same path at every step size (convergence studies).
    """
    seed = solver.seed if seed is None else seed
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    if solver.method != "srk" and not interval:
        grid = sde_grid(t.tolist(), solver.step_size)
        return GridBrownian(grid, (x0.shape[0], channels), seed, dtype=x0.dtype, device=x0.device)
    return torchsde.BrownianInterval(
        t0=float(t[0]),
        t1=float(t[-1]),
        size=(x0.shape[0], channels),
        dtype=x0.dtype,
        device=x0.device,
        entropy=seed,
        levy_area_approximation="none" if solver.method != "srk" else "space-time",
    )


def sdeint(
    drift: Field,
    diffusion: Field,
    x0: torch.Tensor,
    t: torch.Tensor,
    *,
    solver: SDESolver | str,
    noise: Noise | None = None,
    bm: Any = None,
    seed: int | None = None,
    gradient: str = "backprop",
) -> SolveResult:
    """Sample paths of ``dx = drift(t, x) dt + diffusion(t, x) dW`` from ``x0`` (``[batch, n]``).

    ``ys[i]`` (``[len(t), batch, n]``) is the state at ``t[i]``. ``bm``: a torchsde Brownian motion
    to drive the paths (default: :func:`brownian` from ``seed``). ``gradient``: ``"backprop"``
    (through the solver) or ``"adjoint"`` (torchsde's stochastic adjoint: memory independent of the
    number of steps; ``drift``/``diffusion`` must be ``nn.Module`` s holding the parameters).
    """
    if isinstance(solver, str):
        solver = make_sde_solver(solver)
    if not isinstance(solver, SDESolver):
        raise SolverError(f"an SDE needs an SDE solver ({', '.join(METHODS)}), not '{solver.name}'", option="solver")
    t = check_inputs(x0, t)
    noise = noise or Noise("diagonal")
    solver.check_noise(noise)
    if gradient not in ("backprop", "adjoint"):
        raise SolverError(f"gradient must be 'backprop' or 'adjoint' for an SDE, got {gradient!r}", option="gradient")
    if gradient == "adjoint" and noise.torchsde_type == "general" and solver.sde_type == "ito":
        raise SolverError("the adjoint of an Ito SDE needs diagonal, scalar or additive noise", option="gradient")
    stats = SolveStats()
    if len(t) == 1:
        return SolveResult(x0.unsqueeze(0), t, stats, solver.name)
    if bm is None:
        channels = x0.shape[1] if noise.kind == "diagonal" else noise.channels
        if channels is None:
            raise SolverError("general noise needs its number of Wiener processes (Noise.channels)")
        bm = brownian(solver, x0, t, channels, seed)
    ys = _integrate(solver, drift, diffusion, x0, t, noise, bm, gradient, stats)
    return SolveResult(ys, t, stats, solver.name)


def _integrate(
    solver: SDESolver,
    drift: Field,
    diffusion: Field,
    x0: torch.Tensor,
    t: torch.Tensor,
    noise: Noise,
    bm: Any,
    gradient: str,
    stats: SolveStats,
) -> torch.Tensor:
    sde = _SDE(drift, diffusion, noise, solver.sde_type, stats)
    if bm is None:
        bm = brownian(solver, x0, t, x0.shape[1], 0)
    params = [p for m in (drift, diffusion) if isinstance(m, torch.nn.Module) for p in m.parameters()]
    run: Callable[..., Any] = torchsde.sdeint
    extra: dict[str, Any] = {}
    if gradient == "adjoint":
        run, extra = torchsde.sdeint_adjoint, {"adjoint_params": params}
    times = t.tolist()
    ys, x = [x0], x0
    for (n, h), a, b in zip(sde_plan(times, solver.step_size), times, times[1:]):
        # a step a hair longer than h makes exactly n steps, the last clamped to b by torchsde
        ts = t.new_tensor([a, b])
        x = run(sde, x, ts, bm=bm, method=solver.method, dt=abs(h) * (1 + 1e-9), **extra)[-1]
        stats.steps += n
        ys.append(x)
    return torch.stack(ys)
