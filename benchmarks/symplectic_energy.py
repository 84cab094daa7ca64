"""Energy error of leapfrog, implicit midpoint and rk4 over 10^5 steps on two R = 0 models.

Writes docs/symplectic_energy.png and prints the maximum |H - H0| / H0 per solver, first and last
tenth of the run (a drift shows as a larger last tenth). Usage: python benchmarks/symplectic_energy.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.solvers import make_solver, solve

MODELS = """
model Oscillator : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param m = 1.0
    param k = 1.0
    hamiltonian = p^2 / (2 * m) + k * q^2 / 2
}

model Duffing : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    hamiltonian = p^2 / 2 + q^2 / 2 + q^4 / 4
}
"""

STEP, STEPS = 0.1, 100_000


def main() -> None:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    prog = nodedsl.loads(MODELS)
    t = torch.linspace(0.0, STEP * STEPS, STEPS // 100 + 1)  # outputs every 100 steps
    results = {}
    for name in ("Oscillator", "Duffing"):
        model = prog.model(name)
        x0 = model.x0_default[None]
        H0 = float(model.hamiltonian(x0))
        for solver in ("leapfrog", "implicit_midpoint", "rk4"):
            start = time.perf_counter()
            with torch.no_grad():
                ys = solve(model, x0, t, solver=make_solver(solver, step=STEP)).ys[:, 0]
            err = ((model.hamiltonian(ys) - H0) / H0).abs()
            tenth = len(err) // 10
            results[(name, solver)] = err
            print(
                f"{name:10s} {solver:18s} max rel. error first tenth {float(err[:tenth].max()):.2e}  "
                f"last tenth {float(err[-tenth:].max()):.2e}  ({time.perf_counter() - start:.1f} s)"
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, name in zip(axes, ("Oscillator", "Duffing")):
        for solver in ("leapfrog", "implicit_midpoint", "rk4"):
            ax.semilogy(t.numpy(), results[(name, solver)].clamp_min(1e-16).numpy(), label=solver, lw=1)
        ax.set_title(f"{name}: |H - H0| / H0, step {STEP}, {STEPS:,} steps")
        ax.set_xlabel("t")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("relative energy error")
    axes[0].legend()
    fig.tight_layout()
    out = Path(__file__).resolve().parent.parent / "docs" / "symplectic_energy.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
