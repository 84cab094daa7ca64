"""Loading a 400,000-row long-form CSV (and the same table as Parquet): nodedsl against raw pandas.

Usage: python benchmarks/data_loading.py [--rows 400000] [--runs 5]

Measures, interleaved run by run (medians; the machine is shared): `load_csv` (pyarrow fast path),
the row-by-row reader it falls back to (the reader before this change), `load_parquet`, and raw
`pandas.read_csv` / `pandas.read_parquet` of the same files (no checks, no trajectories). Target:
nodedsl within 1.5x of raw pandas. Needs the `bench` extra (pandas).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    per = 400
    traj = np.repeat(np.arange(rows // per), per)
    t = np.tile(np.arange(per) * 0.01, rows // per)
    cols = {"trajectory": traj, "t": t}
    for name in ("theta", "omega", "torque"):
        cols[name] = rng.standard_normal(len(t))
    csv = folder / "big.csv"
    with csv.open("w") as fh:
        fh.write("trajectory,t,theta,omega,torque\n")
        np.savetxt(
            fh, np.column_stack(list(cols.values())), fmt=["%d", "%.6g", "%.17g", "%.17g", "%.17g"], delimiter=","
        )
    parquet = folder / "big.parquet"
    pq.write_table(pa.table(cols), parquet)
    return csv, parquet


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    import pandas as pd

    from nodedsl.data import loading
    from nodedsl.data.columnar import load_parquet

    names = (("theta", "omega"), ("torque",))
    folder = Path(tempfile.mkdtemp())
    csv, parquet = write_files(folder, args.rows)
    fast_reader = loading.read_csv_table

    def rows_reader():
        loading.read_csv_table = lambda p, numeric=(): None  # the row-by-row reader alone
        try:
            return loading.load_csv(csv, *names)
        finally:
            loading.read_csv_table = fast_reader

    cases = {
        "nodedsl load_csv (pyarrow)": lambda: loading.load_csv(csv, *names),
        "pandas.read_csv": lambda: pd.read_csv(csv),
        "nodedsl load_parquet": lambda: load_parquet(parquet, *names),
        "pandas.read_parquet": lambda: pd.read_parquet(parquet),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    old = rows_reader()
    old_time = time.perf_counter() - t0
    new = loading.load_csv(csv, *names)
    assert old.ids == new.ids and bool((old.y == new.y).all()), "the two readers disagree"
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.rows} rows, {csv.stat().st_size / 2**20:.1f} MiB CSV; medians of {args.runs} (s)")
    for k, v in med.items():
        print(f"  {k:<28} {v:7.3f}")
    print(f"  {'row-by-row reader (1 run)':<28} {old_time:7.3f}")
    print(f"ratio load_csv / pandas.read_csv:         {med['nodedsl load_csv (pyarrow)'] / med['pandas.read_csv']:.2f}")
    print(f"ratio load_parquet / pandas.read_parquet: {med['nodedsl load_parquet'] / med['pandas.read_parquet']:.2f}")
    print(f"speed-up over the row reader:             {old_time / med['nodedsl load_csv (pyarrow)']:.1f}x")


if __name__ == "__main__":
    main()
