"""What a training run writes besides checkpoints: the port-Hamiltonian energy along the predicted
rollouts, and the loss and fit plots (``nodedsl plot``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..data.loading import Trajectories
from .metrics import read_json
from .setup import TrainResult

__all__ = ["describe", "energy_outputs", "plot_run"]


def energy_outputs(model, states: torch.Tensor, traj: Trajectories, run: Path) -> None:
    """Port-Hamiltonian runs: H, dissipated and supplied power along the predicted validation rollouts
    (``energy.npz``) and their plot (``energy.png``, first trajectories)."""
    from ..plots.energy import plot_energy

    n_traj, steps, n = states.shape
    x = states.reshape(-1, n)
    u = traj.u.reshape(n_traj * steps, -1).to(x.dtype)
    with torch.no_grad():
        H = model.hamiltonian(x, 0.0, u).reshape(n_traj, steps)
        diss = model.dissipation(x, 0.0, u).reshape(n_traj, steps)
        y = model.port_outputs(x, 0.0, u)
        supplied = (
            (y * u).sum(-1).reshape(n_traj, steps)
            if y.shape[-1] == u.shape[-1] and y.shape[-1]
            else torch.zeros_like(H)
        )
    np.savez(
        run / "energy.npz",
        t=traj.t.numpy(),
        H=H.numpy(),
        P_dissipated=diss.numpy(),
        P_supplied=supplied.numpy(),
        lengths=traj.lengths.numpy(),
    )
    rows = [(i, j) for i in range(min(n_traj, 5)) for j in range(int(traj.lengths[i]))]
    table = {
        "trajectory": [i for i, _ in rows],
        "t": [float(traj.t[i, j]) for i, j in rows],
        "H": [float(H[i, j]) for i, j in rows],
        "P_dissipated": [float(diss[i, j]) for i, j in rows],
        "P_supplied": [float(supplied[i, j]) for i, j in rows],
    }
    plot_energy(table, run / "energy.png", title=f"{model.name}: energy along predicted validation rollouts")


def plot_run(run_dir: str | Path) -> list[Path]:
    """(Re)draw ``loss.png`` and ``fit.png`` from ``metrics.json`` and ``predictions.npz``."""
    from ..plots.training import plot_fit, plot_losses

    run = Path(run_dir)
    written = []
    metrics_path = run / "metrics.json"
    if not metrics_path.is_file():
        raise NodeDslError(
            [Diagnostic("bad-checkpoint", f"'{run}' has no metrics.json (train first)", Span(str(run), 0, 0))]
        )
    try:
        metrics = read_json(metrics_path)
    except (OSError, ValueError) as exc:
        raise NodeDslError(
            [Diagnostic("bad-checkpoint", f"cannot read '{metrics_path}': {exc}", Span(str(metrics_path), 0, 0))]
        ) from None
    if metrics.get("epochs"):
        plot_losses(metrics["epochs"], run / "loss.png")
        written.append(run / "loss.png")
    pred = run / "predictions.npz"
    if pred.is_file():
        try:
            with np.load(pred, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise NodeDslError(
                [Diagnostic("bad-checkpoint", f"cannot read '{pred}': {exc}", Span(str(pred), 0, 0))]
            ) from None
        plot_fit(
            arrays["t"],
            arrays["y"],
            arrays["yhat"],
            [str(s) for s in arrays["names"]],
            run / "fit.png",
            arrays.get("lengths"),
            [str(s) for s in arrays.get("ids", [])] or None,
        )
        written.append(run / "fit.png")
    return written


def describe(result: TrainResult) -> dict[str, Any]:
    """A short summary (for the CLI)."""
    return {
        "status": result.status,
        "epochs": result.epochs_run,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "parameters": result.parameters,
        "violations": result.violations,
        "wall_time": result.wall_time,
    }
