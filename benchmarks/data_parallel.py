"""Data-parallel training: epoch time with N = 1 and N = 2 processes (gloo on the CPU), and the
communication share.

Not a test: run it by hand and paste the numbers into docs/benchmarks.md.

    python benchmarks/data_parallel.py                 # 3 rounds, 6 epochs each, N = 1 and 2
    python benchmarks/data_parallel.py --rounds 5 --epochs 8 --nprocs 1 2 4

The model is a chain of 10 bodies (20 states): masses on springs between neighbours, the spring
constants learned, the damping a shared MLP ``damp(v)`` of [256, 256] tanh units applied to every body
(so the work per window grows with the batch, which is what data parallelism divides). 64 simulated
trajectories of 5 s at 0.05 s, 20 % held out, window 10: 510 training windows, batch 256, rk4,
Adam. Each process runs ``fit`` with its :class:`~nodedsl.train.distributed.Shard` (as ``nodedsl
train --nproc N`` does, one intra-op thread per process); the program load, data generation and
process start are outside the timing. Epoch time: the median over the epochs after the first (the
first warms up the allocator), in wall time and in rank 0's process CPU time (what the division of
work shows on a shared machine, where a process also waits for a core); communication: the wall time
inside the all-reduce calls (gradients each step, statistics each epoch, validation sums), which
includes waiting for the slower rank, as a share of the epoch time. Rounds interleave N = 1 and N = 2;
the table reports medians over rounds.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import torch

BODIES = 10


def chain_source(n: int = BODIES) -> str:
    """A ``Truth`` chain (linear damping) and the ``Chain`` to train (learned springs, an MLP damping)."""

    def body(learned: bool) -> list[str]:
        lines = []
        for i in range(n):
            lines.append(f"    state x{i} = 0.0")
            lines.append(f"    state v{i} = 0.0")
        for j in range(n - 1):
            lines.append(f"    param k{j} = {1.0 if learned else 1.0 + 0.1 * j:g}" + (" learn" if learned else ""))
        if learned:
            lines.append("    net damp(w) -> 1 { hidden = [256, 256], activation = tanh }")
        for i in range(n):
            force = []
            if i > 0:
                force.append(f"k{i - 1} * (x{i - 1} - x{i})")
            if i < n - 1:
                force.append(f"k{i} * (x{i + 1} - x{i})")
            damping = f"damp(v{i})" if learned else f"0.2 * v{i}"
            lines.append(f"    der(x{i}) = v{i}")
            lines.append(f"    der(v{i}) = {' + '.join(force)} - {damping}")
        return lines

    initial = ", ".join(f"x{i} = uniform(-1, 1)" for i in range(n))
    return "\n".join(
        ["model Truth {", *body(False), "}", "model Chain {", *body(True), "}"]
        + [
            "dataset chain {",
            "    model = Truth",
            "    trajectories = 64",
            "    time = span(0, 5, step = 0.05)",
            f"    initial = {{ {initial} }}",
            "    seed = 0",
            "}",
            "train Chain {",
            "    data = chain",
            "    solver = rk4(step = 0.05)",
            "    window = 10",
            "    batch = 256",
            "    optimizer = adam(lr = 1e-3)",
            "    horizon = full",
            "    validation = 0.2",
            "    seed = 0",
            "}",
        ]
    )


def _worker(rank: int, world: int, port: int, epochs: int, queue) -> None:
    import torch.distributed as dist

    import nodedsl
    from nodedsl.data.loading import split_by_trajectory
    from nodedsl.data.windows import make_windows
    from nodedsl.frontend.config import apply_overrides, validate_train
    from nodedsl.train.distributed import Shard
    from nodedsl.train.inputs import compiled_model, load_training_data
    from nodedsl.train.loop import fit

    class TimedShard(Shard):
        comm = 0.0

        def sum_(self, t):
            started = time.perf_counter()
            out = super().sum_(t)
            TimedShard.comm += time.perf_counter() - started
            return out

        def max_(self, t):
            started = time.perf_counter()
            out = super().max_(t)
            TimedShard.comm += time.perf_counter() - started
            return out

    torch.set_num_threads(1)
    prog = nodedsl.loads(chain_source())
    cfg, _ = validate_train(prog.module.trains[0])
    cfg = apply_overrides(cfg, {"epochs": str(epochs)})
    model = compiled_model(prog, "Chain", cfg.seed)
    traj, _ = load_training_data(prog, cfg, model)
    tr, va = split_by_trajectory(traj, cfg.validation, cfg.seed)
    wtrain, wval = make_windows(tr, cfg.window), make_windows(va, cfg.window)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    shard = TimedShard(rank, world, torch.device("cpu"))
    ends, cpus, comms = [], [], []

    def on_epoch(entry):
        ends.append(time.perf_counter())
        cpus.append(time.process_time())
        comms.append(TimedShard.comm)

    start, cpu_start = time.perf_counter(), time.process_time()
    result = fit(model, wtrain, wval, cfg, shard=shard, on_epoch=on_epoch)
    if world > 1:
        dist.destroy_process_group()
    marks = [start, *ends]
    epoch_times = [b - a for a, b in zip(marks[1:-1], marks[2:])]  # after the first epoch
    cpu_marks = [cpu_start, *cpus]
    cpu_times = [b - a for a, b in zip(cpu_marks[1:-1], cpu_marks[2:])]
    comm_times = [b - a for a, b in zip(comms[:-1], comms[1:])]
    if rank == 0:
        med = statistics.median
        queue.put((len(wtrain), med(epoch_times), med(cpu_times), med(comm_times), result.train_loss))


def measure(nproc: int, epochs: int) -> tuple[int, float, float, float, float]:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(nproc, port, epochs, queue), nprocs=nproc, join=True)
    return queue.get()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    rows: dict[int, list[tuple[float, float, float]]] = {n: [] for n in args.nprocs}
    windows = 0
    for r in range(args.rounds):
        for n in args.nprocs:  # interleaved: a load change on the shared machine hits every N alike
            windows, epoch, cpu, comm, loss = measure(n, args.epochs)
            rows[n].append((epoch, cpu, comm))
            print(
                f"round {r + 1} N={n}: epoch {epoch:.3f} s (rank 0 CPU {cpu:.3f} s), "
                f"communication {comm:.4f} s, final loss {loss:.10g}"
            )
    med = statistics.median
    base = med(e for e, _, _ in rows[args.nprocs[0]])
    print(f"\n{windows} training windows, {args.epochs} epochs per run, medians over {args.rounds} rounds")
    print(
        "| processes | epoch wall time (s) | speed-up | rank 0 CPU time per epoch (s) | all-reduce (s per epoch) | share |"
    )
    print("|---|---|---|---|---|---|")
    for n in args.nprocs:
        epoch, cpu, comm = (med(row[i] for row in rows[n]) for i in range(3))
        print(f"| {n} | {epoch:.3f} | {base / epoch:.2f}x | {cpu:.3f} | {comm:.4f} | {100 * comm / epoch:.1f} % |")


if __name__ == "__main__":
    main()
