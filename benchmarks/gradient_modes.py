"""Time and peak memory of one training step for the three gradient modes of ``solve``.

Not a test: run it by hand and paste the table into docs/benchmarks.md.

    python benchmarks/gradient_modes.py                 # 3 rounds, ~75 s on 2 cores
    python benchmarks/gradient_modes.py --rounds 5 --dtype float64

Setting: an MLP neural ODE written in the DSL (``net f(a, b) -> 2``, two hidden layers of 128 tanh
units) rolled out for 200 ``rk4`` steps (step 0.01 over [0, 2], the loss on 21 output times) at
batch 256; one training step is forward, ``loss.backward()`` and an Adam step. Modes:
``gradient="backprop"``, ``"adjoint"`` (torchdiffeq's adjoint with the same rk4 tableau, backwards
on the same grid) and ``("checkpoint", 4)``.

Memory: every (round, mode) runs in a fresh subprocess; the peak is ``ru_maxrss`` after the first
training step minus ``ru_maxrss`` just before it (model, data and torch loaded, and one warm-up
step on a single row done, so one-time costs are excluded), i.e. the
extra resident memory the step needed (autograd graph, saved activations, allocator slack). Time:
median of ``--steps`` further steps in the same subprocess, process CPU time with one intra-op
thread (the machine is shared). The table reports medians over rounds. The subprocess also checks
the gradient against backprop's (relative difference of the flattened parameter gradient).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

SOURCE = """
model MLP {
    state a = 0
    state b = 0
    net f(a, b) -> 2 { hidden = [128, 128], activation = tanh }
    der(a) = f(a, b)[0]
    der(b) = f(a, b)[1]
}
"""

MODES = {"backprop": "backprop", "adjoint": "adjoint", "checkpoint(4)": ("checkpoint", 4)}


def worker(mode: str, dtype_name: str, steps: int, batch: int) -> dict:
    import torch

    import nodedsl
    from nodedsl.solvers import make_solver, solve

    torch.set_num_threads(1)
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(0)
    model = nodedsl.loads(SOURCE).model("MLP").to(dtype)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(batch, 2, generator=g, dtype=dtype)
    target = torch.randn(21, batch, 2, generator=g, dtype=dtype)
    t = torch.linspace(0, 2, 21, dtype=dtype)
    solver = make_solver("rk4", step=0.01)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    params = list(model.parameters())

    def step(gradient, rows: int = batch) -> tuple[int, torch.Tensor]:
        opt.zero_grad(set_to_none=True)
        res = solve(model, x0[:rows], t, solver=solver, gradient=gradient)
        loss = (res.ys - target[:, :rows]).pow(2).mean()
        loss.backward()
        grad = torch.cat([p.grad.reshape(-1) for p in params]).clone()
        opt.step()
        return res.stats.steps, grad

    step(MODES[mode], rows=1)  # warm-up on one row: one-time costs (imports, registrations) off the peak
    step("backprop", rows=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n_steps, grad = step(MODES[mode])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Gradient check against backprop at the same parameters (after the peak was taken).
    rel = 0.0
    if mode != "backprop":
        updated = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(state)
        _, ref = step("backprop")
        rel = float((grad - ref).norm() / ref.norm())
        model.load_state_dict(updated)
    times = []
    for _ in range(steps):
        start = time.process_time()
        step(MODES[mode])
        times.append(time.process_time() - start)
    return {
        "mode": mode,
        "peak_mib": (after - before) / 1024,
        "time_s": statistics.median(times),
        "solver_steps": n_steps,
        "grad_rel_diff": rel,
        "baseline_mib": before / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per subprocess")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.dtype, args.steps, args.batch)))
        return
    results: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(args.rounds):
        for mode in MODES:  # interleaved, so load from other jobs hits every mode alike
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    mode,
                    "--dtype",
                    args.dtype,
                    "--steps",
                    str(args.steps),
                    "--batch",
                    str(args.batch),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            results[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
    import torch

    print(
        f"torch {torch.__version__}, 1 thread, {args.dtype}, MLP 2-128-128-2 (DSL net), rk4 200 steps "
        f"(step 0.01, 21 output times), batch {args.batch}; medians of {args.rounds} rounds\n"
    )
    print(
        "| gradient | time / training step (s) | peak extra memory (MiB) | (min-max over rounds) | "
        "time vs backprop | memory vs backprop | gradient rel. diff vs backprop |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base_t = statistics.median(r["time_s"] for r in results["backprop"])
    base_m = statistics.median(r["peak_mib"] for r in results["backprop"])
    for mode, rs in results.items():
        tm = statistics.median(r["time_s"] for r in rs)
        mem = statistics.median(r["peak_mib"] for r in rs)
        diff = max(r["grad_rel_diff"] for r in rs)
        lo, hi = min(r["peak_mib"] for r in rs), max(r["peak_mib"] for r in rs)
        print(
            f"| {mode} | {tm:.3f} | {mem:.1f} | {lo:.1f}-{hi:.1f} | {tm / base_t:.2f} | {mem / base_m:.2f} | "
            f"{diff:.1e} |"
        )


if __name__ == "__main__":
    main()
