"""A matrix parameter times the state: one matmul against the per-entry expansion.

``der(x) = A @ x`` with a learned ``A[n, n]`` (and ``der(X) = A @ X`` with a matrix state ``X[n, 3]``),
compiled as nodedsl compiles it (one matmul on a view of ``A``) and as the per-entry expansion (the
affine split switched off, what the compiler emitted before: one product and one sum per entry).
Prints graph sizes and the median time of a field evaluation and of an evaluation with its backward
pass (batch 64, float64, one thread; runs interleaved, medians of 5). A 2-core machine shared with
other jobs: compare the ratios.

Usage: python benchmarks/matrix_product.py [n]
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

import nodedsl
import nodedsl.compiler.affine as affine


def _models(src: str):
    compiled = nodedsl.loads(src).model("M").double()
    old, affine.MIN_ENTRIES = affine.MIN_ENTRIES, 10**9
    try:
        expanded = nodedsl.loads(src).model("M").double()
    finally:
        affine.MIN_ENTRIES = old
    return compiled, expanded


def _time(model, x: torch.Tensor, backward: bool, calls: int = 100) -> float:
    t = torch.tensor(0.0, dtype=torch.float64)
    tic = time.perf_counter()
    for _ in range(calls):
        out = model(t, x)
        if backward:
            out.sum().backward()
    return (time.perf_counter() - tic) / calls * 1e6


def main(n: int = 20) -> None:
    torch.set_num_threads(1)
    cases = {
        f"A @ x, A[{n}, {n}]": f"model M {{\n state x[{n}] = 1\n param A[{n}, {n}] = 0.01 learn\n der(x) = A @ x\n}}\n",
        f"A @ X, X[{n}, 3]": f"model M {{\n state X[{n}, 3] = 1\n param A[{n}, {n}] = 0.01 learn\n der(X) = A @ X\n}}\n",
    }
    for name, src in cases.items():
        compiled, expanded = _models(src)
        x = torch.randn(64, len(compiled.state_names), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        times: dict = {}
        for _ in range(5):
            for label, model in (("matmul", compiled), ("expanded", expanded)):
                for backward in (False, True):
                    times.setdefault((label, backward), []).append(_time(model, x, backward))
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"{name}: graph nodes {len(compiled._field.graph.nodes)} (expanded {len(expanded._field.graph.nodes)}); "
            f"field {med[('matmul', False)]:.0f} us (expanded {med[('expanded', False)]:.0f} us, "
            f"{med[('expanded', False)] / med[('matmul', False)]:.1f}x); with backward {med[('matmul', True)]:.0f} us "
            f"(expanded {med[('expanded', True)]:.0f} us, {med[('expanded', True)] / med[('matmul', True)]:.1f}x)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
