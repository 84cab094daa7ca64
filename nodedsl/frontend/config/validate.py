"""Validate ``dataset`` and ``train`` blocks: plain data, then the pydantic schema, then the solver's options.

Solver options are checked against the torch-free catalog (``nodedsl.core.solvers.check_options``).

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> tr = parse_source("train M { data = d\\n solver = rk4(stp = 1) }", "m.node").trains[0]
    >>> cfg, diags = validate_train(tr)
    >>> cfg, [(d.code, d.span.line) for d in diags]
    (None, [('unknown-key', 2)])
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ...core.diagnostics import Diagnostic, Span
from ...core.errors import SolverError
from ...core.solvers import check_options
from .. import ast
from .errors import locate, to_diagnostics
from .schema import DatasetConfig, SolverCall, TrainConfig, as_call
from .values import PathT, entries_to_plain, normalize


def solver_args(call: SolverCall) -> tuple[str, dict]:
    """``(name, options)`` for ``make_solver``.

    Example:
        >>> solver_args(SolverCall(kind="rk4", options={"step": 0.1}))
        ('rk4', {'step': 0.1})
    """
    return call.kind, dict(call.options)


def check_solver(call: SolverCall | None, spans: dict, path: PathT, default: Span) -> list[Diagnostic]:
    """Check a solver call's options against the catalog; a missing ``step`` is filled in from the data later.

    Example:
        >>> call = SolverCall(kind="rk4", options={"step": -1})
        >>> [d.message for d in check_solver(call, {}, ("solver",), Span("f", 0, 0))]
        ["bad value for 'solver': option 'step' of solver 'rk4' must be > 0, got -1.0"]
    """
    if call is None:
        return []
    try:
        check_options(call.kind, call.options)
    except SolverError as err:
        if err.option == "step" and "step" not in call.options:
            try:
                check_options(call.kind, {**call.options, "step": 1.0})
                return []
            except SolverError as err2:
                err = err2
        span, _ = locate(path + ((err.option,) if err.option and err.option in call.options else ()), spans, default)
        code = "unknown-key" if err.message.startswith("unknown option") else "bad-value"
        return [Diagnostic(code, f"bad value for '{'.'.join(map(str, path))}': {err.message}", span)]
    return []


def _validate(
    entries: tuple[ast.Entry, ...], block: Span, model_cls: type[BaseModel], what: str, extra: dict | None = None
) -> tuple[Any, list[Diagnostic]]:
    """Validate a block's entries as ``model_cls`` (``extra``: keys given by the block header)."""
    spans: dict = {}
    diags: list[Diagnostic] = []
    plain = entries_to_plain(entries, (), spans, diags)
    plain = normalize(plain, (), spans, diags)
    if extra:
        for k in extra:
            if k in plain:
                diags.append(
                    Diagnostic(
                        "unknown-key",
                        f"unknown key '{k}' in {what}",
                        spans[(k,)],
                        (f"the {k} is given in the block header",),
                    )
                )
        plain = {**plain, **extra}
    try:
        cfg: Any = model_cls.model_validate(plain)
    except ValidationError as exc:
        diags = diags + to_diagnostics(exc, model_cls, spans, block, what)
        # the block is validated as a whole: the solver's own options too, when its spec parses
        if isinstance(plain, dict) and plain.get("solver") is not None:
            solver_span = spans.get(("solver",))
            if not any(d.span == solver_span for d in diags):
                try:
                    spec = SolverCall.model_validate(as_call(plain["solver"]))
                except ValidationError:
                    spec = None
                diags += check_solver(spec, spans, ("solver",), block)
        return None, diags
    cfg._spans = spans
    diags += check_solver(cfg.solver, spans, ("solver",), block)
    if any(d.severity == "error" for d in diags):
        return None, diags
    return cfg, diags


def validate_dataset(ds: ast.Dataset) -> tuple[DatasetConfig | None, list[Diagnostic]]:
    """Validate a ``dataset`` block; the config is None when there is any error."""
    return _validate(ds.entries, ds.span, DatasetConfig, f"dataset '{ds.name}'")


def validate_train(tr: ast.Train) -> tuple[TrainConfig | None, list[Diagnostic]]:
    """Validate a ``train`` block; the config is None when there is any error."""
    cfg, diags = _validate(tr.entries, tr.span, TrainConfig, f"train block of '{tr.model}'", {"model": tr.model})
    if cfg is not None:
        data_entry = next((e for e in tr.entries if e.key == "data"), None)
        if data_entry is not None and isinstance(data_entry.value, ast.VString) and not cfg.data_is_file:
            diags.append(
                Diagnostic(
                    "bad-value",
                    f"bad value for 'data': a data file must end in .csv, .parquet, .h5 or .npz, got '{cfg.data}'",
                    data_entry.span,
                    ("a dataset is named without quotes: data = swings",),
                )
            )
            return None, diags
    return cfg, diags
