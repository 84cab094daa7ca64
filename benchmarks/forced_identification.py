"""System identification with a forced experiment (issue 18): examples/forced_msd.node trains a
mass-spring-damper with an unknown friction net on multisine-driven data (dataset `excited`), then the
trained run predicts a held-out chirp-driven trajectory (dataset `sweep`, written by `nodedsl data`).

Usage: python benchmarks/forced_identification.py [EPOCHS]   (default: the train block's 200)
Prints the training time, the learned stiffness (truth 2) and the held-out rollout RMSE as a fraction
of each output's range (target: under 2%).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.simulate import dataset_table, write_csv
from nodedsl.train import evaluate, run_training, select_train

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "forced_msd.node"


def main(epochs: str | None) -> None:
    torch.set_num_threads(1)
    prog = nodedsl.load(EXAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = Path(tmp) / "sweep.csv"
        write_csv(dataset_table(prog, "sweep"), str(sweep))
        overrides = {"epochs": epochs} if epochs else {}
        t0 = time.perf_counter()
        result = run_training(prog, select_train(prog), overrides=overrides, run_dir=Path(tmp) / "run")
        wall = time.perf_counter() - t0
        out = evaluate(prog, None, Path(tmp) / "run", sweep)
    print(f"epochs {result.epochs_run}, training wall time {wall:.1f} s (2 shared CPU cores)")
    print(f"learned k = {result.parameters['k']:.4f} (truth 2)")
    for name, e in out["per_output"].items():
        print(f"held-out chirp, {name}: RMSE {e['rmse']:.4g} = {100 * e['nrmse']:.2f}% of its range")
    print(f"held-out chirp, mean normalized RMSE {100 * out['nrmse']:.2f}% (target < 2%)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
