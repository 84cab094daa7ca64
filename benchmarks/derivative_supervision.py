"""Derivative supervision: plain multiple shooting vs + ndo, + spline, + finite_difference.

Not a test: run it by hand and paste the tables into docs/benchmarks.md (2 shared CPU cores, 1 thread).

    python benchmarks/derivative_supervision.py                 # both systems, seeds 0 1
    python benchmarks/derivative_supervision.py --seeds 0 --epochs 60

Systems (each trained on the SAME data by every method, through ``nodedsl.train.loop.fit``):

* **stiff Van der Pol** (mu = 4), a neural ODE ``der(x, v) = f(x, v)`` (MLP 32x32 tanh, ``scale = auto``)
  on 8 trajectories of 6 s sampled every 0.1 s, noise 0.02; rk4 at the sampling step, window 10;
* **Lotka-Volterra**, the four-parameter model of examples/lotka_volterra.node, on SPARSE NOISY data:
  6 trajectories of 20 s sampled every 0.5 s, noise 0.3 (about 4 % of the populations); rk4 with step 0.25, window 10, batch 8.

Test error: 6 held-out trajectories (another seed) rolled out with rk4 (step 0.01; 0.02 for Lotka-Volterra) from the TRUE initial
state over the whole horizon, RMSE against the noise-free states (median over seeds). Equal epochs: every
method trains ``--epochs`` epochs. Equal wall time: each method trains for the wall time of plain's
equal-epoch run: the state after its last epoch that
ended within that time (snapshots after every epoch; the targets' estimation counts toward its time). The operator's own derivative error on
held-out basis functions (clean and with 2 % noise, beside finite differences) is printed first.
``--weight`` sets every derivative term's weight (default 1).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

import nodedsl
from nodedsl.data.windows import make_windows
from nodedsl.frontend.config import validate_train
from nodedsl.solvers import make_solver
from nodedsl.train.derivsup import DerivativeTargets
from nodedsl.train.inputs import compiled_model, load_training_data
from nodedsl.train.loop import fit
from nodedsl.train.rollout import observation_map, rollout
from nodedsl.train.scaling import set_auto_scales

VDP = """
model Truth { state x = 2
    state v = 0
    der(x) = v
    der(v) = 4 * (1 - x^2) * v - x }
model Learn { state x = 2
    state v = 0
    net f(x, v) -> 2 { hidden = [32, 32], activation = tanh, scale = auto }
    der(x) = f(x, v)[0]
    der(v) = f(x, v)[1] }
dataset train_data { model = Truth
    trajectories = 8
    time = span(0, 6, step = 0.1)
    initial = { x = uniform(-2.5, 2.5), v = uniform(-3, 3) }
    noise = 0.02
    seed = 1 }
dataset test_data { model = Truth
    trajectories = 6
    time = span(0, 6, step = 0.1)
    initial = { x = uniform(-2.5, 2.5), v = uniform(-3, 3) }
    seed = 99 }
train Learn { data = train_data
    solver = rk4
    window = 10
    batch = 8
    validation = 0
    horizon = full
    optimizer = adam(lr = 5e-3)
    DERIV }
"""

LV = """
model Truth { state prey = 10
    state predator = 5
    der(prey) = 1.1 * prey - 0.4 * prey * predator
    der(predator) = 0.1 * prey * predator - 0.4 * predator }
model Learn { state prey = 10
    state predator = 5
    param alpha = 1.0 learn positive
    param beta  = 0.05 learn positive
    param delta = 0.05 learn positive
    param gamma = 1.0 learn in [0.1, 5]
    der(prey) = alpha * prey - beta * prey * predator
    der(predator) = delta * prey * predator - gamma * predator }
dataset train_data { model = Truth
    trajectories = 6
    time = span(0, 20, step = 0.5)
    initial = { prey = uniform(5, 15), predator = uniform(2, 8) }
    noise = 0.3
    seed = 3 }
dataset test_data { model = Truth
    trajectories = 6
    time = span(0, 20, step = 0.5)
    initial = { prey = uniform(5, 15), predator = uniform(2, 8) }
    seed = 98 }
train Learn { data = train_data
    solver = rk4(step = 0.25)
    window = 10
    batch = 8
    validation = 0
    horizon = full
    optimizer = adam(lr = 5e-2)
    DERIV }
