"""Whole-process wall time of `nodedsl check EXAMPLE` (interpreter start, imports, parse, check, proofs).

Usage: python benchmarks/check_process.py [--runs 5] [--baseline /path/to/other/checkout]

Each run is a fresh `python -c "from nodedsl.cli.entry import main; main()" check FILE` (the console script) with PYTHONPATH
set to a checkout and run in it (``python -c`` puts the working directory first on sys.path); with --baseline the two checkouts alternate run by run (A/B interleaved) so load on the
machine hits both alike. Prints the median per example and which heavy modules the process imported.
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = (
    "import sys\nfrom nodedsl.cli.entry import main\n"
    "try:\n    main()\nfinally:\n"
    "    print('imported:', sorted(m for m in ('torch', 'sympy', 'matplotlib') if m in sys.modules), file=sys.stderr)\n"
)


def run_once(root: Path, path: str) -> tuple[float, str]:
    # bytecode written and reused, as for an installed package (pip compiles .pyc at install)
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "PYTHONPATH": str(root)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CODE, "check", path], capture_output=True, text=True, env=env, cwd=root
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{root}: check {path} failed:\n{proc.stderr}")
    imported = next((line for line in proc.stderr.splitlines() if line.startswith("imported:")), "")
    return wall, imported.removeprefix("imported: ")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", type=Path, default=None)
    args = ap.parse_args()
    roots = {"this": ROOT} | ({"baseline": args.baseline} if args.baseline else {})
    print(f"| example | {' | '.join(f'{k} (s)' for k in roots)} | heavy modules imported ({' / '.join(roots)}) |")
    print("|---|" + "---:|" * len(roots) + "---|")
    for path in sorted(glob.glob(str(ROOT / "examples" / "*.node"))):
        times: dict[str, list[float]] = {k: [] for k in roots}
        mods: dict[str, str] = {}
        for _ in range(args.runs):
            for name, root in roots.items():
                wall, mods[name] = run_once(root, path)
                times[name].append(wall)
        cells = " | ".join(f"{statistics.median(times[k]):.2f}" for k in roots)
        print(f"| {Path(path).name} | {cells} | {' / '.join(mods[k] for k in roots)} |", flush=True)


if __name__ == "__main__":
    main()
