"""``nodedsl export``: a trained run to files another process can use without nodedsl (pt2, ONNX), or to
safetensors weights that :func:`load_exported` turns back into a model without pickle.

Every export directory holds ``manifest.json`` (see :func:`nodedsl.export.weights.manifest`) and
``field.pt2`` / ``field.onnx`` (with ``steps``: also ``rollout.pt2`` / ``rollout.onnx``) or
``model.safetensors``. Bad input raises located ``NodeDslError``: ``bad-checkpoint`` (no run),
``checkpoint-mismatch`` (a run of another model or source), ``bad-argument`` (format, steps, dtype),
``no-fixed-step`` (a rollout with a solver that has no fixed explicit step), ``export-failed``.

Example:
    >>> files = export_run("runs/pendulum", "out", "pt2", steps=20)      # doctest: +SKIP
    >>> [f.name for f in files]                                           # doctest: +SKIP
    ['field.pt2', 'rollout.pt2', 'manifest.json']
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from ..core.diagnostics import NodeDslError, Span
from ..core.errors import SolverError
from ..core.solvers import parse_solver_call, solver_spec
from ..core.tableaus import EXPLICIT
from ..program import load
from ..train.inputs import compiled_model
from ..train.metrics import read_json, write_json
from ..train.trained import run_config, trained_model
from . import programs
from .weights import MANIFEST, load_weights_into, manifest, save_safetensors

__all__ = ["FORMATS", "export_run", "load_exported"]

FORMATS = ("pt2", "onnx", "safetensors")
DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _arg(option: str, message: str, *notes: str) -> NodeDslError:
    return NodeDslError.single("bad-argument", message, Span(f"<{option}>", 0, 0), *notes)


def _program(run: Path, saved: dict, path: str | Path | None):
    if path is not None:
        return load(path)
    source = saved.get("source")
    if not source or not Path(source).is_file():
        raise NodeDslError.single(
            "bad-checkpoint",
            f"the source of run '{run}' ({source}) is not there",
            Span(str(run), 0, 0),
            "give the .node file: nodedsl export FILE --run DIR",
        )
    return load(source)


def _rollout_method(run: Path, cfg, solver: str | None) -> tuple[str, dict]:
    """The explicit tableau's name and options of the rollout: ``solver`` text, else the run's solver."""
    if solver is not None:
        try:
            name, options = parse_solver_call(solver)
            solver_spec(name)
        except SolverError as err:
            raise _arg("--solver", str(err)) from None
    elif cfg.solver is not None:
        name, options = cfg.solver.kind, dict(cfg.solver.options)
    else:
        name, options = "dopri5", {}
    if name not in EXPLICIT:
        raise NodeDslError.single(
            "no-fixed-step",
            f"a rollout needs a fixed-step explicit solver ({', '.join(EXPLICIT)}); "
            f"{'--solver' if solver else f'run {run}'} uses '{name}'",
            Span("<--solver>" if solver else str(run / "config.json"), 0, 0),
            "give one, e.g. --solver 'rk4(step = 0.05)', or export the field alone (no --steps)",
        )
    if not isinstance(options.get("step"), (int, float)) or not options["step"] > 0:
        raise _arg("--solver", f"the rollout solver '{name}' needs a positive step", "e.g. --solver 'rk4(step = 0.05)'")
    return name, options


def _quiet(fn):
    """Run ``fn()`` with the exporters' progress prints and warnings kept off the user's terminal."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return fn()
    finally:
        log.setLevel(level)


def _write_programs(model, out: Path, fmt: str, rollout) -> dict:
    """Export the field (and the rollout) as ``fmt`` into ``out``; file name -> signature."""
    field_sig = "f(t [], x [batch, n], u [batch, m]) -> dx/dt [batch, n]"
    made = {"field": (programs.export_field(model), ("t", "x", "u"), "dxdt", field_sig)}
    if rollout is not None:
        name, h, steps = rollout
        sig = f"rollout(t0 [], x0 [batch, n], u [{steps}, batch, m]) -> xs [{steps + 1}, batch, n]"
        ep = programs.export_rollout(model, EXPLICIT[name], h, steps)
        made["rollout"] = (ep, ("t0", "x0", "u"), "xs", f"{sig}; {name}, step {h}, u held over each step")
    files = {}
    for stem, (ep, names, output, sig) in made.items():
        target = out / f"{stem}.{fmt}"
        if fmt == "pt2":
            programs.save_pt2(ep, target)
        else:
            programs.save_onnx(ep, target, names, output)
        files[target.name] = sig
    return files