"""

METHODS = {
    "plain": "",
    "ndo": "derivatives = ndo",
    "spline": "derivatives = spline",
    "fd": "derivatives = finite_difference",
}


def train_once(src: str, method: str, seed: int, epochs: int):
    """Train one method; returns the program, the model, the wall time and a snapshot of the model's
    state after every epoch with the wall time spent so far (estimation of the targets included)."""
    prog = nodedsl.loads(src.replace("DERIV", METHODS[method] + f"\n    seed = {seed}"))
    cfg = validate_train(prog.trains[0])[0].model_copy(update={"epochs": epochs})
    model = compiled_model(prog, "Learn", seed)
    traj, _ = load_training_data(prog, cfg, model)
    set_auto_scales(model, traj)
    w = make_windows(traj, cfg.window)
    started = time.perf_counter()
    targets = DerivativeTargets(model, traj, w, observation_map(model), cfg.derivatives) if cfg.derivatives else None
    snaps = []

    def progress(epoch, *_):
        snaps.append((time.perf_counter() - started, {k: v.detach().clone() for k, v in model.state_dict().items()}))

    fit(model, w, None, cfg, derivatives=targets, progress=progress)
    return prog, model, time.perf_counter() - started, snaps


def test_error(prog, model, step: float) -> float:
    test = prog.dataset("test_data")
    from nodedsl.data.synth import generate
    from nodedsl.frontend.config import validate_dataset

    dcfg = validate_dataset(test)[0]
    traj = generate(compiled_model(prog, "Truth", 0), dcfg)
    states = rollout(model, traj.x[:, 0], traj.t, traj.u, make_solver("rk4", step=step), traj.lengths)
    err = float((states - traj.x).pow(2).mean().sqrt())
    return err if math.isfinite(err) else float("inf")


def operator_error() -> None:
    from nodedsl.train.ndo import load_operator
    from nodedsl.train.ndo_pretrain import held_out_error

    net = load_operator()
    for label, noise in (("clean", 0.0), ("2% noise", 0.02)):
        e = held_out_error(net, n=4000, noise=noise)
        print(
            f"NDO operator, held-out basis functions ({label}): relative L2 error median {e['median']:.4f}, "
            f"p90 {e['p90']:.4f}; finite differences median {e['fd_median']:.4f}, p90 {e['fd_p90']:.4f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--systems", nargs="+", default=["vdp", "lv"])
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the derivative term")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for m in ("ndo", "spline", "fd"):
        METHODS[m] = METHODS[m] + f"(weight = {args.weight})"
    operator_error()
    for name in args.systems:
        src = VDP if name == "vdp" else LV
        rows: dict[str, dict[str, list]] = {m: {"epochs": [], "time": [], "wall": [], "eq_epochs": []} for m in METHODS}
        for seed in args.seeds:
            runs = {method: train_once(src, method, seed, args.epochs) for method in METHODS}  # interleaved
            budget = runs["plain"][2]
            for method, (prog, model, wall, snaps) in runs.items():
                rows[method]["epochs"].append(test_error(prog, model, 0.01 if name == "vdp" else 0.02))
                rows[method]["wall"].append(wall)
                # equal wall time: the state after the last epoch that ended within plain's wall time
                within = [i for i, (t, _) in enumerate(snaps) if t <= budget * 1.001] or [0]
                model.load_state_dict(snaps[within[-1]][1])
                rows[method]["time"].append(test_error(prog, model, 0.01 if name == "vdp" else 0.02))
                rows[method]["eq_epochs"].append(within[-1] + 1)
                print(f"  {name} seed {seed} {method}: {rows[method]['epochs'][-1]:.4g} in {wall:.1f} s", flush=True)
        print(f"\n{name}: test rollout RMSE (median over seeds {args.seeds}), {args.epochs} epochs")
        print("| method | equal epochs | wall s | equal wall time | epochs in that time |")
        print("|---|---|---|---|---|")
        for method, r in rows.items():
            print(
                f"| {method} | {statistics.median(r['epochs']):.4g} | {statistics.median(r['wall']):.1f} | "
                f"{statistics.median(r['time']):.4g} | {statistics.median(r['eq_epochs']):.0f} |"
            )
        print("per seed, equal epochs:", {m: [round(v, 4) for v in r["epochs"]] for m, r in rows.items()})


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
