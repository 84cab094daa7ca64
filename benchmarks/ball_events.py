"""Learning a bouncing ball through its events: restitution ``e`` and gravity ``g`` from heights.

The data are 8 noisy trajectories of ``examples/ball.node``'s ``BallTruth`` (``e = 0.8``,
``g = 9.81``, heights with noise 0.005, 0 to 3 s every 0.02 s, the example's initial ranges). The
model is the example's ``Ball`` (starting at ``e = 0.5``, ``g = 9``), integrated with events by
``rk4(step = 0.02)`` in float64; each trajectory's initial state is learned with the parameters
(single shooting over the whole 3 s, Adam). Prints the learned values and their errors, and the
wall time per iteration (a 2-core machine shared with other jobs).

Usage: python benchmarks/ball_events.py [iterations] [learning rate]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.solvers import make_solver, solve

ROOT = Path(__file__).resolve().parent.parent


def main(iterations: int = 300, lr: float = 2e-2) -> None:
    torch.set_num_threads(1)
    prog = nodedsl.load(ROOT / "examples" / "ball.node")
    truth = prog.model("BallTruth").double()
    model = prog.model("Ball").double()
    g = torch.Generator().manual_seed(0)
    n = 8
    x0 = torch.stack([0.5 + 1.5 * torch.rand(n, generator=g), -1 + 2 * torch.rand(n, generator=g)], -1).double()
    t = torch.linspace(0, 3, 151, dtype=torch.float64)
    solver = make_solver("rk4", step=0.02)
    with torch.no_grad():
        clean = solve(truth, x0, t, solver=solver)
        y = clean.ys[:, :, 0] + 0.005 * torch.randn(len(t), n, generator=g, dtype=torch.float64)
    print(f"data: {n} trajectories, {len(clean.events)} bounces in all")
    start = torch.stack([y[0], torch.zeros(n, dtype=torch.float64)], -1).clone().requires_grad_(True)
    opt = torch.optim.Adam([*model.parameters(), start], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    tic = time.perf_counter()
    for it in range(iterations):
        opt.zero_grad()
        ys = solve(model, start, t, solver=solver).ys
        loss = (ys[:, :, 0] - y).pow(2).mean()
        loss.backward()
        opt.step()
        sched.step()
        if it % 25 == 0 or it == iterations - 1:
            p = model.parameter_values()
            print(f"iter {it:4d}  loss {loss.item():.3e}  g {p['g']:.4f}  e {p['e']:.4f}", flush=True)
    wall = time.perf_counter() - tic
    p = model.parameter_values()
    print(
        f"learned g = {p['g']:.4f} (error {abs(p['g'] - 9.81) / 9.81:.2%}), "
        f"e = {p['e']:.4f} (error {abs(p['e'] - 0.8) / 0.8:.2%}); {wall / iterations:.2f} s per iteration"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, float(sys.argv[2]) if len(sys.argv) > 2 else 2e-2)
