"""``metrics.json`` and rollout error measures.

Example:
    >>> import torch

from ..io.atomic import atomic_write
    >>> e = rollout_errors(torch.zeros(1, 3, 1), torch.ones(1, 3, 1), torch.tensor([3]), ("x",))
    >>> e["rmse"], e["per_output"]["x"]["rmse"]
    (1.0, 1.0)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..io.atomic import atomic_write

__all__ = ["jsonable", "metrics_document", "read_json", "rollout_errors", "write_json"]


def jsonable(obj: Any) -> Any:
    """Plain JSON data: tensors to lists, non-finite floats to None."""
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    return str(obj)


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, then ``os.replace``)."""
    atomic_write(path, lambda fh: fh.write(json.dumps(jsonable(obj), indent=2) + "\n"))


def read_json(path: str | Path) -> dict:
    """A run file's JSON object; ``bad-checkpoint`` if it is unreadable, not JSON or not an object."""
    from ..core.diagnostics import NodeDslError, Span
    from ..io.files import read_text

    text = read_text(path, "data-bytes", what="run file")
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise NodeDslError.single(
            "bad-checkpoint", f"run file '{path}' is not valid JSON: {exc}", Span(str(path), 0, 0)
        ) from None
    if not isinstance(obj, dict):
        raise NodeDslError.single(
            "bad-checkpoint",
            f"run file '{path}' holds a JSON {type(obj).__name__}, not an object",
            Span(str(path), 0, 0),
        )
    return obj


def metrics_document(
    result, *, model: str, config: dict, data: dict | None = None, evaluation: dict | None = None
) -> dict:
    """The content of ``metrics.json`` for a finished (or stopped) run."""
    return {
        "model": model,
        "status": result.status,
        "epochs_run": result.epochs_run,
        "wall_time": result.wall_time,
        "final": {
            "train_loss": result.train_loss,
            "val_loss": result.val_loss,
            "best_epoch": result.best_epoch,
            "best_val_loss": result.best_val_loss,
            "violations": result.violations,
            "multipliers": result.multipliers,
            "mu": result.mu,
            "rollbacks": result.rollbacks,
            "fully_observed": result.fully_observed,
        },
        "parameters": result.parameters,
        "compile": result.extra.get("compile", {}),
        "epochs": result.history,
        "data": data or {},
        "evaluation": evaluation or {},
        "config": config,
    }


def rollout_errors(
    pred: torch.Tensor,
    y: torch.Tensor,
    lengths: torch.Tensor,
    names: Sequence[str],
    missing: torch.Tensor | None = None,
) -> dict:
    """RMSE, MAE and range-normalized RMSE of predicted outputs ``[N, T, k]`` against data, over the real
    samples of every trajectory (all outputs together and per output), leaving ``missing`` values out."""
    N, T, k = y.shape
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(y.dtype)[..., None].expand(N, T, k)
    if missing is not None:
        mask = mask * (~missing).to(y.dtype)
    err = (pred - y).double() * mask
    count = mask.double().sum(dim=(0, 1)).clamp_min(1)
    mse = err.pow(2).sum(dim=(0, 1)) / count
    mae = err.abs().sum(dim=(0, 1)) / count
    yy = y.double()
    big = torch.where(mask.bool(), yy, torch.full_like(yy, -math.inf)).amax(dim=(0, 1))
    small = torch.where(mask.bool(), yy, torch.full_like(yy, math.inf)).amin(dim=(0, 1))
    span = (big - small).clamp_min(1e-12)
    per = {
        name: {"rmse": float(mse[j].sqrt()), "mae": float(mae[j]), "nrmse": float(mse[j].sqrt() / span[j])}
        for j, name in enumerate(names)
    }
    total = float((err.pow(2).sum() / count.sum()).sqrt())
    return {"rmse": total, "nrmse": float(sum(p["nrmse"] for p in per.values()) / max(len(per), 1)), "per_output": per}
