"""Parameter recovery of SDE models from sample paths, through the whole pipeline (.node -> train).

1. Ornstein-Uhlenbeck ``der(x) = theta * (mu - x)``, ``noise(x) = sigma``: theta, mu, sigma learned from
   32 sample paths by ``objective = transition_likelihood`` (the Euler-Maruyama likelihood; a smooth
   full-batch objective, so L-BFGS).
2. Double-well Langevin ``der(x) = x - x^3``, ``noise(x) = 0.5`` (wells at +-1): a drift net and a
   learned sigma, fitted to 256 sample paths from x0 ~ normal(0, 1) by ``objective =
   distribution(metric = energy, samples = 4)`` (four simulated paths start at each observed initial
   state; the (x(0), x(t)) pairs are matched at every observation time; backprop through
   Euler-Maruyama). docs/stochastic.md lists the other settings tried.

Prints the recovered values and their errors. Usage::

    python benchmarks/sde_recovery.py            # both
    python benchmarks/sde_recovery.py ou         # one
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.train import run_training, select_train

OU = """
model OU {
    state x = 0.0
    param theta = 1.0 learn positive
    param mu = 0.0 learn
    param sigma = 0.1 learn positive
    der(x) = theta * (mu - x)
    noise(x) = sigma
}
model OUTruth {
    state x = 0.0
    param theta = 2.0
    param mu = 0.5
    param sigma = 0.3
    der(x) = theta * (mu - x)
    noise(x) = sigma
}
dataset paths {
    model = OUTruth
    trajectories = 32
    time = span(0, 100, step = 0.01)
    initial = { x = uniform(-1, 2) }
    solver = euler_maruyama(step = 0.005)
    seed = 0
}
train OU {
    data = paths
    objective = transition_likelihood
    epochs = 20
    batch = 32
    validation = 0
    optimizer = lbfgs(lr = 1, max_iter = 50)
}
"""

DOUBLE_WELL = """
model Langevin {
    state x = 0.0
    net f(x) -> 1 { hidden = [32, 32], activation = tanh }
    param sigma = 0.2 learn positive
    der(x) = f(x)
    noise(x) = sigma
}
model DoubleWell {
    state x = 0.0
    param sigma = 0.5
    der(x) = x - x^3
    noise(x) = sigma
}
dataset ensemble {
    model = DoubleWell
    trajectories = 256
    time = span(0, 4, step = 0.2)
    initial = { x = normal(0, 1) }
    solver = euler_maruyama(step = 0.005)
    seed = 1
}
train Langevin {
    data = ensemble
    objective = distribution(metric = energy, samples = 4)
    solver = euler_maruyama(step = 0.05)
    epochs = 400
    batch = 256
    validation = 0
    optimizer = adam(lr = 2e-2)
    schedule = cosine(min_lr = 2e-3)
    seed = 0
}
"""


def _train(source: str, name: str, run: Path):
    prog = nodedsl.loads(source, f"<{name}>")
    started = time.perf_counter()
    result = run_training(prog, select_train(prog), run_dir=run)
    return prog, result, time.perf_counter() - started


def ou(run: Path) -> None:
    _, result, wall = _train(OU, "ou", run)
    truth = {"theta": 2.0, "mu": 0.5, "sigma": 0.3}
    print(f"OU, transition likelihood, 32 paths x 10,000 transitions ({wall:.1f} s):")
    for k, v in truth.items():
        got = result.parameters[k]
        print(f"  {k:6s} true {v:.3f}  learned {got:.4f}  error {100 * abs(got - v) / v:.2f}%")


def double_well(run: Path) -> None:
    prog, result, wall = _train(DOUBLE_WELL, "double_well", run)
    model = prog.model("Langevin")
    state = torch.load(run / "model.pt", weights_only=False)["model_state"]
    model.load_state_dict(state)
    xs = torch.linspace(-1.8, 1.8, 3601, dtype=model.x0_default.dtype)[:, None]
    with torch.no_grad():
        f = model.field(0.0, xs)[:, 0]
    # stable equilibria: the drift crosses zero from + to -
    wells = [float(xs[i, 0] + xs[i + 1, 0]) / 2 for i in range(len(xs) - 1) if f[i] > 0 >= f[i + 1]]
    sigma = result.parameters["sigma"]
    print(f"double-well Langevin, energy distance, 256 paths x 20 times ({wall:.1f} s):")
    print(f"  sigma  true 0.500  learned {sigma:.4f}  error {100 * abs(sigma - 0.5) / 0.5:.2f}%")
    print(f"  wells  true -1, +1  learned {', '.join(f'{w:+.3f}' for w in wells)}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    which = sys.argv[1:] or ["ou", "double_well"]
    with tempfile.TemporaryDirectory() as tmp:
        for job in which:
            {"ou": ou, "double_well": double_well}[job](Path(tmp) / job)
