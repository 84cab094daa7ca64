"""Learning a bouncing ball through its events: restitution ``e`` and gravity ``g`` from heights.

The data are 8 noisy trajectories of ``examples/ball.node``'s ``BallTruth`` (``e = 0.8``,
``g = 9.81``, heights with noise 0.005, 0 to 3 s every 0.02 s, the example's initial ranges). The
model is the example's ``Ball`` (starting at ``e = 0.5``, ``g = 9``), integrated with events by
``rk4(step = 0.02)`` in float64; each trajectory's initial state is learned with the parameters
(18 unknowns). The optimizer is nodedsl's ``gauss_newton`` (Levenberg-Marquardt,
``nodedsl.train.second_order.GaussNewton``) on the residuals of a horizon that grows (the first
30, 60, 100, then all 150 steps: the ``horizon = grow`` idea, so the bounces are matched in order
and the fit never has to jump a bounce it missed). Prints the learned values, their errors, and the
wall time (a 2-core machine shared with other jobs).

``--check`` first compares the gradient of the loss (through the event times and resets) with
central finite differences at the point where single-shooting Adam stalled (``g = 9.54``,
``e = 0.79``, the true initial states).

Usage: python benchmarks/ball_events.py [--check] [steps per stage, e.g. 4,3,3,3]
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.solvers import make_solver, solve
from nodedsl.train.second_order import GaussNewton

ROOT = Path(__file__).resolve().parent.parent
HORIZONS = (30, 60, 100, 150)
G, E = 9.81, 0.8


def data(n: int = 8):
    prog = nodedsl.load(ROOT / "examples" / "ball.node")
    truth = prog.model("BallTruth").double()
    gen = torch.Generator().manual_seed(0)
    x0 = torch.stack([0.5 + 1.5 * torch.rand(n, generator=gen), -1 + 2 * torch.rand(n, generator=gen)], -1).double()
    t = torch.linspace(0, 3, 151, dtype=torch.float64)
    solver = make_solver("rk4", step=0.02)
    with torch.no_grad():
        clean = solve(truth, x0, t, solver=solver)
        y = clean.ys[:, :, 0] + 0.005 * torch.randn(len(t), n, generator=gen, dtype=torch.float64)
    print(f"data: {n} trajectories, {len(clean.events)} bounces in all")
    return prog.model("Ball").double(), x0, t, y, solver


def _set(model, g: float, e: float) -> None:
    """The raw (reparametrized) values for ``g`` (``learn positive``) and ``e`` (``learn in [0, 1]``)."""
    with torch.no_grad():
        model.learned["g"].fill_(math.log(math.expm1(g)))
        model.learned["e"].fill_(math.log(e / (1 - e)))


def check_gradient(model, x0, t, y, solver, eps: float = 1e-6) -> None:
    _set(model, 9.54, 0.79)
    start = x0.clone().requires_grad_(True)

    def loss() -> torch.Tensor:
        return (solve(model, start, t, solver=solver).ys[:, :, 0] - y).pow(2).mean()

    model.zero_grad()
    loss().backward()
    pairs = [(f"raw {k}", p, 0) for k, p in model.learned.items()]
    pairs += [(f"start[{r}, {c}]", start, 2 * r + c) for r, c in ((0, 0), (0, 1), (4, 0), (4, 1))]
    with torch.no_grad():
        for name, leaf, i in pairs:
            grad, vec = float(leaf.grad.view(-1)[i]), leaf.view(-1)
            old = float(vec[i])
            vec[i] = old + eps
            up = float(loss())
            vec[i] = old - eps
            down = float(loss())
            vec[i] = old
            fd = (up - down) / (2 * eps)
            print(
                f"d loss / d {name:12s}  autograd {grad: .6e}  finite differences {fd: .6e}  rel {abs(grad - fd) / abs(fd):.1e}"
            )


def main(steps: tuple[int, ...] = (4, 3, 3, 3), check: bool = False) -> None:
    torch.set_num_threads(1)
    model, x0, t, y, solver = data()
    if check:
        check_gradient(model, x0, t, y, solver)
        _set(model, 9.0, 0.5)
    v0 = (-3 * y[0] + 4 * y[1] - y[2]) / (2 * float(t[1] - t[0]))  # one-sided difference of the heights
    start = torch.stack([y[0], v0], -1).clone().requires_grad_(True)
    opt = GaussNewton([*model.parameters(), start], damping=1e-3)
    tic = time.perf_counter()
    for horizon, count in zip(HORIZONS, steps):
        tk, yk = t[: horizon + 1], y[: horizon + 1]

        def residuals(tk=tk, yk=yk) -> torch.Tensor:
            return ((solve(model, start, tk, solver=solver).ys[:, :, 0] - yk) / math.sqrt(yk.numel())).reshape(-1)

        for it in range(count):
            loss = opt.step(residuals)
            p = model.parameter_values()
            print(
                f"horizon {horizon:3d} step {it}  loss before {loss.item():.3e}  g {p['g']:.4f}  e {p['e']:.4f}  "
                f"({time.perf_counter() - tic:.0f} s)",
                flush=True,
            )
    wall = time.perf_counter() - tic
    with torch.no_grad():
        final = float((solve(model, start, t, solver=solver).ys[:, :, 0] - y).pow(2).mean())
    p = model.parameter_values()
    print(
        f"learned g = {p['g']:.4f} (error {abs(p['g'] - G) / G:.3%}), e = {p['e']:.4f} "
        f"(error {abs(p['e'] - E) / E:.3%}); final MSE {final:.3e} (noise variance 2.5e-5); {wall:.0f} s in all"
    )


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--check"]
    main(tuple(int(s) for s in args[0].split(",")) if args else (4, 3, 3, 3), "--check" in sys.argv)
