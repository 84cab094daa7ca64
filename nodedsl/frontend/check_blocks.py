"""Checks of the root file's ``dataset`` and ``train`` blocks: keys and values (pydantic models in
:mod:`nodedsl.frontend.config`, errors located at the key), and the names they refer to (models, datasets,
states and inputs of the dataset's model).

Example:
    >>> from nodedsl.frontend.loader import source_from_text
    >>> from nodedsl.frontend.check import check_source
    >>> _, diags = check_source(source_from_text("train M { data = \\"d.csv\\"\\n epochs = 0 }", "m"))
    >>> sorted(d.code for d in diags)
    ['bad-value', 'undefined-model']
"""

from __future__ import annotations

from typing import Any

from ..core.diagnostics import Collector, suggest
from . import ast, config
from .check_inputs import check_input_expressions
from .check_noise import check_sde_block
from .model_info import CheckedProgram, ModelInfo, flat_names


def check_blocks(prog: CheckedProgram, diags: Collector) -> None:
    """Datasets and train blocks of the root file: referenced names exist, keys and values validated."""
    root = prog.source.root
    module = prog.source.modules[root]
    scope = prog.source.scopes.get(root, {})
    models = [n for n, (_, v) in scope.items() if isinstance(v, ast.Model)]
    datasets = [n for n, (_, v) in scope.items() if isinstance(v, ast.Dataset)]
    for ds in module.datasets:
        cfg, errs = config.validate_dataset(ds)
        diags.items.extend(errs)
        if cfg is not None:
            prog.configs[f"dataset {ds.name}"] = cfg
            if cfg.model not in models:
                span = next((e.span for e in ds.entries if e.key == "model"), ds.span)
                diags.error(
                    "undefined-model",
                    f"dataset '{ds.name}': unknown model '{cfg.model}'",
                    span,
                    suggest(cfg.model, models),
                )
            else:
                _check_dataset_names(prog.model(cfg.model), ds, cfg, diags)
                check_input_expressions(prog.model(cfg.model), ds, cfg, diags)
                check_sde_block(prog.model(cfg.model), ds, cfg, diags)
    first: dict[str, ast.Train] = {}
    for tr in module.trains:
        if tr.model in first:
            diags.error(
                "duplicate-name",
                f"a second train block for model '{tr.model}'",
                tr.span,
                f"the first is at {first[tr.model].span}; `nodedsl train --model {tr.model}` could never "
                "select this one: merge them, or train another model",
            )
        first.setdefault(tr.model, tr)
        if tr.model not in models:
            diags.error("undefined-model", f"train: unknown model '{tr.model}'", tr.span, suggest(tr.model, models))
        tcfg, errs = config.validate_train(tr)
        diags.items.extend(errs)
        if tcfg is not None:
            prog.configs[f"train {tr.model}"] = tcfg
            if tr.model in models:
                check_sde_block(prog.model(tr.model), tr, tcfg, diags)
            data = getattr(tcfg, "data", None)
            if isinstance(data, str) and not data.endswith((".csv", ".npz")) and data not in datasets:
                span = next((e.span for e in tr.entries if e.key == "data"), tr.span)
                diags.error(
                    "undefined-name",
                    f"train: unknown dataset '{data}'",
                    span,
                    suggest(data, datasets) or "data is a dataset name or a .csv/.npz path",
                )


def _check_dataset_names(info: ModelInfo | None, ds: ast.Dataset, cfg: Any, diags: Collector) -> None:
    """``initial`` keys are states and ``inputs`` keys are inputs of the dataset's model."""
    if info is None:
        return
    for key, entries, what in (("initial", info.states, "state"), ("inputs", info.inputs, "input")):
        names = {n for n, _ in entries} | {c for n, s in entries for c in flat_names(n, s)}
        block = next((e for e in ds.entries if e.key == key), None)
        if block is None or not isinstance(block.value, ast.VMap):
            continue
        for entry in block.value.entries:
            if entry.key not in names:
                diags.error(
                    "undefined-name",
                    f"dataset '{ds.name}': '{entry.key}' is not {'an' if what == 'input' else 'a'} "
                    f"{what} of model '{info.name}'",
                    entry.span,
                    suggest(entry.key, names) or f"{what}s: " + (", ".join(n for n, _ in entries) or "none"),
                )
