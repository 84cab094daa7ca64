"""A trained run as a model: its ``config.json`` and its ``model.pt`` loaded into a freshly compiled model.

``nodedsl simulate --run``, ``nodedsl eval`` and :func:`nodedsl.load_run` all build the trained model
here, so they see the same parameters and nets as the run's own ``predictions.npz``.

Example:
    >>> model, cfg, saved = trained_model(program, "runs/pendulum")    # doctest: +SKIP
    >>> saved["model"], cfg.solver.name                                   # doctest: +SKIP
    ('Pendulum', 'rk4')
"""

from __future__ import annotations

from pathlib import Path

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..frontend.config import TrainConfig
from ..io.checkpoint import check_compatible, load_checkpoint
from .inputs import compiled_model
from .metrics import read_json

__all__ = ["run_config", "trained_model", "untrained_nets"]


def run_config(run: str | Path) -> dict:
    """The run directory's ``config.json`` (``bad-checkpoint`` when it is not a run directory)."""
    run = Path(run)
    path = run / "config.json"
    if not path.is_file():
        raise NodeDslError(
            [Diagnostic("bad-checkpoint", f"'{run}' is not a run directory (no config.json)", Span(str(run), 0, 0))]
        )
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise NodeDslError(
            [Diagnostic("bad-checkpoint", f"cannot read '{path}': {exc}", Span(str(path), 0, 0))]
        ) from None


def trained_model(program, run_dir: str | Path, name: str | None = None, dtype=None):
    """``(model, train config, config.json)`` of a run: the model compiled from ``program`` (in ``dtype``)
    with the run's trained parameters and nets loaded; ``checkpoint-mismatch`` when ``name`` is not the
    run's model or the model's source changed since the run."""
    run = Path(run_dir)
    saved = run_config(run)
    name = name or saved.get("model")
    if saved.get("model") and name != saved["model"]:
        raise NodeDslError(
            [
                Diagnostic(
                    "checkpoint-mismatch",
                    f"run '{run}' trained model '{saved['model']}', not '{name}'",
                    Span(str(run), 0, 0),
                )
            ]
        )
    try:
        cfg = TrainConfig.model_validate(saved["train"])
    except Exception as exc:
        raise NodeDslError(
            [Diagnostic("bad-checkpoint", f"'{run / 'config.json'}' is not valid: {exc}", Span(str(run), 0, 0))]
        ) from None
    model = compiled_model(program, name, cfg.seed)
    if dtype is not None:
        model = model.to(dtype)
    weights = run / "model.pt" if (run / "model.pt").is_file() else run / "checkpoint.pt"
    state = load_checkpoint(weights, source_hash=program.source_hash(name), model_name=name)
    check_compatible(state, model, weights)
    model.load_state_dict(state["model_state"])
    model.trained_from = str(run)
    return model, cfg, saved


def untrained_nets(model) -> list[str]:
    """The nets of a compiled model that hold only their random initialization: every net unless the
    model was loaded from a run, less those of sub-models loaded by ``weights`` clauses.

    Example:
        >>> import nodedsl
        >>> prog = nodedsl.loads("model M { state x = 1\\n net f(x) -> 1\\n der(x) = f(x) }")
        >>> untrained_nets(prog.model("M"))
        ['f']
    """
    if getattr(model, "trained_from", None):
        return []
    loaded = tuple(p.replace(".", "__") + "__" for p in getattr(model, "loaded_subs", ()))
    return [k.replace("__", ".") for k in model.nets if not k.startswith(loaded)]
