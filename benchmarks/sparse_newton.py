"""Dense against sparse LU in the stiff solvers on the stiff 1-D Brusselator (BRUSS, N cells).

For radau and rodas4 at rtol = atol = 1e-6, runs linear_solver = dense and sparse back to back
(interleaved, ``--repeats`` rounds) and prints the median solve times, their ratio, the LU counts
and the largest difference between the two final states. ``--node`` also times
tests/ivp/bruss_stiff.node (N = 100) end to end: load and compile, the first (symbolic) Jacobian,
and a radau solve on each path.

    python benchmarks/sparse_newton.py                 # N = 500 (1000 states), t in [0, 1]
    python benchmarks/sparse_newton.py --n 200 --t-end 10 --repeats 3 --node
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_sparse_newton import brusselator

from nodedsl.solvers import make_solver, solve
from nodedsl.solvers.derivatives import jacobian

F64 = torch.float64


def run(field, x0, t_end: float, name: str, kind: str):
    start = time.perf_counter()
    with torch.no_grad():
        res = solve(field, x0, torch.tensor([0.0, t_end], dtype=F64),
                    solver=make_solver(name, rtol=1e-6, atol=1e-6, linear_solver=kind))  # fmt: skip
    return time.perf_counter() - start, res


def compare(field, x0, t_end: float, repeats: int, label: str) -> None:
    for name in ("radau", "rodas4"):
        times: dict[str, list[float]] = {"dense": [], "sparse": []}
        finals = {}
        for _ in range(repeats):
            for kind in ("dense", "sparse"):
                sec, res = run(field, x0, t_end, name, kind)
                times[kind].append(sec)
                finals[kind] = res
        d, s = statistics.median(times["dense"]), statistics.median(times["sparse"])
        diff = float((finals["dense"].ys[-1] - finals["sparse"].ys[-1]).abs().max())
        st = finals["sparse"].stats
        print(f"{label:14} {name:7} steps {st.steps:5d} LUs {st.nlu:5d} dense {d:8.2f} s sparse {s:8.2f} s "
              f"dense/sparse {d / s:6.2f}  max|diff| {diff:.1e}", flush=True)  # fmt: skip


def node_run(repeats: int) -> None:
    import nodedsl

    start = time.perf_counter()
    torch.set_default_dtype(F64)
    m = nodedsl.load(ROOT / "tests" / "ivp" / "bruss_stiff.node").model("Bruss100")
    field, x0 = m.driven(None), m.x0_default.to(F64)[None]
    loaded = time.perf_counter()
    jacobian(field, torch.tensor(0.0, dtype=F64), x0)
    print(f"bruss_stiff.node N = 100: load and compile {loaded - start:.1f} s, first Jacobian "
          f"{time.perf_counter() - loaded:.1f} s")  # fmt: skip
    compare(field, x0, 1.0, repeats, ".node N=100")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--t-end", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--node", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("machine: 2 shared CPU cores (other jobs running); medians of interleaved runs")
    field, x0 = brusselator(args.n)
    compare(field, x0, args.t_end, args.repeats, f"torch N={args.n}")
    if args.node:
        node_run(args.repeats)


if __name__ == "__main__":
    main(sys.argv[1:])
