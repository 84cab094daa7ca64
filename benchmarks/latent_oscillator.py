"""A 2-state linear oscillator observed through its position, its velocity declared latent.

`x' = v, v' = -k x - c v` (truth k = 2, c = 0.1) learned from k = 1, c = 0.05 with
`window_init = encoder(hidden = 16, steps = 6)`; then 20 held-out noise-free trajectories are cut into
windows, the encoder estimates each window's v from its first 6 observations, and the learned model
predicts the window. Prints the learned parameters and the held-out RMSE as a percentage of the range
(the target of issue 14 is 1%). tests/test_latent.py runs a shorter version.

    python benchmarks/latent_oscillator.py [--epochs 150] [--lr 3e-2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_latent import SRC, held_out_rmse

import nodedsl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--lr", type=float, default=3e-2)
    ap.add_argument("--trajectories", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)
    text = (
        SRC.replace("epochs = 50", f"epochs = {args.epochs}")
        .replace("adam(lr = 5e-2)", f"adam(lr = {args.lr})")
        .replace("trajectories = 16", f"trajectories = {args.trajectories}")
    )
    started = time.perf_counter()
    params, rmse, span = held_out_rmse(nodedsl.loads(text, "osc.node"))
    print(
        f"epochs {args.epochs}, lr {args.lr}, {args.trajectories} trajectories: k = {params['k']:.4f}, "
        f"c = {params['c']:.4f}; held-out window RMSE {rmse:.4f} = {100 * rmse / span:.2f}% of the range "
        f"({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
