"""Time `nodedsl check` (parse, resolve, check, structural proofs) on chains of coupled sub-models.

Usage: python benchmarks/check_chain.py [N ...]   (default 10 100 1000); prints the median of 3 runs.
Target (issue 2): N = 1000 in under 5 s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_scaling import chain_source

import nodedsl


def main(sizes: list[int]) -> None:
    print(f"{'N':>6} {'sub-models':>10} {'check median [s]':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"chain{n}.node"
            path.write_text(chain_source(n))
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                nodedsl.load(path)
                times.append(time.perf_counter() - t0)
            print(f"{n:>6} {2 * n - 1:>10} {statistics.median(times):>17.3f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [10, 100, 1000])
