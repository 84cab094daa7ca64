"""What a training run starts from: its train block, a freshly initialized model, its data (a file or a
simulated dataset, matched to the model) and, for partially observed models, initial-state estimates.

Example:
    >>> import nodedsl
    >>> src = "model M { state x = 1\\n param k = 1\\n der(x) = -k * x }\\n"
    >>> prog = nodedsl.loads(src + 'train M { data = "d.csv" }')
    >>> select_train(prog).model
    'M'
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from ..data.loading import Trajectories, load_file, match_model
from ..frontend import ast
from ..frontend.config import TrainConfig, validate_dataset
from .rollout import WindowField, initial_states, observation_map, observe, time_groups

__all__ = ["compiled_model", "estimate_initial_states", "load_training_data", "model_aliases", "select_train"]


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


def model_aliases(model, obs_map) -> dict[str, str]:
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
    kw = dict(aliases=model_aliases(model, obs_map), input_defaults=model.u_default.tolist())
    names = (tuple(model.output_names), tuple(model.input_names), tuple(model.state_names))
    if cfg.data_is_file:
        path = Path(cfg.data)
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        # a missing input column is an error unless the block asks for the inputs' defaults explicitly:
        # training silently on u = default when the experiment was driven learns the wrong model
        defaults = kw["input_defaults"] if cfg.missing_inputs == "default" else None
        reject_latent_columns(path, getattr(model, "latent_names", ()))
        traj = load_file(path, *names, aliases=kw["aliases"], input_defaults=defaults)
        info = {"kind": "file", "path": str(path.resolve()), "trajectories": traj.n_traj}
        if traj.missing is not None:  # gaps are masked out of the loss, and said so
            info["missing_values"] = traj.n_missing
        return traj, info
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


def reject_latent_columns(path: str | Path, latent) -> None:
    """A ``latent-column`` error for a data column named after a latent state (never observed, contract §10)."""
    if not latent or not str(path).lower().endswith(".csv"):
        return  # an .npz names its columns by the outputs; a latent state is no output
    from ..io.tables import read_rows

    rows = read_rows(path)
    if not rows:
        return
    line, header = rows[0]
    diags = [
        Diagnostic(
            "latent-column",
            f"column '{name.strip()}' is data for the latent state '{name.strip()}', which is never observed",
            Span(str(path), line, 1 + sum(len(c) + 1 for c in header[:j])),
            ("drop the column, or declare the state without `latent` to fit it to data",),
        )
        for j, name in enumerate(header)
        if name.strip() in latent
    ]
    if diags:
        raise NodeDslError(diags)


def estimate_initial_states(
    model, traj: Trajectories, window: int, solver, obs_map, autonomous: bool, steps: int = 200, lr: float = 0.05
) -> torch.Tensor:
    """Initial states ``[N, n]`` for partially observed models: fitted to the first ``window`` steps."""
    from ..solvers import solve

    x0 = initial_states(model, traj.y[:, 0], obs_map)
    if all(i is not None for i in obs_map) and len({i for i in obs_map}) == len(model.state_names):
        return x0
    K = int(min(window, int(traj.lengths.min()) - 1))
    if K < 1:
        return x0
    t, y, u = traj.t[:, : K + 1], traj.y[:, : K + 1], traj.u[:, : K + 1]
    seen = None if traj.missing is None else (~traj.missing[:, : K + 1]).to(y.dtype)
    param = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([param], lr=lr)
    requires = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = x0.new_zeros(())
            for rows, grid in time_groups(t):
                fieldw = WindowField(model, t[rows, 0], grid, u[rows], autonomous)
                states = solve(fieldw, param[rows], grid, solver=solver).ys.transpose(0, 1)
                err = observe(model, states, t[rows], u[rows], obs_map) - y[rows]
                if seen is not None:  # gaps in the data carry no error
                    err = err * seen[rows]
                loss = loss + err.pow(2).sum()
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
