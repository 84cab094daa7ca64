"""Checkpoints: atomic writes, safe loads (``weights_only=True``), and consistency checks.

I/O shared by the program (sub-model ``weights``), training and the CLI; torch is imported inside the
functions that need it.

A checkpoint is a ``torch.save``d dict of tensors and plain Python values only::

    format           "nodedsl-checkpoint/1"
    model            model name;  source_hash: hash of the model's source (checked on load)
    param_shapes     {state_dict key: shape}
    model_state      model.state_dict()
    epoch            epochs completed
    optimizer, x0_train, x0_val, x0_val_optimizer, solver_state, remainder_optimizer
    al               {"mu": float, "lam": {constraint: tensor}}
    rng              torch.Generator state (ByteTensor)
    lr_scale, rollbacks, history, best, bad_epochs, wall_time
    config           the TrainConfig as a dict

Example:
    >>> import tempfile, os, torch
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "c.pt")
    >>> save_checkpoint(p, {"format": FORMAT, "model": "M", "source_hash": "h", "model_state": {"w": torch.ones(2)}})
    >>> load_checkpoint(p, source_hash="h")["model_state"]["w"].tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from .atomic import atomic_write

if TYPE_CHECKING:
    import torch

__all__ = ["FORMAT", "check_compatible", "load_checkpoint", "load_weights", "param_shapes", "save_checkpoint"]

FORMAT = "nodedsl-checkpoint/1"


def _span(path) -> Span:
    return Span(str(path), 0, 0)


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then ``os.replace``."""
    import torch

    atomic_write(path, lambda fh: torch.save(state, fh), binary=True)


def load_checkpoint(path: str | Path, *, source_hash: str | None = None, model_name: str | None = None) -> dict:
    """Load a checkpoint safely; ``bad-checkpoint`` if unreadable, ``checkpoint-mismatch`` if it was
    written for another model or another version of the model's source."""
    path = Path(path)
    if not path.is_file():
        raise NodeDslError(
            [
                Diagnostic(
                    "bad-checkpoint",
                    f"no checkpoint at '{path}'",
                    _span(path),
                    ("train first, or point --run at the run directory",),
                )
            ]
        )
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        zipfile.BadZipFile,
        pickle.UnpicklingError,
        AttributeError,
        KeyError,
        TypeError,
        IndexError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NodeDslError(
            [
                Diagnostic(
                    "bad-checkpoint",
                    f"checkpoint '{path}' is corrupt or truncated: {first}",
                    _span(path),
                    ("delete it and train again",),
                )
            ]
        ) from None
    if not isinstance(state, dict) or "model_state" not in state:
        raise NodeDslError([Diagnostic("bad-checkpoint", f"'{path}' is not a nodedsl checkpoint", _span(path))])
    if model_name is not None and state.get("model") not in (None, model_name):
        raise NodeDslError(
            [
                Diagnostic(
                    "checkpoint-mismatch",
                    f"checkpoint '{path}' is for model '{state.get('model')}', not '{model_name}'",
                    _span(path),
                )
            ]
        )
    if source_hash is not None and state.get("source_hash") and state.get("source_hash") != source_hash:
        raise NodeDslError(
            [
                Diagnostic(
                    "checkpoint-mismatch",
                    f"checkpoint '{path}' was written for a different "
                    f"version of model '{state.get('model')}' (its source changed)",
                    _span(path),
                    ("train from scratch (without --resume) or restore the model's source",),
                )
            ]
        )
    return state


def param_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def check_compatible(state: dict, model: torch.nn.Module, path: str | Path = "checkpoint") -> None:
    """``checkpoint-mismatch`` unless the checkpoint's parameters have the model's names and shapes."""
    mine = param_shapes(model)
    theirs = {k: list(v.shape) for k, v in state["model_state"].items()}
    if mine != theirs:
        missing = sorted(set(mine) - set(theirs))
        extra = sorted(set(theirs) - set(mine))
        wrong = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        notes = []
        if missing:
            notes.append("missing: " + ", ".join(missing[:8]))
        if extra:
            notes.append("unexpected: " + ", ".join(extra[:8]))
        for k in wrong[:8]:
            notes.append(f"{k}: checkpoint {theirs[k]}, model {mine[k]}")
        raise NodeDslError(
            [
                Diagnostic(
                    "checkpoint-mismatch",
                    f"checkpoint '{path}' does not fit model '{getattr(model, 'name', '?')}': its parameters differ",
                    _span(path),
                    tuple(notes),
                )
            ]
        )


def load_weights(
    path: str | Path, model: torch.nn.Module | None = None, *, source_hash: str | None = None
) -> dict[str, torch.Tensor]:
    """The trained ``state_dict`` from a checkpoint or a run directory (``model.pt`` or ``checkpoint.pt``);
    with ``model`` given, checked and loaded into it."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt" if (path / "model.pt").is_file() else path / "checkpoint.pt"
    state = load_checkpoint(path, source_hash=source_hash)
    if model is not None:
        check_compatible(state, model, path)
        model.load_state_dict(state["model_state"])
    return state["model_state"]
