"""Running a sweep: one ordinary training run per grid point and seed, in a process pool or driven by
Optuna, with a ``sweep.csv`` summary rewritten (atomically) after every finished run.

A sweep directory holds one run directory per run (``SWEEPDIR/<run-name>``, as ``nodedsl train --run``
writes it) and ``sweep.csv``. A run counts as finished when its ``metrics.json`` belongs to its
``config.json`` (same run id) and was trained with exactly the configuration the sweep asks for, so an
interrupted sweep, started again, redoes only the runs that had not finished (and a run whose grid or
train block changed since).

Example::

    nodedsl sweep examples/pendulum.node --grid lr=1e-3,3e-3 --grid batch=16,64 --seeds 2 --jobs 2 -o sweeps/p
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.diagnostics import Diagnostic, NodeDslError
from ..frontend.config import apply_overrides, validate_train
from ..io.atomic import atomic_write
from .grid import CMDLINE, RunSpec, plan_runs

__all__ = ["SweepResult", "best_setting", "finished_row", "metric", "run_sweep"]

Echo = Callable[[str], None]


@dataclass
class SweepResult:
    """The rows of ``sweep.csv`` (in plan order), how many runs were trained now and how many reused."""

    rows: list[dict]
    trained: int = 0
    reused: int = 0
    stopped: bool = False
    best: dict | None = field(default=None)


def _load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def finished_row(run_dir: Path, spec: RunSpec, expected: dict | None = None) -> dict | None:
    """The ``sweep.csv`` row of a finished run directory, or None when it did not finish (or was trained
    with another configuration than ``expected``, the JSON dump of the run's train config)."""
    metrics, config = _load_json(run_dir / "metrics.json"), _load_json(run_dir / "config.json")
    if metrics is None or config is None or metrics.get("run_id") != config.get("run_id"):
        return None
    if expected is not None and metrics.get("config") != expected:
        return None
    final, ev = metrics.get("final") or {}, metrics.get("evaluation") or {}
    row: dict[str, Any] = {"run": spec.name, **spec.params, "seed": spec.seed, "status": metrics.get("status")}
    row.update(train_loss=final.get("train_loss"), val_loss=final.get("val_loss"), rollout_rmse=ev.get("rmse"))
    for name, v in (ev.get("violations") or final.get("violations") or {}).items():
        row[f"violation:{name}"] = v
    row.update(time_s=metrics.get("wall_time"), error="")
    return row


@functools.lru_cache(maxsize=4)
def _program(path: str):
    from ..program import load

    return load(path)


def _train_one(path: str, model: str | None, overrides: dict[str, str], run_dir: str, plots: bool = False) -> str:
    """Train one run (in this process or a pool worker); returns '' or the error's message."""
    from ..train.run import run_training, select_train

    try:
        prog = _program(path)
        run_training(prog, select_train(prog, model), overrides=overrides, run_dir=run_dir, plots=plots)
    except NodeDslError as err:
        return "; ".join(f"{d.code}: {d.message}" for d in err.diagnostics)
    return ""


def metric(row: dict) -> float:
    """What a sweep minimises: the validation rollout RMSE, else the validation loss, else the train loss."""
    for key in ("rollout_rmse", "val_loss", "train_loss"):
        v = row.get(key)
        if isinstance(v, (int, float)) and math.isfinite(v):
            return float(v)
    return math.inf


def best_setting(rows: Iterable[dict], keys: list[str]) -> dict | None:
    """The grid setting with the lowest mean metric over its seeds (``_metric``), with that mean."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault(tuple(str(row.get(k)) for k in keys), []).append(metric(row))
    scored = [(sum(v) / len(v), k, len(v)) for k, v in groups.items() if all(math.isfinite(x) for x in v)]
    if not scored:
        return None
    mean, setting, n = min(scored)
    return {"params": dict(zip(keys, setting)), "metric": mean, "runs": n}


def write_csv(path: Path, rows: list[dict], keys: list[str]) -> None:
    """``sweep.csv``: run, grid keys, seed, status, losses, rollout error, violations, time, error."""
    viol = sorted({k for r in rows for k in r if k.startswith("violation:")})
    cols = ["run", *keys, "seed", "status", "train_loss", "val_loss", "rollout_rmse", *viol, "time_s", "error"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: "" if r.get(c) is None else r.get(c) for c in cols})
    atomic_write(path, lambda fh: fh.write(buf.getvalue()))


@dataclass
class _Sweep:
    """The shared state of one sweep invocation."""

    path: str
    model: str | None
    out: Path
    keys: list[str]
    expected: Callable[[RunSpec], dict]
    echo: Echo
    stop_after: int | None
    sets: dict[str, str] = field(default_factory=dict)
    plots: bool = False
    rank: dict[str, int] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    trained: int = 0
    reused: int = 0
    stopped: bool = False

    def record(self, spec: RunSpec, row: dict, write: bool = True) -> None:
        if spec.name not in self.rows:
            self.order.append(spec.name)
            self.order.sort(key=lambda n: self.rank.get(n, len(self.rank)))
        self.rows[spec.name] = row
        if write:
            write_csv(self.out / "sweep.csv", [self.rows[n] for n in self.order], self.keys)

    def finished(self, spec: RunSpec, error: str, seconds: float) -> dict:
        row = finished_row(self.out / spec.name, spec, self.expected(spec)) if not error else None
        if row is None:
            row = {"run": spec.name, **spec.params, "seed": spec.seed, "status": "failed", "time_s": seconds}
            row["error"] = error or "the run wrote no metrics"
        self.trained += 1
        self.record(spec, row)
        self.echo(f"[{self.trained}] {spec.name}: {row['status']}, rollout RMSE {_fmt(row.get('rollout_rmse'))}")
        if self.stop_after is not None and self.trained >= self.stop_after:
            self.stopped = True
        return row


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v in (None, "") else str(v)


def _execute(sw: _Sweep, specs: list[RunSpec], pool: ProcessPoolExecutor | None) -> dict[str, dict]:
    """Run ``specs`` (skipping finished ones); returns their rows by run name."""
    out: dict[str, dict] = {}
    todo = []
    for spec in specs:
        row = finished_row(sw.out / spec.name, spec, sw.expected(spec))
        if row is not None:
            if spec.name not in sw.rows:
                sw.reused += 1
                sw.record(spec, row)
            out[spec.name] = row
        else:
            todo.append(spec)
    if pool is None:
        for spec in todo:
            if sw.stopped:
                break
            t0 = time.perf_counter()
            err = _train_one(sw.path, sw.model, {**sw.sets, **spec.overrides()}, str(sw.out / spec.name), sw.plots)
            out[spec.name] = sw.finished(spec, err, time.perf_counter() - t0)
        return out
    started: dict[Future, tuple[RunSpec, float]] = {}
    queue = list(todo)
    while queue or started:
        while queue and len(started) < pool._max_workers and not sw.stopped:  # type: ignore[attr-defined]
            spec = queue.pop(0)
            fut = pool.submit(
                _train_one, sw.path, sw.model, {**sw.sets, **spec.overrides()}, str(sw.out / spec.name), sw.plots
            )
            started[fut] = (spec, time.perf_counter())
        if not started:
            break
        done, _ = wait(started, return_when=FIRST_COMPLETED)
        for fut in done:
            spec, t0 = started.pop(fut)
            try:
                err = fut.result()
            except Exception as exc:  # a worker that died (killed, out of memory)
                err = f"{type(exc).__name__}: {exc}"
            out[spec.name] = sw.finished(spec, err, time.perf_counter() - t0)
    return out


def run_sweep(
    path: str | Path,
    grid: dict[str, list[str]],
    out: str | Path,
    *,
    model: str | None = None,
    seeds: int = 1,
    jobs: int = 1,
    optuna_trials: int | None = None,
    sets: dict[str, str] | None = None,
    stop_after: int | None = None,
    echo: Echo | None = None,
    plots: bool = False,
) -> SweepResult:
    """Run a sweep of the train block of ``model`` in ``path`` into the folder ``out`` (see module doc).

    ``sets``: overrides common to every run (``--set``). ``stop_after``: stop after that many runs were
    trained (what an interruption does; used by tests). ``plots``: draw each run's PNG files (off: they
    take most of a short run's time; ``nodedsl plot --run DIR`` draws them later).
    Errors of the grid are raised before anything runs.
    """
    from ..train.run import select_train

    prog = _program(str(path))
    block = select_train(prog, model)
    cfg, diags = validate_train(block)
    if cfg is None:
        raise NodeDslError(diags)
    cfg = apply_overrides(cfg, dict(sets or {}))
    specs = plan_runs(cfg, grid, seeds)
    if jobs < 1 or (optuna_trials is not None and optuna_trials < 1):
        raise NodeDslError([Diagnostic("bad-override", "--jobs and --optuna must be at least 1", CMDLINE)])

    def expected(spec: RunSpec) -> dict:
        return json.loads(json.dumps(apply_overrides(cfg, spec.overrides()).model_dump(mode="json")))

    keys = [k for k in grid if k != "seed"]
    sw = _Sweep(
        str(path), block.model, Path(out), keys, expected, echo or (lambda s: None), stop_after, dict(sets or {})
    )
    sw.plots, sw.rank = plots, {s.name: i for i, s in enumerate(specs)}
    sw.out.mkdir(parents=True, exist_ok=True)
    for spec in specs:  # what an earlier, interrupted sweep finished: in sweep.csv whatever runs now
        row = finished_row(sw.out / spec.name, spec, expected(spec))
        if row is not None:
            sw.reused += 1
            sw.record(spec, row, write=False)
    if sw.rows:
        write_csv(sw.out / "sweep.csv", [sw.rows[n] for n in sw.order], keys)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) if jobs > 1 else None
    try:
        if optuna_trials is None:
            _execute(sw, specs, pool)
        else:
            from .search import optuna_search

            optuna_search(
                specs, grid, optuna_trials, jobs, lambda batch: _execute(sw, batch, pool), lambda: sw.stopped, metric
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    rows = [sw.rows[n] for n in sw.order]
    return SweepResult(rows, sw.trained, sw.reused, sw.stopped, best_setting(rows, sw.keys))
