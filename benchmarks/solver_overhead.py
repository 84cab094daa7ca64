"""Per-evaluation overhead of the RK4 loop: nodedsl vs torchdiffeq vs the field alone.

Not a test: run it by hand and paste the table into docs/solvers.md.

    python benchmarks/solver_overhead.py            # default: 1 intra-op thread, 15 repeats
    python benchmarks/solver_overhead.py --threads 2 --repeats 25

For each field (a small MLP and a pendulum) and batch size, it times
``field(t, x)`` alone, ``solve(..., rk4)`` and ``torchdiffeq.odeint(method="rk4")``
over the same number of steps, divides by the number of field evaluations
(4 per step), and reports medians and the ratios ours/field, torchdiffeq/field.
A hand-written RK4 loop (7 ``torch.add`` per step, no abstraction) is timed
too: it is the floor any RK4 written with tensor ops can reach.
Both modes are measured: "grad" (parameters require grad, the graph is built,
as in training; no backward) and "no_grad" (inference). In "grad" mode the
field-alone baseline gets a state that requires grad, because inside a
training solve every state after the first does, and autograd bookkeeping in
the field is part of an evaluation's real cost. The three timings of
each repeat run back to back so that load from other processes hits them alike,
and times are process CPU time (``time.process_time``), not wall time.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path

import torch
from torchdiffeq import odeint

from nodedsl.solvers import make_solver, solve


class MLP(torch.nn.Module):
    def __init__(self, n: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(n, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, n))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Pendulum(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.g = torch.nn.Parameter(torch.tensor(9.81))

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x[:, 1:], -self.g * torch.sin(x[:, :1])), 1)


def per_eval_us(fn, evals: int) -> float:
    # CPU time of this process, not wall time: the machine is shared, and time
    # spent descheduled by other jobs is not overhead of either solver.
    # GC off while timing, as timeit does: collections would land in whichever run triggers them.
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        fn()
        return (time.process_time() - start) / evals * 1e6
    finally:
        gc.enable()


def measure(field: torch.nn.Module, batch: int, steps: int, repeats: int) -> dict[str, float]:
    x0 = torch.randn(batch, 2)
    t0 = torch.tensor(0.0)
    h = 0.01
    span = torch.tensor([0.0, steps * h])
    solver = make_solver("rk4", step=h)
    evals = 4 * steps

    xa = x0.clone().requires_grad_(torch.is_grad_enabled())

    def alone() -> None:
        for _ in range(evals):
            field(t0, xa)

    def ours() -> None:
        solve(field, x0, span, solver=solver)

    def theirs() -> None:
        odeint(field, x0, span, method="rk4", options={"step_size": h})

    starts = torch.arange(steps, dtype=x0.dtype) * h
    t_start, t_mid, t_end = starts.unbind(0), (starts + h / 2).unbind(0), (starts + h).unbind(0)

    def hand() -> None:
        x = x0
        for i in range(steps):
            k1 = field(t_start[i], x)
            k2 = field(t_mid[i], torch.add(x, k1, alpha=h / 2))
            k3 = field(t_mid[i], torch.add(x, k2, alpha=h / 2))
            k4 = field(t_end[i], torch.add(x, k3, alpha=h))
            x = torch.add(
                torch.add(torch.add(torch.add(x, k1, alpha=h / 6), k2, alpha=h / 3), k3, alpha=h / 3), k4, alpha=h / 6
            )

    runs: dict[str, list[float]] = {"field": [], "ours": [], "torchdiffeq": [], "hand": []}
    for fn in (alone, ours, theirs, hand):  # warm-up
        fn()
    for _ in range(repeats):
        runs["field"].append(per_eval_us(alone, evals))
        runs["ours"].append(per_eval_us(ours, evals))
        runs["torchdiffeq"].append(per_eval_us(theirs, evals))
        runs["hand"].append(per_eval_us(hand, evals))
    return {k: statistics.median(v) for k, v in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), rk4 {args.steps} steps, "
        f"median of {args.repeats}; times are microseconds per field evaluation"
    )
    print(
        "| field | batch | mode | field alone | ours | torchdiffeq | hand-written | ours/field | torchdiffeq/field "
        "| hand/field |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    import nodedsl

    examples = Path(__file__).resolve().parent.parent / "examples"
    compiled = nodedsl.load(examples / "pendulum.node").model("Pendulum")  # gravity + friction net, as trained
    for name, field in (("MLP 2-32-2", MLP()), ("pendulum", Pendulum()), ("nodedsl Pendulum (net)", compiled)):
        for batch in (1, 256):
            for mode in ("grad", "no_grad"):
                ctx = torch.enable_grad() if mode == "grad" else torch.no_grad()
                with ctx:
                    m = measure(field, batch, args.steps, args.repeats)
                f = m["field"]
                print(
                    f"| {name} | {batch} | {mode} | {f:.1f} | {m['ours']:.1f} | {m['torchdiffeq']:.1f} "
                    f"| {m['hand']:.1f} | {m['ours'] / f:.2f} | {m['torchdiffeq'] / f:.2f} | {m['hand'] / f:.2f} |"
                )


if __name__ == "__main__":
    main()
