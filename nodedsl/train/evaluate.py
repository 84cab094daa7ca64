"""Evaluating a trained model: rollouts over whole trajectories, their errors, constraint violations, and
``nodedsl eval`` (``evaluate``) on a run directory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..data.loading import Trajectories, load_file, split_by_trajectory
from ..frontend.config import TrainConfig, key_span, validate_train
from ..io.checkpoint import load_checkpoint
from .constraints import AugmentedLagrangian
from .inputs import estimate_initial_states, load_training_data, model_aliases
from .metrics import rollout_errors, write_json
from .rollout import is_autonomous, observation_map, observe, rollout
from .setup import build_solver, intra_op_threads
from .trained import trained_model, untrained_nets

__all__ = [
    "copy_solver_state",
    "evaluate",
    "evaluate_on",
    "held_out_data",
    "rollout_outputs",
    "solver_error",
    "violations_after",
]


def rollout_outputs(model, traj: Trajectories, solver, x0: torch.Tensor | None, window: int):
    obs_map = observation_map(model)
    autonomous = is_autonomous(model)
    if x0 is None:
        x0 = estimate_initial_states(model, traj, window, solver, obs_map, autonomous)
    states = rollout(model, x0, traj.t, traj.u, solver, traj.lengths, autonomous)
    with torch.no_grad():
        yhat = observe(model, states, traj.t, traj.u, obs_map)
    return states, yhat


def violations_after(model, cfg: TrainConfig, states: torch.Tensor, traj: Trajectories) -> dict[str, float]:
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


def solver_error(err, cfg) -> NodeDslError:
    key = "gradient" if err.option == "gradient" else "solver"
    return NodeDslError(
        [Diagnostic("solver-error", f"cannot train with solver {cfg.solver}: {err.message}", key_span(cfg, key))]
    )


def copy_solver_state(solver, ckpt: Path) -> None:
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


def evaluate(program, model_name: str | None, run_dir: str | Path | None, data: str | Path | None = None) -> dict:
    """Rollout error of a trained run on held-out data over full trajectories, and constraint violations.

    ``data``: a CSV/NPZ file (relative to the working directory); default: the run's validation split of
    its training data. Writes ``eval.json`` into the run directory and returns the same dict. Without a
    run (``run_dir`` None), ``model_name`` is evaluated on ``data`` as compiled, with the weights of its
    ``weights`` clauses (a composite of separately trained sub-models); nothing is written.
    """
    with intra_op_threads(1):
        return _evaluate(program, model_name, run_dir, data)


def _evaluate(program, model_name, run_dir, data) -> dict:
    if run_dir is None:
        model, cfg, name = _untrained_run(program, model_name, data)
        run = None
    else:
        run = Path(run_dir)
        model, cfg, saved = trained_model(program, run, model_name)
        name = saved.get("model") or model_name
        if cfg.objective is not None and cfg.objective.kind == "density":  # test log-likelihood
            from .density_run import evaluate_density

            return evaluate_density(model, cfg, saved, run, data)
    traj, on = held_out_data(program, model, cfg, saved if run is not None else {}, data)
    errors, _ = evaluate_on(model, cfg, traj, run)
    out = {k: errors[k] for k in errors if k not in ("trajectories", "parameters", "violations")}
    out.update(on=on, trajectories=traj.n_traj, model=name)
    out.update(parameters=errors["parameters"], violations=errors["violations"])
    if run is not None:
        write_json(run / "eval.json", out)
    return out


def held_out_data(program, model, cfg: TrainConfig, saved: dict, data) -> tuple[Trajectories, str]:
    """The trajectories to evaluate on and their description: the file ``data``, else the run's
    validation split of its training data (``saved``: the run's config.json)."""
    if data is not None:
        obs_map = observation_map(model)
        traj = load_file(
            data,
            tuple(model.output_names),
            tuple(model.input_names),
            tuple(model.state_names),
            aliases=model_aliases(model, obs_map),
            input_defaults=model.u_default.tolist() if cfg.missing_inputs == "default" else None,
        )
        return traj, str(data)
    info = saved.get("data", {})
    if info.get("kind") == "file":
        cfg = cfg.model_copy(update={"data": info["path"]})
    traj, _ = load_training_data(program, cfg, model, None)
    _, val = split_by_trajectory(traj, cfg.validation, cfg.seed)
    return (val, "validation") if val is not None else (traj, "training")


def evaluate_on(model, cfg: TrainConfig, traj: Trajectories, run: Path | None = None) -> tuple[dict, torch.Tensor]:
    """Errors, parameters and violations of ``model`` rolled out over ``traj`` (with the solver state of
    ``run``), and the predicted outputs ``[N, T, k]``; what ``evaluate`` and ensemble evaluation share."""
    from ..solvers import SolverError

    dt = float(traj.t[0, 1] - traj.t[0, 0]) if traj.t.shape[1] > 1 else 1.0
    try:
        solver = build_solver(cfg.solver, dt, len(model.state_names))
        if run is not None:
            copy_solver_state(solver, run / "checkpoint.pt")
        states, yhat = rollout_outputs(model, traj, solver, None, cfg.window)
    except SolverError as err:
        raise solver_error(err, cfg) from None
    out = rollout_errors(yhat, traj.y, traj.lengths, traj.output_names, traj.missing)
    out.update(
        trajectories=traj.n_traj,
        parameters=model.parameter_values(),
        violations=violations_after(model, cfg, states, traj),
    )
    return out, yhat


def _untrained_run(program, name: str | None, data) -> tuple:
    """A model evaluated without a run of its own: its ``weights`` clauses give every net and learned
    value, and its train block (when it has one) the solver; ``bad-argument`` otherwise."""
    where = Span("<command line>", 0, 0)
    if name is None or data is None:
        raise NodeDslError(
            [Diagnostic("bad-argument", "without --run, give --model and --data", where, ("or point --run at a run",))]
        )
    model = program.model(name)
    missing = untrained_nets(model)
    if missing:
        raise NodeDslError(
            [
                Diagnostic(
                    "untrained-nets",
                    f"model '{name}' has net(s) {', '.join(missing)} with no trained weights",
                    where,
                    ("train it and use --run, or load its sub-models with `weights` clauses",),
                )
            ]
        )
    block = next((t for t in program.trains if t.model == name), None)
    cfg = validate_train(block)[0] if block is not None else None
    return model, cfg or TrainConfig(model=name, data=str(data)), name
