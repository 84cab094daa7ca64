"""Second-order optimizers vs Adam and L-BFGS: wall time to a target validation loss.

Two problems, each trained by ``nodedsl.train.run_training`` from the same initial parameters, with
only the ``optimizer`` changed (``constraints = none`` everywhere: ``gauss_newton`` needs a sum of
squares, and the comparison should be of the optimizers alone):

(a) **Lotka-Volterra parameter estimation** (``examples/lotka_volterra.node``: 4 rate parameters,
    8 noisy trajectories), ``solver = rk4(step = 0.1)``, ``window = 20``, one batch per epoch. Target:
    validation loss (data MSE on held-out windows) <= ``2 x`` that of the true parameters.
(b) **The pendulum hybrid** (``examples/pendulum.node``: known gravity, learned length ``L`` and a
    friction net), with the net narrowed to one hidden layer of 16 so that ``gauss_newton`` (50
    parameters) applies. Target: validation loss <= 4e-4 (the data noise is 0.01: a floor of 1e-4).

Reported per optimizer: the first epoch whose validation loss meets the target and the training wall
time up to it (the trainer's ``wall_time``: optimizer steps only, validation excluded), or the best
validation loss when the target is not met within the epoch cap; ``kfac`` on (a) has no net to
precondition and says so. One run per optimizer (training is deterministic from ``seed``; the wall
times carry the noise of 2 shared cores), one intra-op thread.

    python benchmarks/second_order.py            # ~10 min on 2 shared cores
    python benchmarks/second_order.py --quick    # fewer epochs
    python benchmarks/second_order.py --problems pendulum --epochs 10 --optimizers "kfac(lr = 0.2)" "adam(lr = 1e-2)"
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.train import run_training, select_train

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = {
    "lv": ["adam(lr = 0.02)", "lbfgs(lr = 1, max_iter = 20)", "gauss_newton(damping = 1e-3)", "kfac(lr = 0.05)"],
    "pendulum": ["adam(lr = 3e-3)", "lbfgs(lr = 1, max_iter = 20)", "gauss_newton(damping = 1e-3)", "kfac(lr = 0.05)"],
}


def lv_floor(prog) -> float:
    """Validation loss of the true parameters (the noise floor), by one epoch at learning rate ~0."""
    src = (ROOT / "examples/lotka_volterra.node").read_text()
    truth = {"alpha": 1.1, "beta": 0.4, "delta": 0.1, "gamma": 0.4}
    for k, v in truth.items():
        src = re.sub(rf"param {k}\s*= [0-9.]+ (learn[^\n]*)", rf"param {k} = {v} \1", src, count=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lv.node"
        path.write_text(src)
        p = nodedsl.load(path)
        over = {"epochs": "1", "optimizer": "adam(lr = 1e-12)", "constraints": "none", **LV_OVERRIDES}
        res = run_training(p, select_train(p), overrides=over, run_dir=Path(tmp) / "run")
    return res.history[0]["val_loss"]


LV_OVERRIDES = {"solver": "rk4(step = 0.1)", "window": "20", "batch": "64"}


def pendulum_source() -> str:
    src = (ROOT / "examples/pendulum.node").read_text()
    return src.replace("hidden = [32, 32]", "hidden = [16]")


def run(prog, optimizer: str, overrides: dict, target: float, tmp: Path) -> str:
    over = {"optimizer": optimizer, "constraints": "none", **overrides}
    start = time.perf_counter()
    try:
        res = run_training(prog, select_train(prog), overrides=over, run_dir=tmp / re.sub(r"\W", "_", optimizer))
    except NodeDslError as err:
        return f"| `{optimizer}` | not applicable: {err.diagnostics[0].message} | | | |"
    total = time.perf_counter() - start
    hit = next((h for h in res.history if h["val_loss"] is not None and h["val_loss"] <= target), None)
    best = min(h["val_loss"] for h in res.history)
    if hit is None:
        return (
            f"| `{optimizer}` | not reached in {res.epochs_run} epochs | - | {best:.2e} | "
            f"{res.history[-1]['wall_time']:.1f} s ({total:.0f} s with setup) |"
        )
    return (
        f"| `{optimizer}` | epoch {hit['epoch']} | {hit['wall_time']:.1f} s | {best:.2e} | "
        f"{res.history[-1]['wall_time']:.1f} s ({total:.0f} s with setup) |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--problems", nargs="*", default=["lv", "pendulum"])
    ap.add_argument("--optimizers", nargs="*", help="optimizer calls to compare instead of the default four")
    ap.add_argument("--epochs", type=int, help="epoch cap instead of 40 (lv) / 20 (pendulum)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    header = "| optimizer | target reached | wall time to target | best val. loss | wall time, all epochs |\n|---|---|---|---|---|"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "lv" in args.problems:
            prog = nodedsl.load(ROOT / "examples/lotka_volterra.node")
            floor = lv_floor(prog)
            target = 2 * floor
            print(f"\n(a) Lotka-Volterra: noise floor (true parameters) {floor:.2e}, target {target:.2e}")
            print(header)
            epochs = str(args.epochs or (10 if args.quick else 40))
            for opt in args.optimizers or OPTIMIZERS["lv"]:
                print(run(prog, opt, {**LV_OVERRIDES, "epochs": epochs}, target, tmp), flush=True)
        if "pendulum" in args.problems:
            path = tmp / "pendulum.node"
            path.write_text(pendulum_source())
            prog = nodedsl.load(path)
            target = 4e-4
            print(f"\n(b) pendulum hybrid (net 1-16-1, 50 parameters): target {target:.0e}")
            print(header)
            epochs = str(args.epochs or (5 if args.quick else 20))
            for opt in args.optimizers or OPTIMIZERS["pendulum"]:
                print(run(prog, opt, {"epochs": epochs}, target, tmp), flush=True)


if __name__ == "__main__":
    main()