def export_run(
    run: str | Path,
    out: str | Path,
    fmt: str,
    *,
    model: str | None = None,
    path: str | Path | None = None,
    steps: int | None = None,
    solver: str | None = None,
    dtype: str = "float64",
) -> list[Path]:
    """Export run ``run`` (its source from ``config.json``, or the file ``path``) as ``fmt`` into the folder
    ``out``; ``steps`` adds a fixed-step rollout (pt2, onnx). Returns the written files."""
    if fmt not in FORMATS:
        raise _arg("--format", f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise _arg("--dtype", f"unknown dtype '{dtype}'; use float64 or float32")
    if steps is not None and (fmt == "safetensors" or steps < 1):
        raise _arg("--steps", "--steps is a positive number of rollout steps, for the pt2 and onnx formats")
    run = Path(run)
    saved = run_config(run)
    prog = _program(run, saved, path)
    trained, cfg, saved = trained_model(prog, run, model, DTYPES[dtype])
    rollout = None
    if steps is not None:
        name, options = _rollout_method(run, cfg, solver)
        rollout = (name, float(options["step"]), int(steps))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        save_safetensors(trained, out / "model.safetensors")
        files = {"model.safetensors": "state_dict of the model (nodedsl.export.load_exported)"}
    else:
        try:
            files = _quiet(lambda: _write_programs(trained, out, fmt, rollout))
        except ImportError as err:
            raise NodeDslError.single(
                "export-failed", f"the {fmt} export needs a package that is not installed: {err}",
                Span(str(run), 0, 0), "pip install 'nodedsl[export]'",
            ) from None  # fmt: skip
        except Exception as err:  # torch.export and the ONNX exporter raise many types; report, never a traceback
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise NodeDslError.single(
                "export-failed", f"cannot export model '{trained.name}' as {fmt}: {type(err).__name__}: {first}",
                Span(str(run), 0, 0),
            ) from None  # fmt: skip
    solver_info = None if cfg.solver is None else {"name": cfg.solver.kind, "options": dict(cfg.solver.options)}
    doc = manifest(
        trained, source=str(prog.path), source_hash=prog.source_hash(trained.name), solver=solver_info,
        fmt=fmt, files=files,
    )  # fmt: skip
    write_json(out / MANIFEST, doc)
    return [out / f for f in files] + [out / MANIFEST]


def load_exported(folder: str | Path, path: str | Path | None = None, dtype: torch.dtype | None = None):
    """The model of a safetensors export: its ``.node`` source (the manifest's, or ``path``) compiled and the
    weights loaded from ``model.safetensors`` with no pickle. ``checkpoint-mismatch`` when the source's model
    changed since the export.

    Example:
        >>> model = load_exported("out")                   # doctest: +SKIP
        >>> model.field(t, x, u)                           # doctest: +SKIP
    """
    folder = Path(folder)
    doc = read_json(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
    if doc is None or doc.get("export") != "safetensors":
        raise NodeDslError.single(
            "bad-checkpoint", f"'{folder}' is not a safetensors export (no {MANIFEST} of one)", Span(str(folder), 0, 0)
        )
    prog = _program(folder, doc, path)
    name = doc.get("model")
    if name not in prog.model_names():
        raise NodeDslError.single(
            "checkpoint-mismatch", f"'{prog.path}' has no model '{name}' (the export's)", Span(str(folder), 0, 0)
        )
    if doc.get("source_hash") and prog.source_hash(name) != doc["source_hash"]:
        raise NodeDslError.single(
            "checkpoint-mismatch",
            f"model '{name}' changed in '{prog.path}' since it was exported",
            Span(str(folder), 0, 0),
        )
    model = compiled_model(prog, name, 0)
    model = model.to(dtype or DTYPES.get(doc.get("dtype", ""), torch.get_default_dtype()))
    return load_weights_into(model, folder / "model.safetensors")
