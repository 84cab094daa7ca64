"""Experiment logs: ``log = tensorboard`` (train block) or ``--log tensorboard`` writes each epoch's
scalars through ``torch.utils.tensorboard.SummaryWriter`` into ``RUN/logs/`` (``tensorboard --logdir
runs``). The default, ``files``, writes nothing beyond the run directory's own files.

Tags: ``loss/train``, ``loss/validation``, ``lr``, ``constraints/mu``, ``violation/<constraint>``,
``multiplier/<constraint>`` (the largest magnitude), ``param/<name>`` (a vector parameter: one tag per
component, ``param/<name>[i]``); the step is the epoch.

Example:
    >>> flat_scalars({"loss/train": 0.5, "param/k": [1.0, 2.0], "x": None})
    {'loss/train': 0.5, 'param/k[0]': 1.0, 'param/k[1]': 2.0}
"""

from __future__ import annotations

import math
from pathlib import Path

from ..core.diagnostics import Diagnostic, NodeDslError, Span

__all__ = ["TensorboardLog", "epoch_scalars", "flat_scalars", "open_log"]


def flat_scalars(values: dict) -> dict[str, float]:
    """Numbers, and lists of numbers (one tag per component); None and non-numbers dropped."""
    out: dict[str, float] = {}
    for tag, v in values.items():
        if isinstance(v, bool) or v is None:
            continue
        if isinstance(v, (int, float)):
            out[tag] = float(v)
        elif isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                out.update(flat_scalars({f"{tag}[{i}]": x}))
    return out


def epoch_scalars(entry: dict) -> dict[str, float]:
    """The scalars of one history entry of the training loop."""
    values: dict = {
        "loss/train": entry.get("train_loss"),
        "loss/validation": entry.get("val_loss"),
        "lr": entry.get("lr"),
        "constraints/mu": entry.get("mu"),
    }
    values.update({f"violation/{k}": v for k, v in (entry.get("violations") or {}).items()})
    values.update({f"multiplier/{k}": v for k, v in (entry.get("multipliers") or {}).items()})
    values.update({f"param/{k}": v for k, v in (entry.get("parameters") or {}).items()})
    return {k: v for k, v in flat_scalars(values).items() if math.isfinite(v) or k.startswith("loss/")}


class TensorboardLog:
    """A ``SummaryWriter`` on ``RUN/logs``; :meth:`epoch` takes the loop's history entries."""

    def __init__(self, run: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise NodeDslError(
                [
                    Diagnostic(
                        "log-unavailable",
                        "log = tensorboard needs the tensorboard package",
                        Span("<log>", 0, 0),
                        ("pip install 'nodedsl[logs]' (or pip install tensorboard)",),
                    )
                ]
            ) from None
        self.writer = SummaryWriter(log_dir=str(Path(run) / "logs"))

    def epoch(self, entry: dict) -> None:
        step = int(entry["epoch"])
        for tag, value in epoch_scalars(entry).items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_log(kind: str, run: str | Path) -> TensorboardLog | None:
    """The experiment log of ``log = kind`` (None for ``files``)."""
    return TensorboardLog(run) if kind == "tensorboard" else None
