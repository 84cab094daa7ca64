"""A learned nonlinear resistor in a port-Hamiltonian circuit (issue 18): examples/rlc.node trains the
series RLC `RLC` (stdlib inductor, capacitor and voltage source, a net `g` as the resistor's stateless
relation `y = r u + g(u)`) on multisine-driven data of `RLCTruth` (resistor `v = 0.3 i + 0.4 i^3`), then
compares the learned curve `r i + g(i)` with the truth over the range of loop currents seen in the data.

Usage: python benchmarks/rlc_resistor.py [EPOCHS]   (default: the train block's)
Prints the training time, the data's current range, and the curve's maximum error inside it as a
fraction of the largest true voltage there (target: under 5%), also over the central 90% of currents.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.simulate import dataset_table
from nodedsl.train import run_training, select_train

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "rlc.node"


def truth(i: torch.Tensor) -> torch.Tensor:
    return 0.3 * i + 0.4 * i**3


def resistor_curve(model, i: torch.Tensor) -> torch.Tensor:
    """The learned resistor voltage at loop current ``i``, read off the trained field: with ``q = 0`` and
    ``V = 0`` Kirchhoff's law leaves ``d phi/dt = -v_R(i)`` (``phi = L i``, ``L = 1``)."""
    dtype = model.x0_default.dtype
    x = torch.stack([i, torch.zeros_like(i)], -1).to(dtype)
    with torch.no_grad():
        return -model.field(0.0, x, torch.zeros(len(i), 1, dtype=dtype))[:, 0].double()


def main(epochs: str | None) -> None:
    torch.set_num_threads(1)
    prog = nodedsl.load(EXAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"epochs": epochs} if epochs else {}
        t0 = time.perf_counter()
        result = run_training(prog, select_train(prog), overrides=overrides, run_dir=Path(tmp) / "run")
        wall = time.perf_counter() - t0
        model = nodedsl.load_run(Path(tmp) / "run")
    table = dataset_table(prog, "driven")  # the training data: loop current i = phi / L (L = 1)
    currents = torch.tensor(table.rows[:, table.columns.index("inductor.phi")], dtype=torch.float64)
    lo, hi = float(currents.min()), float(currents.max())
    probs = torch.tensor([0.01, 0.05, 0.95, 0.99], dtype=torch.float64)
    q01, q05, q95, q99 = (float(v) for v in torch.quantile(currents, probs))
    print(f"epochs {result.epochs_run}, training wall time {wall:.1f} s (2 shared CPU cores)")
    print(f"loop current in the data: [{lo:.3f}, {hi:.3f}] (5-95%: [{q05:.3f}, {q95:.3f}])")
    for label, a, b in (("whole range", lo, hi), ("central 98%", q01, q99), ("central 90%", q05, q95)):
        i = torch.linspace(a, b, 401, dtype=torch.float64)
        got = resistor_curve(model, i)
        want = truth(i)
        err = float((got - want).abs().max() / want.abs().max())
        print(f"{label}: max |learned - true| = {100 * err:.2f}% of max |v| = {float(want.abs().max()):.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
