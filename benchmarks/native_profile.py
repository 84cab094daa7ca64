"""Where one steady-state training epoch's time goes, eager vs ``compile = native`` (issue 19).

Not a test: run it by hand and paste the tables into docs/benchmarks.md.

    python benchmarks/native_profile.py                    # pendulum hybrid and black box
    python benchmarks/native_profile.py --models chain msd

First, the native build's cost per model with an empty cache (C generation, gcc), and the rollout of one
batch (64 windows) and its gradient alone, native and eager, in float32 and float64. Then each model of
benchmarks/peer_training.py is trained for three epochs (warm-up: compiles, caches) and three more are
profiled with cProfile (per-epoch means), one thread (``--no-profile`` skips this). The table groups the
profile's own time (``tottime``) by where it is spent: the generated C (the ctypes calls in
``_Rollout.forward`` / ``backward``), autograd's backward, Adam, torch ops called from Python, the rest.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

GROUPS = [  # (label, predicate on (file, function name)); the first match wins
    ("native C forward (one call per batch)", lambda f, n: f.endswith("native.py") and n == "forward"),
    ("native C adjoint (one call per batch)", lambda f, n: f.endswith("native.py") and n == "backward"),
    ("autograd backward (engine, torch ops)", lambda f, n: "run_backward" in n or n == "_engine_run_backward"),
    ("optimizer (Adam)", lambda f, n: "optim" in f),
    ("torch ops called from Python", lambda f, n: n.startswith(("<built-in method", "<method"))),
    ("nodedsl / torch Python code", lambda f, n: True),
]


def profile_epoch(name: str, mode: str) -> tuple[float, list[tuple[str, float]], list[tuple[str, float]]]:
    """(epoch seconds under the profiler, shares by group, top functions by own time) of epochs 4-6."""
    from peer_training import nodedsl_runner, windows

    text, model_name, wt, wv = windows(name)
    gen = nodedsl_runner(text, model_name, wt, wv, 6, mode)
    for _ in range(3):
        next(gen)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(3):
        next(gen)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values()) / 3
    groups = dict.fromkeys((label for label, _ in GROUPS), 0.0)
    rows = []
    for (file, _, func), (_, _, tottime, _, _) in stats.items():
        label = next(label for label, pred in GROUPS if pred(file, func))
        groups[label] += tottime
        rows.append((f"{Path(file).name}:{func}", tottime))
    rows.sort(key=lambda r: -r[1])
    shares = [(k, v / 3 / total) for k, v in groups.items() if v > 0]
    return total, shares, [(k, v / 3 / total) for k, v in rows[:8]]


def compile_times(name: str) -> tuple[float, float]:
    """(seconds generating the C, seconds in gcc) of the model's float32 build, with an empty cache."""
    import tempfile
    import time

    from peer_training import DT, sources

    import nodedsl
    from nodedsl.solvers import make_solver
    from nodedsl.train import native

    text, _, model_name, _ = sources(name)
    model = nodedsl.loads(text).model(model_name)
    before = os.environ.get("XDG_CACHE_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        started = time.perf_counter()
        step = native.NativeStep(model, make_solver("rk4", step=DT), list(range(len(model.state_names))), True)
        generated = time.perf_counter() - started
        step.lib(torch.float32)
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before
    return generated, step.compile_seconds


def per_batch(name: str, dtype: torch.dtype) -> tuple[float, float]:
    """(native, eager) ms for the rollout of 64 windows (10 RK4 steps) and its gradient, best of 5 x 3."""
    import time

    from peer_training import DT, WINDOW, sources

    import nodedsl
    from nodedsl.solvers import make_solver, solve
    from nodedsl.train.native import NativeStep
    from nodedsl.train.rollout import WindowField

    text, _, model_name, _ = sources(name)
    torch.manual_seed(0)
    model = nodedsl.loads(text).model(model_name, dtype)
    n, m = len(model.state_names), model.u_default.numel()
    solver = make_solver("rk4", step=DT)
    fast = NativeStep(model, solver, list(range(n)), True)
    grid = torch.arange(WINDOW + 1, dtype=dtype) * DT
    x0, t0 = torch.randn(64, n, dtype=dtype), torch.zeros(64, dtype=dtype)
    u, tb = torch.zeros(64, WINDOW + 1, m, dtype=dtype), torch.zeros(64, WINDOW + 1, dtype=dtype)
    params = [p for p in model.parameters() if p.requires_grad]

    def native():
        states, _ = fast(x0, t0, u, tb, grid)
        torch.autograd.grad(states.pow(2).sum(), params, allow_unused=True)

    def eager():
        states = solve(WindowField(model, t0, grid, u, True), x0, grid, solver=solver).ys
        torch.autograd.grad(states.pow(2).sum(), params, allow_unused=True)

    out = []
    for fn in (native, eager):
        for _ in range(5):  # warm-up (the first calls of a process are slower)
            fn()
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(3):
                fn()
            best = min(best, (time.perf_counter() - started) / 3)
        out.append(1e3 * best)
    return out[0], out[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["pendulum", "blackbox"])
    ap.add_argument("--no-profile", action="store_true", help="only the build and per-batch tables")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print("| model | C generation s | gcc s |\n|---|---:|---:|")
    for name in args.models:
        gen, cc = compile_times(name)
        print(f"| {name} | {gen:.2f} | {cc:.2f} |")
    per_batch(args.models[0], torch.float32)  # a process's first measurement runs slow (up to 2x): discarded
    print("\n| model | dtype | native ms / batch | eager ms / batch | eager / native |\n|---|---|---:|---:|---:|")
    for name in args.models:
        for dtype in (torch.float32, torch.float64):
            nat, eag = per_batch(name, dtype)
            print(f"| {name} | {str(dtype)[6:]} | {nat:.2f} | {eag:.2f} | {eag / nat:.1f} |")
    for name in [] if args.no_profile else args.models:
        for mode in ("off", "native"):
            total, groups, top = profile_epoch(name, mode)
            print(f"\n### {name}, compile = {mode}: {1e3 * total:.1f} ms per epoch under cProfile\n")
            print("| where | share of the epoch |\n|---|---:|")
            for label, share in groups:
                print(f"| {label} | {100 * share:.1f} % |")
            print("\ntop functions by own time: " + ", ".join(f"`{k}` {100 * v:.0f} %" for k, v in top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
