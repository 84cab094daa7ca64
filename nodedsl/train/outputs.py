"""What a training run writes besides checkpoints: the port-Hamiltonian energy along the predicted
rollouts, and the loss and fit plots (``nodedsl plot``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..compiler.power import supplied_power
from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..data.loading import Trajectories
from .metrics import read_json
from .setup import TrainResult

__all__ = ["describe", "energy_outputs", "plot_energy_npz", "plot_run"]


def energy_outputs(model, states: torch.Tensor, traj: Trajectories, run: Path) -> None:
    """Port-Hamiltonian runs: H, dissipated and supplied power along the predicted validation rollouts
    (``energy.npz``) and their plot (``energy.png``, first trajectories)."""
    n_traj, steps, n = states.shape
    x = states.reshape(-1, n)
    u = traj.u.reshape(n_traj * steps, -1).to(x.dtype)
    with torch.no_grad():
        H = model.hamiltonian(x, 0.0, u).reshape(n_traj, steps)
        diss = model.dissipation(x, 0.0, u).reshape(n_traj, steps)
        supplied = supplied_power(model, x, 0.0, u).reshape(n_traj, steps)
    np.savez(
        run / "energy.npz",
        t=traj.t.numpy(),
        H=H.numpy(),
        P_dissipated=diss.numpy(),
        P_supplied=supplied.numpy(),
        lengths=traj.lengths.numpy(),
        ids=np.array([str(i) for i in traj.ids], dtype=str),
    )
    plot_energy_npz(run, model.name)


def plot_energy_npz(run: Path, model_name: str) -> Path:
    """``energy.png`` from ``energy.npz``: the first trajectories, numbered as in ``fit.png`` (data ids)."""
    from ..plots.energy import plot_energy

    with np.load(run / "energy.npz", allow_pickle=False) as z:
        e = {k: z[k] for k in z.files}
    n_traj = e["H"].shape[0]
    ids = [str(s) for s in e["ids"]] if "ids" in e else [str(i) for i in range(n_traj)]
    rows = [(i, j) for i in range(min(n_traj, 3)) for j in range(int(e["lengths"][i]))]
    table = {
        "trajectory": [_number(ids[i], i) for i, _ in rows],
        "t": [float(e["t"][i, j]) for i, j in rows],
        "H": [float(e["H"][i, j]) for i, j in rows],
        "P_dissipated": [float(e["P_dissipated"][i, j]) for i, j in rows],
        "P_supplied": [float(e["P_supplied"][i, j]) for i, j in rows],
    }
    plot_energy(table, run / "energy.png", title=f"{model_name}: energy along predicted validation rollouts")
    return run / "energy.png"


def net_outputs(program, model, states: torch.Tensor, held, data_info: dict, run: Path) -> None:
    """``nets.npz``: each scalar net's curve along the held-out states, with the truth it implies when
    the data came from a dataset block (see :mod:`nodedsl.train.netcurves`)."""
    from .netcurves import net_curves, save_net_curves

    truth = None
    if data_info.get("kind") == "dataset":
        try:
            truth = program.model(data_info["model"], dtype=states.dtype)
        except NodeDslError:
            truth = None
    N, T, n = states.shape
    real = (torch.arange(T)[None, :] < held.lengths[:, None]).reshape(-1)
    t = held.t.to(states.dtype).reshape(-1)[real]
    x = states.reshape(-1, n)[real]
    u = held.u.to(states.dtype).reshape(N * T, -1)[real]
    curves = net_curves(model, truth, t, x, u)
    if curves:
        save_net_curves(run / "nets.npz", curves)


def _number(text: str, fallback: int) -> float:
    try:
        return float(text)
    except ValueError:
        return float(fallback)


def plot_run(run_dir: str | Path) -> list[Path]:
    """(Re)draw ``loss.png``, ``fit.png`` and (port-Hamiltonian runs) ``energy.png`` from ``metrics.json``,
    ``predictions.npz`` and ``energy.npz``."""
    from ..plots.training import plot_fit, plot_losses, plot_phase

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
    epochs = metrics.get("epochs")
    if epochs:
        if not isinstance(epochs, list) or not all(
            isinstance(h, dict) and isinstance(h.get("epoch"), int) and isinstance(h.get("violations", {}), dict)
            for h in epochs
        ):
            raise NodeDslError.single(
                "bad-checkpoint",
                f"'{metrics_path}': 'epochs' is not a list of epoch records",
                Span(str(metrics_path), 0, 0),
            )
        plot_losses(epochs, run / "loss.png", metrics.get("config"))
        written.append(run / "loss.png")
    pred = run / "predictions.npz"
    if pred.is_file():
        arrays = _predictions(pred)
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
        if len(arrays["names"]) == 2:
            plot_phase(
                arrays["y"],
                arrays["yhat"],
                [str(s) for s in arrays["names"]],
                run / "phase.png",
                arrays.get("lengths"),
                [str(s) for s in arrays.get("ids", [])] or None,
            )
            written.append(run / "phase.png")
    if (run / "nets.npz").is_file():
        written.append(_plot_nets(run))
    if (run / "energy.npz").is_file():
        try:
            written.append(plot_energy_npz(run, str(metrics.get("model", ""))))
        except (OSError, ValueError, EOFError, KeyError) as exc:
            raise NodeDslError(
                [Diagnostic("bad-checkpoint", f"cannot read '{run / 'energy.npz'}': {exc}", Span(str(run), 0, 0))]
            ) from None
    return written


def _plot_nets(run: Path) -> Path:
    """``nets.png`` from ``nets.npz`` (arrays ``NAME.input``, ``NAME.output``, ``NAME.truth``)."""
    from ..io.npz import read_npz
    from ..plots.nets import plot_net_curves

    arrays = read_npz(run / "nets.npz", code="bad-checkpoint")
    curves: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        name, _, part = key.rpartition(".")
        curves.setdefault(name, {})[part] = np.asarray(value, dtype=float)
    curves = {k: c for k, c in curves.items() if "input" in c and "output" in c and len(c["input"])}
    if not curves:
        raise NodeDslError.single("bad-checkpoint", f"'{run / 'nets.npz'}' holds no net curve", Span(str(run), 0, 0))
    plot_net_curves(curves, run / "nets.png")
    return run / "nets.png"


def _predictions(pred: Path) -> dict[str, np.ndarray]:
    """The arrays of ``predictions.npz``; ``bad-checkpoint`` when it is unreadable or lacks one."""
    from ..io.npz import read_npz

    arrays = read_npz(pred, code="bad-checkpoint")
    missing = [k for k in ("t", "y", "yhat", "names") if k not in arrays]
    where = Span(str(pred), 0, 0)
    if missing:
        raise NodeDslError.single("bad-checkpoint", f"'{pred}' lacks the array(s) {', '.join(missing)}", where)
    t, y, yhat, names = arrays["t"], arrays["y"], arrays["yhat"], arrays["names"]
    if y.shape != yhat.shape or y.ndim != 3 or t.shape != y.shape[:2] or len(names) != y.shape[2]:
        raise NodeDslError.single("bad-checkpoint", f"'{pred}': its arrays' shapes do not fit together", where)
    return arrays


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
