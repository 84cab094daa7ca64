"""Observer runs on disk: ``nodedsl train FILE --observer NAME`` and ``nodedsl observe``.

A run directory (default ``runs/<observer>``) holds ``observer.pt`` (the trained weights, checked
against the observer's name and source on load) and ``observer.json`` (the training summary).
``observe`` reads a long CSV (``trajectory`` optional, ``t``, one column per ``measure``), runs the
observer on each trajectory and writes ``trajectory, t`` and one estimate column per state.

Example:
    >>> import numpy as np
    >>> _uniform_step(np.array([0.0, 0.1, 0.2]), "m.csv")
    0.1
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from ..io.atomic import atomic_write
from ..io.checkpoint import load_checkpoint, save_checkpoint
from ..io.tables import read_columns, table_error
from .metrics import write_json
from .observer import Observer, build_observer, train_observer

__all__ = ["observe_file", "observer_spec", "run_observer_training"]


def observer_spec(program, name: str):
    """The checked spec of observer ``name``, or an ``undefined-name`` error listing the observers."""
    specs = {k.split(" ", 1)[1]: v for k, v in program.checked.configs.items() if k.startswith("observer ")}
    if name not in specs:
        raise NodeDslError(
            [
                Diagnostic(
                    "undefined-name",
                    f"no observer '{name}' in {program.path}",
                    Span(program.path, 0, 0),
                    tuple(n for n in (suggest(name, specs), "observers: " + ", ".join(specs) if specs else "") if n),
                )
            ]
        )
    return specs[name]


def _source_key(program, spec) -> str:
    return program.source_hash(spec.model) + ":" + spec.name + ":" + repr(spec.poles) + repr(spec.gain)


def run_observer_training(program, name: str, run_dir: str | Path | None = None, progress=None) -> dict:
    """Train observer ``name`` of ``program``; write ``observer.pt`` and ``observer.json``; the summary."""
    spec = observer_spec(program, name)
    run = Path(run_dir) if run_dir is not None else Path("runs") / name
    run.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(spec.training.get("seed", 0)))
        observer = build_observer(program, spec)
        summary = train_observer(observer, progress)
    state = {k: v for k, v in observer.state_dict().items() if not k.startswith("model.")}
    save_checkpoint(run / "observer.pt", {"observer": name, "key": _source_key(program, spec), "model_state": state})
    summary.update(observer=name, model=spec.model, kind=spec.kind, run_dir=str(run))
    write_json(run / "observer.json", summary)
    return summary


def load_observer(program, name: str, run_dir: str | Path) -> Observer:
    """The trained observer ``name`` from ``run_dir/observer.pt``."""
    spec = observer_spec(program, name)
    path = Path(run_dir) / "observer.pt"
    state = load_checkpoint(path)
    if state.get("observer") != name or state.get("key") != _source_key(program, spec):
        raise NodeDslError(
            [
                Diagnostic(
                    "checkpoint-mismatch",
                    f"'{path}' was trained for another observer or another version of '{name}'",
                    Span(str(path), 0, 0),
                    (f"retrain: nodedsl train FILE --observer {name}",),
                )
            ]
        )
    observer = build_observer(program, spec)
    observer.load_state_dict(state["model_state"], strict=False)
    return observer


def _uniform_step(t: np.ndarray, file: str) -> float:
    steps = np.diff(t)
    if len(steps) == 0 or steps.min() <= 0 or not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-12):
        raise NodeDslError([table_error(file, "an observer needs increasing times with a uniform step")])
    return float(steps[0])


def observe_file(program, name: str, run_dir: str | Path, data: str | Path, out: str | Path) -> int:
    """Estimate the states of every trajectory in ``data``; write ``out``; the number of rows written."""
    observer = load_observer(program, name, run_dir)
    file = str(data)
    cols = read_columns(data)
    measured = [m.name for m in observer.spec.measures]
    missing = [c for c in ("t", *measured) if c not in cols]
    if missing:
        raise NodeDslError(
            [table_error(file, f"missing column '{c}'", 1, 0, f"columns present: {', '.join(cols)}") for c in missing]
        )
    ids = cols.get("trajectory", np.zeros_like(cols["t"]))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["trajectory", "t", *observer.spec.states])
    rows = 0
    for tid in dict.fromkeys(ids.tolist()):
        sel = ids == tid
        t = cols["t"][sel]
        dt = _uniform_step(t, file)
        y = torch.tensor(np.stack([cols[m][sel] for m in measured], axis=-1), dtype=torch.float32)[None]
        with torch.no_grad():
            est = observer.estimate(y, dt)[0].double().numpy()
        for k in range(len(t)):
            writer.writerow([f"{tid:g}", repr(float(t[k])), *(repr(float(v)) for v in est[k])])
        rows += len(t)
    atomic_write(out, lambda fh: fh.write(buf.getvalue()))
    return rows
