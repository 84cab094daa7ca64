"""Orchestration of a training run and of its evaluation (what ``nodedsl train/eval/plot`` call).

A run directory holds::

    config.json       the validated train block (after command-line overrides) and the data used
    checkpoint.pt     full training state (resume with --resume)
    model.pt          the trained weights (state_dict, source hash, learned parameter values)
    metrics.json      per-epoch losses and violations, learned parameters, final evaluation
    predictions.npz   rollouts of the validation trajectories (t, y, yhat, names, lengths)
    loss.png, fit.png plots
    energy.npz, energy.png   port-Hamiltonian models: H, dissipated and supplied power along those rollouts
    eval.json         written by ``evaluate``
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from ..data.loading import Trajectories, load_file, make_windows, match_model, split_by_trajectory
from ..frontend import ast
from ..frontend.config import TrainConfig, apply_overrides, key_span, validate_dataset, validate_train
from .checkpoint import FORMAT, check_compatible, load_checkpoint, param_shapes, save_checkpoint
from .constraints import AugmentedLagrangian
from .loop import Progress, TrainResult, _threads, build_solver, fit
from .metrics import metrics_document, read_json, rollout_errors, write_json
from .rollout import initial_states, is_autonomous, observation_map, observe, rollout

__all__ = [
    "compiled_model",
    "estimate_initial_states",
    "evaluate",
    "load_training_data",
    "plot_run",
    "run_training",
    "select_train",
]


# ------------------------------------------------------------------ helpers
def select_train(program, model: str | None = None) -> ast.Train:
    """The train block for ``model`` (or the only one); ``no-train-block`` / ``undefined-model`` otherwise."""
    trains = tuple(program.trains)
    where = Span(getattr(program, "path", "<program>"), 0, 0)
    if not trains:
        raise NodeDslError(
            [Diagnostic("no-train-block", "the file has no train block", where, ("add `train MODEL { data = ... }`",))]
        )
    if model is None:
        if len(trains) > 1:
            names = ", ".join(t.model for t in trains)
            raise NodeDslError(
                [
                    Diagnostic(
                        "ambiguous-train",
                        f"the file has {len(trains)} train blocks ({names})",
                        where,
                        ("choose one with --model NAME",),
                    )
                ]
            )
        return trains[0]
    for tr in trains:
        if tr.model == model:
            return tr
    raise NodeDslError(
        [
            Diagnostic(
                "undefined-model",
                f"no train block for model '{model}'",
                where,
                tuple(
                    n
                    for n in (
                        suggest(model, [t.model for t in trains]),
                        "train blocks: " + ", ".join(t.model for t in trains),
                    )
                    if n
                ),
            )
        ]
    )


def compiled_model(program, name: str, seed: int):
    """A fresh compiled model whose nets are initialized from ``seed`` (global RNG state untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return program.model(name)


def _aliases(model, obs_map) -> dict[str, str]:
    return {
        out: model.state_names[i]
        for out, i in zip(model.output_names, obs_map)
        if i is not None and out != model.state_names[i]
    }


def load_training_data(program, cfg: TrainConfig, model, base: str | Path | None = None) -> tuple[Trajectories, dict]:
    """The trajectories ``cfg.data`` names, matched to ``model``'s outputs and inputs, and a description.

    A file path is relative to ``base`` (the folder of the .node file); a dataset is simulated.
    """
    obs_map = observation_map(model)
    kw = dict(aliases=_aliases(model, obs_map), input_defaults=model.u_default.tolist())
    names = (tuple(model.output_names), tuple(model.input_names), tuple(model.state_names))
    if cfg.data_is_file:
        path = Path(cfg.data)
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        traj = load_file(path, *names, **kw)
        return traj, {"kind": "file", "path": str(path.resolve()), "trajectories": traj.n_traj}
    ds = program.dataset(cfg.data)
    dcfg, diags = validate_dataset(ds)
    if dcfg is None:
        raise NodeDslError(diags)
    from ..data.synth import generate

    truth = compiled_model(program, dcfg.model, dcfg.seed)
    traj = generate(truth, dcfg)
    traj = match_model(traj, *names, **kw)
    return traj, {
        "kind": "dataset",
        "name": cfg.data,
        "model": dcfg.model,
        "trajectories": traj.n_traj,
        "noise": dcfg.noise,
        "seed": dcfg.seed,
    }


def estimate_initial_states(
    model, traj: Trajectories, window: int, solver, obs_map, autonomous: bool, steps: int = 200, lr: float = 0.05
) -> torch.Tensor:
    """Initial states ``[N, n]`` for partially observed models: fitted to the first ``window`` steps."""
    from ..solvers import solve
    from .rollout import WindowField

    x0 = initial_states(model, traj.y[:, 0], obs_map)
    if all(i is not None for i in obs_map) and len({i for i in obs_map}) == len(model.state_names):
        return x0
    K = int(min(window, int(traj.lengths.min()) - 1))
    if K < 1:
        return x0
    t, y, u = traj.t[:, : K + 1], traj.y[:, : K + 1], traj.u[:, : K + 1]
    param = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([param], lr=lr)
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        from .rollout import time_groups

        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = x0.new_zeros(())
            for rows, grid in time_groups(t):
                fieldw = WindowField(model, t[rows, 0], grid, u[rows], autonomous)
                states = solve(fieldw, param[rows], grid, solver=solver).ys.transpose(0, 1)
                loss = loss + (observe(model, states, t[rows], u[rows], obs_map) - y[rows]).pow(2).sum()
            if not bool(torch.isfinite(loss)):
                break
            loss.backward()
            opt.step()
    except Exception as err:
        from ..solvers import SolverError

        if not isinstance(err, (SolverError, AssertionError)):
            raise
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
    out = param.detach()
    return out if bool(torch.isfinite(out).all()) else x0


def _rollout_outputs(model, traj: Trajectories, solver, x0: torch.Tensor | None, window: int):
    obs_map = observation_map(model)
    autonomous = is_autonomous(model)
    if x0 is None:
        x0 = estimate_initial_states(model, traj, window, solver, obs_map, autonomous)
    states = rollout(model, x0, traj.t, traj.u, solver, traj.lengths, autonomous)
    with torch.no_grad():
        yhat = observe(model, states, traj.t, traj.u, obs_map)
    return states, yhat


def _violations(model, cfg: TrainConfig, states: torch.Tensor, traj: Trajectories) -> dict[str, float]:
    infos = tuple(getattr(model, "constraints", ()) or ())
    if not infos:
        return {}
    from ..frontend.config import AugmentedLagrangian as ALConfig

    al = AugmentedLagrangian(infos, cfg.constraints or ALConfig(kind="augmented_lagrangian"), model.x0_default.dtype)
    mask = torch.arange(traj.t.shape[1])[None, :] < traj.lengths[:, None]
    n, m = states.shape[-1], traj.u.shape[-1]
    g = torch.Generator().manual_seed(int(cfg.seed) + 104729)
    try:
        return al.evaluate(
            model, states[mask].reshape(-1, n), traj.t[mask].reshape(-1), traj.u[mask].reshape(int(mask.sum()), m), g
        )
    except Exception:
        return {c.name: float("nan") for c in infos}


def _solver_error(err, cfg) -> NodeDslError:
    key = "gradient" if err.option == "gradient" else "solver"
    return NodeDslError(
        [Diagnostic("solver-error", f"cannot train with solver {cfg.solver}: {err.message}", key_span(cfg, key))]
    )


def _first_window_x0(x0: torch.Tensor | None, windows, n_traj: int) -> torch.Tensor | None:
    """The trained initial-state estimates of each trajectory's first window, in trajectory order."""
    if x0 is None or windows is None:
        return None
    first = (windows.start == 0).nonzero().flatten()
    if len(first) != n_traj:
        return None
    return x0[first[windows.traj[first].argsort()]]


# ------------------------------------------------------------------ training
def run_training(
    program,
    train_block: ast.Train,
    *,
    overrides: Mapping[str, str] | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> TrainResult:
    """Validate the train block, build the data, train, and write the run directory (see module doc)."""
    with _threads(1):
        return _run_training(program, train_block, overrides, run_dir, resume, progress)


def _run_training(program, train_block, overrides, run_dir, resume, progress) -> TrainResult:
    from ..solvers import SolverError

    cfg, diags = validate_train(train_block)
    if cfg is None:
        raise NodeDslError(diags)
    cfg = apply_overrides(cfg, dict(overrides or {}))
    name = train_block.model
    model = compiled_model(program, name, cfg.seed)
    base = Path(train_block.span.file).parent if train_block.span.file not in ("", "<unknown>", "<string>") else None
    traj, data_info = load_training_data(program, cfg, model, base)
    train_traj, val_traj = split_by_trajectory(traj, cfg.validation, cfg.seed)
    try:
        wtrain = make_windows(train_traj, cfg.window)
        wval = make_windows(val_traj, cfg.window) if val_traj is not None else None
    except NodeDslError as err:  # point at the window key when the data have no line to show
        raise NodeDslError(
            [
                replace(d, span=key_span(cfg, "window"), notes=d.notes + (f"data: {cfg.data}",))
                if d.span.line == 0
                else d
                for d in err.diagnostics
            ]
        ) from None
    run = Path(run_dir) if run_dir is not None else Path(cfg.output) if cfg.output else Path("runs") / name
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "checkpoint.pt"
    source_hash = program.source_hash(name)
    if resume and not ckpt.is_file():
        raise NodeDslError(
            [
                Diagnostic(
                    "bad-checkpoint",
                    f"nothing to resume: no checkpoint in '{run}'",
                    Span(str(run), 0, 0),
                    ("train without --resume first",),
                )
            ]
        )
    data_info.update(
        train_trajectories=train_traj.n_traj,
        val_trajectories=val_traj.n_traj if val_traj else 0,
        train_windows=len(wtrain),
        val_windows=len(wval) if wval is not None else 0,
    )
    write_json(
        run / "config.json",
        {"model": name, "source": str(train_block.span.file), "train": cfg.model_dump(mode="json"), "data": data_info},
    )
    # coupling = least_squares: a learned interconnection (C = learn skew) is estimated in one shot from
    # finite differences (train/coupling.py); when nothing else needs gradient training (no other learned
    # parameter or net, or only those of sub-models loaded by `weights`), fit only evaluates (1 epoch,
    # everything frozen); otherwise the estimate is a warm start for ordinary training.
    estimate, fit_cfg, frozen = None, cfg, []
    if cfg.coupling == "least_squares":
        from .coupling import prepare_least_squares

        estimate, fit_cfg, frozen = prepare_least_squares(program, name, model, train_traj, cfg)
        if estimate is not None:
            write_json(run / "coupling.json", estimate.summary())
    try:
        if model.noise is not None:  # an SDE model: transition likelihood or distribution matching
            from .sde_fit import train_sde

            result = train_sde(model, train_traj, val_traj, fit_cfg, progress=progress, resume=resume)
        else:
            result = fit(
                model,
                wtrain,
                wval,
                fit_cfg,
                progress=progress,
                resume_from=ckpt if resume else None,
                checkpoint_path=ckpt,
                source_hash=source_hash,
            )
    except SolverError as err:
        raise _solver_error(err, cfg) from None
    finally:
        for p in frozen:
            p.requires_grad_(True)
    if estimate is not None:
        result.extra["coupling"] = estimate.summary()
    save_checkpoint(
        run / "model.pt",
        {
            "format": FORMAT,
            "model": name,
            "source_hash": source_hash,
            "param_shapes": param_shapes(model),
            "model_state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "parameters": {k: v for k, v in result.parameters.items()},
        },
    )
    # rollouts of the held-out trajectories (the training ones when nothing is held out)
    held = val_traj if val_traj is not None else train_traj
    windows = wval if val_traj is not None else wtrain
    dt = float(held.t[0, 1] - held.t[0, 0]) if held.t.shape[1] > 1 else 1.0
    solver = build_solver(cfg.solver, dt, len(model.state_names))
    _copy_solver_state(solver, ckpt)
    x0 = _first_window_x0(result.x0_val if val_traj is not None else result.x0_train, windows, held.n_traj)
    try:
        states, yhat = _rollout_outputs(model, held, solver, x0, cfg.window)
        evaluation = rollout_errors(yhat, held.y, held.lengths, held.output_names)
        evaluation["on"] = "validation" if val_traj is not None else "training"
        evaluation["violations"] = _violations(model, cfg, states, held)
    except SolverError as err:
        states, yhat = None, None
        evaluation = {"error": err.message}
    result.extra.update(run_dir=str(run), evaluation=evaluation, data=data_info)
    write_json(
        run / "metrics.json",
        metrics_document(result, model=name, config=cfg.model_dump(mode="json"), data=data_info, evaluation=evaluation),
    )
    if yhat is not None:
        np.savez(
            run / "predictions.npz",
            t=held.t.numpy(),
            y=held.y.numpy(),
            yhat=yhat.numpy(),
            lengths=held.lengths.numpy(),
            names=np.array(held.output_names, dtype=str),
            ids=np.array([str(i) for i in held.ids], dtype=str),
        )
    if states is not None and getattr(model, "system", None) is not None and model.system.ph is not None:
        _energy_outputs(model, states, held, run)
    plot_run(run)
    return result


def _energy_outputs(model, states: torch.Tensor, traj: Trajectories, run: Path) -> None:
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


def _copy_solver_state(solver, ckpt: Path) -> None:
    params = [p for p in solver.parameters()] if hasattr(solver, "parameters") else []
    if not params or not ckpt.is_file():
        return
    try:
        saved = load_checkpoint(ckpt).get("solver_state") or []
    except NodeDslError:
        return
    if len(saved) == len(params) and all(s.shape == p.shape for s, p in zip(saved, params)):
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)


# ------------------------------------------------------------------ evaluation and plots
def _run_config(run: Path) -> dict:
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


def evaluate(program, model_name: str | None, run_dir: str | Path, data: str | Path | None = None) -> dict:
    """Rollout error of a trained run on held-out data over full trajectories, and constraint violations.

    ``data``: a CSV/NPZ file (relative to the working directory); default: the run's validation split of
    its training data. Writes ``eval.json`` into the run directory and returns the same dict.
    """
    with _threads(1):
        return _evaluate(program, model_name, run_dir, data)


def _evaluate(program, model_name, run_dir, data) -> dict:
    from ..solvers import SolverError

    run = Path(run_dir)
    saved = _run_config(run)
    name = model_name or saved.get("model")
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
    weights = run / "model.pt" if (run / "model.pt").is_file() else run / "checkpoint.pt"
    state = load_checkpoint(weights, source_hash=program.source_hash(name), model_name=name)
    check_compatible(state, model, weights)
    model.load_state_dict(state["model_state"])
    if data is not None:
        obs_map = observation_map(model)
        traj = load_file(
            data,
            tuple(model.output_names),
            tuple(model.input_names),
            tuple(model.state_names),
            aliases=_aliases(model, obs_map),
            input_defaults=model.u_default.tolist(),
        )
        on = str(data)
    else:
        info = saved.get("data", {})
        if info.get("kind") == "file":
            cfg = cfg.model_copy(update={"data": info["path"]})
        traj, _ = load_training_data(program, cfg, model, None)
        _, val = split_by_trajectory(traj, cfg.validation, cfg.seed)
        traj, on = (val, "validation") if val is not None else (traj, "training")
    dt = float(traj.t[0, 1] - traj.t[0, 0]) if traj.t.shape[1] > 1 else 1.0
    try:
        solver = build_solver(cfg.solver, dt, len(model.state_names))
        _copy_solver_state(solver, run / "checkpoint.pt")
        states, yhat = _rollout_outputs(model, traj, solver, None, cfg.window)
    except SolverError as err:
        raise _solver_error(err, cfg) from None
    out = rollout_errors(yhat, traj.y, traj.lengths, traj.output_names)
    out.update(
        on=on,
        trajectories=traj.n_traj,
        model=name,
        parameters=model.parameter_values(),
        violations=_violations(model, cfg, states, traj),
    )
    write_json(run / "eval.json", out)
    return out


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
