"""Training and evaluating density runs (``objective = density``): the points, the split, the loop, and
the run directory (``config.json``, ``model.pt``, ``metrics.json``, ``loss.png``; ``eval.json`` from
``nodedsl eval``). The flow itself is in :mod:`nodedsl.train.density`.

The loss is the mean negative log-likelihood of a minibatch of points (nats per point); a seeded
``validation`` fraction of the points is held out and its NLL reported after every epoch. The optimizer,
schedule, clipping, batch size, epochs and seed come from the train block as for trajectory training.

Example:
    >>> split_points(torch.arange(10.0).reshape(5, 2), 0.4, 0)[1].shape
    torch.Size([2, 2])
"""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path

import torch

from ..core.diagnostics import NodeDslError
from ..frontend.config import key_span
from ..io.checkpoint import FORMAT, param_shapes, save_checkpoint
from .density import load_points, log_likelihood, trace_mode
from .inputs import compiled_model
from .metrics import metrics_document, write_json
from .setup import TrainResult, make_optimizer, schedule_factor

__all__ = ["evaluate_density", "fit_density", "run_density", "split_points"]

_FILES = ("checkpoint.pt", "model.pt", "metrics.json", "predictions.npz", "eval.json", "loss.png", "fit.png")


def split_points(pts: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(train, validation)`` rows of ``pts``: a seeded random ``fraction`` held out (None when 0)."""
    n_val = int(round(fraction * pts.shape[0]))
    if n_val == 0 or n_val >= pts.shape[0]:
        return pts, None
    perm = torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(int(seed) + 1))
    return pts[perm[n_val:]], pts[perm[:n_val]]


def mean_nll(model, pts: torch.Tensor, spec, seed: int, chunk: int = 4096) -> float:
    """Mean negative log-likelihood (nats per point) of ``pts`` (probes seeded by ``seed``)."""
    g = torch.Generator().manual_seed(int(seed))
    total = 0.0
    for i in range(0, pts.shape[0], chunk):
        total += float(-log_likelihood(model, pts[i : i + chunk], spec, g).sum())
    return total / pts.shape[0]


def fit_density(model, train: torch.Tensor, val: torch.Tensor | None, cfg, progress=None) -> TrainResult:
    """Train the flow in place on points ``train [N, n]``; the validation NLL after every epoch."""
    spec = cfg.objective
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise NodeDslError.single(
            "bad-value",
            "objective = density needs a model with a net or learned parameters",
            key_span(cfg, "objective"),
        )
    if cfg.optimizer.kind not in ("adam", "adamw", "lbfgs"):  # Gauss-Newton/KFAC model residuals, not an NLL
        raise NodeDslError.single(
            "bad-value",
            f"objective = density trains with adam, adamw or lbfgs, not {cfg.optimizer.kind}",
            key_span(cfg, "optimizer"),
        )
    opt = make_optimizer(cfg.optimizer, params)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    history: list[dict] = []
    wall, status = 0.0, "completed"
    for epoch in range(cfg.epochs):
        started = time.perf_counter()
        lr = cfg.optimizer.lr * schedule_factor(cfg.schedule, epoch, cfg.epochs, cfg.optimizer.lr)
        for group in opt.param_groups:
            group["lr"] = lr
        perm = torch.randperm(train.shape[0], generator=gen)
        total = 0.0
        for i in range(0, train.shape[0], cfg.batch):
            batch = train[perm[i : i + cfg.batch]]

            def closure(batch=batch):
                opt.zero_grad(set_to_none=True)
                loss = -log_likelihood(model, batch, spec, gen, train=True).mean()
                loss.backward()
                if cfg.clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                return loss

            loss = opt.step(closure)
            total += float(loss.detach()) * batch.shape[0]
        train_nll = total / train.shape[0]
        val_nll = mean_nll(model, val, spec, cfg.seed + 17) if val is not None else None
        wall += time.perf_counter() - started
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_nll,
                "val_loss": val_nll,
                "violations": {},
                "lr": lr,
                "wall_time": wall,
                "parameters": model.parameter_values(),
            }
        )
        if progress is not None:
            progress(epoch + 1, cfg.epochs, train_nll, val_nll, None)
        if not math.isfinite(train_nll):
            status = "diverged"
            break
    vals = [h["val_loss"] for h in history if h["val_loss"] is not None]
    best = min(range(len(vals)), key=vals.__getitem__) if vals else None
    return TrainResult(
        status=status,
        epochs_run=len(history),
        history=history,
        train_loss=history[-1]["train_loss"],
        val_loss=history[-1]["val_loss"],
        best_epoch=best + 1 if best is not None else None,
        best_val_loss=vals[best] if best is not None else None,
        parameters=model.parameter_values(),
        violations={},
        multipliers={},
        mu=None,
        rollbacks=0,
        wall_time=wall,
        fully_observed=True,
        extra={"objective": "density", "trace": trace_mode(spec, train.shape[1])},
    )


def _points(cfg, model, base: Path | None) -> tuple[torch.Tensor, Path]:
    if not cfg.data.lower().endswith(".csv"):
        raise NodeDslError.single(
            "bad-value",
            f"objective = density needs data = \"points.csv\" (a CSV of samples), not '{cfg.data}'",
            key_span(cfg, "data"),
        )
    path = Path(cfg.data)
    if not path.is_absolute() and base is not None:
        path = base / path
    return load_points(path, tuple(model.state_names), model.x0_default.dtype), path


def run_density(program, train_block, cfg, run: Path, resume: bool, progress=None) -> TrainResult:
    """Train a density run and write its run directory (``--resume`` is not offered for density runs)."""
    if resume:
        raise NodeDslError.single(
            "bad-argument", "--resume is not supported for objective = density", key_span(cfg, "objective")
        )
    if cfg.derivatives is not None:
        raise NodeDslError.single(
            "bad-value", "derivatives = ... supervises trajectories; a density has none", key_span(cfg, "derivatives")
        )
    name = train_block.model
    model = compiled_model(program, name, cfg.seed)
    file = train_block.span.file
    base = Path(file).parent if file not in ("", "<unknown>", "<string>") else None
    pts, path = _points(cfg, model, base)
    train, val = split_points(pts, cfg.validation, cfg.seed)
    run.mkdir(parents=True, exist_ok=True)
    for f in _FILES:
        (run / f).unlink(missing_ok=True)
    run_id = uuid.uuid4().hex
    data = {
        "kind": "file",
        "path": str(path.resolve()),
        "points": int(pts.shape[0]),
        "run_id": run_id,
        "train_points": int(train.shape[0]),
        "val_points": int(val.shape[0]) if val is not None else 0,
    }
    config = cfg.model_dump(mode="json")
    write_json(
        run / "config.json", {"model": name, "run_id": run_id, "source": str(file), "train": config, "data": data}
    )
    result = fit_density(model, train, val, cfg, progress)
    source_hash = program.source_hash(name)
    save_checkpoint(
        run / "model.pt",
        {
            "format": FORMAT,
            "model": name,
            "source_hash": source_hash,
            "run_id": run_id,
            "param_shapes": param_shapes(model),
            "model_state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "parameters": dict(result.parameters),
        },
    )
    held = val if val is not None else train
    nll = mean_nll(model, held, cfg.objective, cfg.seed + 17)
    evaluation = {
        "on": "validation" if val is not None else "training",
        "points": int(held.shape[0]),
        "nll": nll,
        "log_likelihood": -nll,
        "trace": result.extra["trace"],
    }
    result.extra.update(run_dir=str(run), evaluation=evaluation, data=data)
    doc = metrics_document(result, model=name, config=config, data=data, evaluation=evaluation)
    write_json(run / "metrics.json", {**doc, "run_id": run_id})
    from .outputs import plot_run

    plot_run(run)
    return result


def evaluate_density(model, cfg, saved: dict, run: Path | None, data) -> dict:
    """Test log-likelihood (nats per point) of a trained density run on ``data`` (a CSV of points) or on
    its validation split; writes ``eval.json`` into the run."""
    if data is not None:
        pts, on = load_points(data, tuple(model.state_names), model.x0_default.dtype), str(data)
    else:
        info = saved.get("data", {})
        pts = load_points(info["path"], tuple(model.state_names), model.x0_default.dtype)
        train, val = split_points(pts, cfg.validation, cfg.seed)
        pts, on = (val, "validation") if val is not None else (train, "training")
    nll = mean_nll(model, pts, cfg.objective, cfg.seed + 17)
    out = {
        "on": on,
        "points": int(pts.shape[0]),
        "model": saved.get("model"),
        "nll": nll,
        "log_likelihood": -nll,
        "trace": trace_mode(cfg.objective, pts.shape[1]),
    }
    if run is not None:
        write_json(Path(run) / "eval.json", out)
    return out
