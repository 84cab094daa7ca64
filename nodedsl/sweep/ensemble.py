"""Ensembles: several trained runs of one model (different seeds, or the runs of a sweep) evaluated on the
same held-out trajectories; the mean and spread of every metric and of the predictions, and bands.

Every member is rolled out over the same trajectories: the file given with ``--data``, else the
validation split of the first run (members trained with other seeds held out other trajectories, so
each one's own split would not be comparable). The spread is the population standard deviation over the
members (``ddof = 0``; zero for one member).

Example::

    nodedsl eval examples/pendulum.node --runs sweeps/p/*seed* -o sweeps/p/ensemble
    nodedsl plot --runs sweeps/p/*seed* -o bands.png

    >>> summarize([{"rmse": 1.0, "per": {"x": 2.0}}, {"rmse": 3.0, "per": {"x": 2.0}}])
    ({'rmse': 2.0, 'per': {'x': 2.0}}, {'rmse': 1.0, 'per': {'x': 0.0}})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.diagnostics import Diagnostic, NodeDslError, Span

__all__ = ["ensemble_predictions", "evaluate_ensemble", "plot_ensemble", "summarize"]


def summarize(evals: list[dict]) -> tuple[dict, dict]:
    """Mean and standard deviation (``ddof = 0``) of every numeric leaf of ``evals`` (same structure)."""
    first = evals[0]
    mean: dict = {}
    std: dict = {}
    for key, value in first.items():
        if isinstance(value, dict):
            subs = [e[key] for e in evals if isinstance(e.get(key), dict)]
            if len(subs) == len(evals):
                mean[key], std[key] = summarize(subs)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            vals = np.array([float(e[key]) for e in evals], dtype=float)
            mean[key], std[key] = float(vals.mean()), float(vals.std())
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
            arr = np.array([e[key] for e in evals], dtype=float)
            mean[key], std[key] = arr.mean(0).tolist(), arr.std(0).tolist()
    return mean, std


def _program_of(run: Path):
    from ..program import load
    from ..train.trained import run_config

    source = run_config(run).get("source")
    if not source or not Path(source).is_file():
        raise NodeDslError.single(
            "bad-checkpoint",
            f"the source of run '{run}' ({source}) is not there",
            Span(str(run), 0, 0),
            "use `nodedsl eval FILE --runs ...` with the .node file",
        )
    return load(source)


def ensemble_predictions(runs: list[str | Path], program=None, model: str | None = None, data=None) -> dict:
    """Every member rolled out over the same trajectories: ``{"model", "on", "traj", "members" (one
    evaluation dict per run), "yhat" [M, N, T, k]}``. ``program``: default, the first run's source."""
    import torch

    from ..train.evaluate import evaluate_on, held_out_data
    from ..train.setup import intra_op_threads
    from ..train.trained import trained_model

    if not runs:
        raise NodeDslError(
            [Diagnostic("bad-argument", "--runs needs at least one run directory", Span("<command line>", 0, 0))]
        )
    paths = [Path(r) for r in runs]
    program = program if program is not None else _program_of(paths[0])
    members, preds, name, traj, on = [], [], None, None, ""
    with intra_op_threads(1):
        for run in paths:
            net, cfg, saved = trained_model(program, run, model)
            this = saved.get("model") or model
            if name is not None and this != name:
                raise NodeDslError.single(
                    "bad-argument",
                    f"run '{run}' trained model '{this}', not '{name}' like '{paths[0]}'",
                    Span(str(run), 0, 0),
                    "an ensemble's runs must be of the same model",
                )
            if traj is None:
                name = this
                traj, on = held_out_data(program, net, cfg, saved, data)
            out, yhat = evaluate_on(net, cfg, traj, run)
            members.append(out)
            preds.append(yhat.detach())
    return {"model": name, "on": on, "traj": traj, "members": members, "yhat": torch.stack(preds)}


def evaluate_ensemble(
    runs: list[str | Path], program=None, model: str | None = None, data=None, out: str | Path | None = None
) -> dict:
    """Mean and spread of the members' evaluations and predictions; with ``out``, writes
    ``out/ensemble.json`` and ``out/ensemble.npz`` (t, y, lengths, names, yhat of every member, their
    mean and standard deviation)."""
    from ..io.atomic import atomic_write
    from ..train.metrics import rollout_errors, write_json

    pred = ensemble_predictions(runs, program, model, data)
    traj, yhat = pred["traj"], pred["yhat"]
    mean, std = summarize(pred["members"])
    ymean, ystd = yhat.mean(0), yhat.std(0, unbiased=False)
    mask = (np.arange(traj.t.shape[1])[None, :] < traj.lengths.numpy()[:, None])[..., None]
    spread = {n: float(ystd[..., j].numpy()[mask[..., 0]].mean()) for j, n in enumerate(traj.output_names)}
    result = {
        "model": pred["model"],
        "on": pred["on"],
        "trajectories": traj.n_traj,
        "runs": [str(r) for r in runs],
        "mean": mean,
        "std": std,
        "ensemble_mean_prediction": rollout_errors(ymean, traj.y, traj.lengths, traj.output_names, traj.missing),
        "prediction_spread": spread,
        "members": pred["members"],
    }
    if out is not None:
        folder = Path(out)
        write_json(folder / "ensemble.json", result)
        arrays = {
            "t": traj.t.numpy(),
            "y": traj.y.numpy(),
            "lengths": traj.lengths.numpy(),
            "names": np.array(traj.output_names, dtype=str),
            "yhat": yhat.numpy(),
            "yhat_mean": ymean.numpy(),
            "yhat_std": ystd.numpy(),
        }
        atomic_write(folder / "ensemble.npz", lambda fh: np.savez(fh, **arrays), binary=True)
    return result


def plot_ensemble(
    runs: list[str | Path], out: str | Path, *, trajectory: int = 0, program=None, model=None, data=None
) -> dict[str, Any]:
    """Prediction bands across the ensemble for one held-out trajectory (index ``trajectory``), with its
    data (:func:`nodedsl.plots.bands.plot_bands`, the members as the paths)."""
    from ..plots.bands import plot_bands

    pred = ensemble_predictions(runs, program, model, data)
    traj, yhat = pred["traj"], pred["yhat"].numpy()
    if not 0 <= trajectory < traj.n_traj:
        raise NodeDslError.single(
            "bad-argument",
            f"--trajectory {trajectory}: the held-out data have {traj.n_traj} trajectories (0..{traj.n_traj - 1})",
            Span("<command line>", 0, 0),
        )
    n = int(traj.lengths[trajectory])
    t = traj.t[trajectory, :n].numpy()
    m = yhat.shape[0]
    table: dict[str, Any] = {"trajectory": np.repeat(np.arange(m), n), "t": np.tile(t, m)}
    observed = {}
    for j, name in enumerate(traj.output_names):
        table[name] = yhat[:, trajectory, :n, j].reshape(-1)
        y = traj.y[trajectory, :n, j].numpy()
        keep = np.isfinite(y)
        observed[name] = (t[keep], y[keep])
    ident = traj.ids[trajectory] if hasattr(traj, "ids") else trajectory
    title = f"{pred['model']}: ensemble of {m} runs, trajectory {ident} ({pred['on']})"
    summary = plot_bands(table, out, show_paths=m, title=title, observed=observed, path_label="members")
    summary["members"] = m
    summary["trajectory"] = str(ident)
    return summary
