"""``nodedsl simulate``: initial states, input signals and output times from the command line.

Input expressions are parsed by nodedsl's own grammar (a one-line model around the expression) and
compiled like any model, so no user text is ever evaluated by Python.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model M { state x = 1\\n input u\\n der(x) = -x + u }")
    >>> table = run_simulation(prog, SimulationRequest(model="M", t_end=1, step=0.5, inputs=("u=sin(t)",)))
    >>> table.columns
    ['trajectory', 't', 'x', 'u']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.diagnostics import NodeDslError, Span, suggest
from ..core.limits import limit, over_limit
from ..io.tables import read_columns
from .table import F64, Table, _arg_error, _table, write_csv

__all__ = ["SimulationRequest", "Table", "config_table", "dataset_table", "run_simulation", "write_csv"]


@dataclass(frozen=True)
class SimulationRequest:
    model: str
    t_end: float = 10.0
    step: float = 0.01
    times_csv: str | None = None
    sets: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    solver: str | None = None  # None: the run's training solver with --run, dopri5 otherwise
    solver_step: float | None = None
    energy: bool = False
    samples: int | None = None  # SDE models: number of sample paths (default 1)
    quantiles: bool = False  # SDE models: add mean and 5/50/95% columns per state
    rtol: float | None = None
    atol: float | None = None
    run: str | None = None  # a run directory: its trained parameters and nets
    init_random: bool = False  # simulate untrained nets as initialized from the seed
    seed: int = 0  # the Brownian paths of an SDE model, and the nets of --init random
    device: str = "cpu"  # cpu, cuda, cuda:N or auto: where an ODE model is integrated (SDEs: the CPU)


def _split(item: str, what: str) -> tuple[str, str]:
    if "=" not in item:
        raise _arg_error(what, f"'{item}' must have the form name=value")
    name, value = item.split("=", 1)
    return name.strip(), value.strip()


def _expression_signal(text: str):
    """A function of t from an expression, via the .node grammar (no eval)."""
    from ..frontend import ast
    from ..frontend.loader import source_from_module
    from ..frontend.parse import parse_expression
    from ..program import _finish

    # the expression is parsed on its own and placed into a model's AST: the text can never add a
    # declaration (a newline or a '}' in it is a syntax error of the expression)
    span = Span("<--input>", 1, 1)
    expr = parse_expression(text, "<--input>")
    body = (ast.State("__z", None, ast.Num(0.0, "0", span), span), ast.Der("__z", expr, span))
    module = ast.Module("<--input>", (), (ast.Model("__signal", None, body, span),), (), ())
    prog = _finish(source_from_module(module, text))
    model = prog.model("__signal", dtype=F64)
    return lambda t, batch, _m=model: _m.field(t, torch.zeros(batch, 1, dtype=F64))


def _times(req: SimulationRequest) -> torch.Tensor:
    if req.times_csv:
        cols = read_columns(req.times_csv)
        if "t" not in cols:
            raise NodeDslError.single("data-error", f"'{req.times_csv}' has no column 't'", Span(req.times_csv, 1, 1))
        t = cols["t"]
    else:
        if not (req.step > 0 and req.t_end > 0 and math.isfinite(req.step) and math.isfinite(req.t_end)):
            raise _arg_error("--t-end/--step", "--t-end and --step must be positive finite numbers")
        rows = req.t_end / req.step
        if rows >= limit("rows"):
            raise NodeDslError([over_limit("rows", int(rows) + 1, "the output (--t-end / --step)", _SPAN_T)])
        n = int(round(rows))
        t = np.linspace(0.0, n * req.step, n + 1)
    if len(t) < 2 or np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise _arg_error("--times", "output times must be finite and strictly increasing (at least two)")
    return torch.as_tensor(t, dtype=F64)


_SPAN_T = Span("<--t-end/--step>", 0, 0)


def _check_steps(t: torch.Tensor, step: float | None) -> None:
    """A fixed step far below the output grid (``--solver-step 1e-12``) would run for days: refuse it."""
    if step is None:
        return
    if not (isinstance(step, (int, float)) and step > 0 and math.isfinite(step)):
        raise _arg_error("--solver-step", "the solver step must be a positive finite number")
    span = float(t[-1] - t[0])
    steps = span / step + len(t)
    if steps >= limit("steps"):
        raise NodeDslError([over_limit("steps", int(steps), f"a solve with step {step:g} over [0, {span:g}]", _SPAN_T)])


def _signal(model, req: SimulationRequest):
    names = list(model.input_names)
    if not req.inputs:
        return None
    parts = {}
    for item in req.inputs:
        name, value = _split(item, "--input")
        matches = [i for i, n in enumerate(names) if n == name or n.startswith(name + "[")]
        if not matches:
            raise _arg_error(
                "--input",
                f"model '{model.name}' has no input '{name}'",
                suggest(name, names) or "inputs: " + (", ".join(names) or "none"),
            )
        if value.endswith(".csv"):
            cols = read_columns(value)
            if "t" not in cols:
                raise NodeDslError.single("data-error", f"'{value}' has no column 't'", Span(value, 1, 1))
            _increasing(value, cols["t"])
            tt = torch.as_tensor(cols["t"])
            for i in matches:
                col = names[i] if names[i] in cols else name
                if col not in cols:
                    raise NodeDslError.single("data-error", f"'{value}' has no column '{names[i]}'", Span(value, 1, 1))
                vv = torch.as_tensor(cols[col])
                parts[i] = lambda t, b, tt=tt, vv=vv: _interp(t, tt, vv).expand(b)
        else:
            fn = _expression_signal(value)
            for i in matches:
                parts[i] = lambda t, b, fn=fn: fn(t, b)[:, 0]
    default = model.u_default

    def signal(t, batch):
        cols = [parts[i](t, batch) if i in parts else default[i].expand(batch) for i in range(len(names))]
        return torch.stack([c.to(default.dtype) for c in cols], dim=-1)

    return signal


def _increasing(file: str, t: np.ndarray) -> None:
    """An input signal's times must increase strictly (a data error at its row, not a solver underflow)."""
    bad = np.nonzero(~(t[1:] > t[:-1]))[0]
    if len(bad):
        k = int(bad[0]) + 1
        raise NodeDslError.single(
            "data-error",
            f"column 't' is not strictly increasing: t = {t[k]:g} in data row {k + 1} follows t = {t[k - 1]:g}",
            Span(file, k + 2, 1),
            "each time must appear once, in increasing order",
        )


def _interp(t, tt, vv):
    t = torch.as_tensor(t, dtype=tt.dtype)
    i = torch.clamp(torch.searchsorted(tt, t.reshape(1)), 1, len(tt) - 1)
    t0, t1 = tt[i - 1], tt[i]
    w = ((t - t0) / (t1 - t0)).clamp(0, 1)
    return (vv[i - 1] * (1 - w) + vv[i] * w).reshape(())


def run_simulation(prog, req: SimulationRequest) -> Table:
    """Simulate ``req.model`` and return the long-form table (trajectory, t, states, outputs, inputs, energy).

    With ``req.run``, the run's trained parameters and nets are used, and (unless ``req.solver`` is
    given) the solver the run trained with, so the result reproduces the run's ``predictions.npz``."""
    init = "random" if req.init_random else None
    # simulation output in double precision
    model = prog.trained(req.model, weights=req.run, init=init, seed=req.seed, dtype=F64)
    run_solver = None
    if req.run is not None and req.solver is None:
        from ..train.setup import build_solver
        from ..train.trained import trained_model

        cfg = trained_model(prog, req.run, req.model)[1]
        spec = (
            cfg.solver
            if req.solver_step is None
            else cfg.solver.model_copy(update={"options": {**cfg.solver.options, "step": req.solver_step}})
        )
        dt = float(np.diff(_times(req).numpy()).min())
        run_solver = lambda: build_solver(spec, dt, len(model.state_names))  # noqa: E731
    return _simulate(prog, model, req, run_solver)


def _simulate(prog, model, req: SimulationRequest, run_solver=None) -> Table:
    from ..solvers import SolverError

    x0 = model.x0_default.clone()
    for item in req.sets:
        name, value = _split(item, "--set")
        if name not in model.state_names:
            raise _arg_error(
                "--set", f"model '{model.name}' has no state '{name}'", suggest(name, model.state_names) or ""
            )
        try:
            number = float(value)
        except ValueError:
            raise _arg_error("--set", f"'{value}' is not a number") from None
        if not math.isfinite(number):
            raise _arg_error("--set", f"'{value}' is not a finite number")
        x0[model.state_names.index(name)] = number
    t = _times(req)
    signal = _signal(model, req)
    solver = _solver(model, req, t, run_solver)
    _check_steps(t, getattr(solver, "options", {}).get("step"))
    events: list = []
    with torch.no_grad():
        if getattr(model, "noise", None) is None:
            if req.samples is not None or req.quantiles:
                raise _arg_error("--samples", f"'{model.name}' has no noise: --samples/--quantiles need an SDE")
            try:
                ys, events = _solve_on(req.device, model, signal, x0, t, solver)
            except SolverError as err:
                raise NodeDslError.single("solver-error", str(err), Span("<--solver>", 0, 0)) from None
        else:
            try:
                ys = _sample_paths(model, x0, t, signal, solver, req)
            except SolverError as err:
                raise _arg_error("--solver", str(err)) from None
    if not torch.all(torch.isfinite(ys)):
        raise NodeDslError.single(
            "diverged",
            f"the simulation of '{model.name}' produced non-finite values",
            Span(prog.path, 0, 0),
            "try a smaller step or another solver",
        )
    return _table(model, ys, t, signal, req, events)


def _solve_on(device: str, model, signal, x0: torch.Tensor, t: torch.Tensor, solver):
    """``(ys, events)`` of an ODE model integrated on ``device``; the result (and the model) back on the CPU."""
    from ..solvers import solve
    from ..train.distributed import resolve_device

    dev = resolve_device(device)
    if dev.type == "cpu":
        res = solve(model.driven(signal), x0[None], t, solver=solver)
        return res.ys, res.events
    moved = None
    if signal is not None:  # input signals are interpolated on the CPU, then moved
        moved = lambda tt, b: signal(tt.cpu() if isinstance(tt, torch.Tensor) else tt, b).to(dev)  # noqa: E731
    model.to(dev)
    if isinstance(solver, torch.nn.Module):
        solver.to(dev)
    try:
        res = solve(model.driven(moved), x0[None].to(dev), t.to(dev), solver=solver)
    finally:
        model.to("cpu")
    return res.ys.cpu(), res.events


def _solver(model, req: SimulationRequest, t: torch.Tensor, run_solver=None):
    """The solver of ``--solver/--rtol/--atol/--solver-step`` (or the run's); an SDE model defaults
    to Euler-Maruyama and accepts only SDE solvers."""
    from ..core.solvers import parse_solver_call
    from ..solvers import SolverError, solver_from_text
    from ..solvers.sde import METHODS

    try:
        if run_solver is not None:
            return run_solver()
        text = req.solver or "dopri5"
        if getattr(model, "noise", None) is not None and parse_solver_call(text)[0] not in METHODS:
            if req.solver is not None:  # the default: an SDE model switches to Euler-Maruyama silently
                raise _arg_error(
                    "--solver", f"'{model.name}' is an SDE; use an SDE solver ({', '.join(METHODS)}), not '{text}'"
                )
            text = "euler_maruyama"
        return solver_from_text(
            text, rtol=req.rtol, atol=req.atol, step=req.solver_step,
            default_step=float(min(np.diff(t.numpy()).min(), 0.01)),
        )  # fmt: skip
    except SolverError as err:
        raise _arg_error("--solver", str(err)) from None


def _sample_paths(model, x0: torch.Tensor, t: torch.Tensor, signal, solver, req: SimulationRequest) -> torch.Tensor:
    """``[T, N, n]`` sample paths of an SDE model, reproducible from ``req.seed``."""
    from ..solvers.sde import sdeint

    n = 1 if req.samples is None else req.samples
    if n < 1 or n > 1_000_000:
        raise _arg_error("--samples", f"--samples must be in [1, 1000000], got {n}")
    if req.seed < 0:
        raise _arg_error("--seed", f"--seed must be >= 0, got {req.seed}")
    drift, diffusion = model.sde_functions(signal)
    x = x0[None].expand(n, -1).contiguous()
    return sdeint(drift, diffusion, x, t, solver=solver, noise=model.noise, seed=req.seed).ys


def dataset_table(prog, name: str, model_name: str | None = None, run: str | None = None, count=None) -> Table:
    """The trajectories of dataset block ``name`` as the long table (trajectory, t, outputs, inputs):
    what ``nodedsl data`` writes, readable as training data (``data = "file.csv"``).

    With ``model_name`` (and ``run``, a trained run's weights), that model is simulated instead of the
    dataset's, noise-free, from the dataset's initial states and with its input signals (the same draws):
    ``nodedsl simulate --dataset``; the table then has every state too. ``count`` overrides the number
    of trajectories.

    Example:
        >>> import nodedsl
        >>> prog = nodedsl.loads("model M { state x = 1\\n input u\\n der(x) = -x + u }\\n"
        ...     "dataset d { model = M\\n trajectories = 2\\n time = span(0, 1, step = 0.5)\\n"
        ...     " inputs = { u = sine(1, 0.5) } }")
        >>> table = dataset_table(prog, "d")
        >>> table.columns, table.rows.shape
        (['trajectory', 't', 'x', 'u'], (6, 4))
    """
    from ..frontend.config import validate_dataset

    cfg, diags = validate_dataset(prog.dataset(name))
    if cfg is None:
        raise NodeDslError(diags)
    if count is not None:
        cfg = cfg.model_copy(update={"trajectories": int(count)})
    return config_table(prog, cfg, model_name, run)


def config_table(prog, cfg, model_name: str | None = None, run: str | None = None) -> Table:
    """:func:`dataset_table` of a validated ``DatasetConfig`` (also built from the command line by
    ``simulate --trajectories``, ``nodedsl/simulate/random.py``)."""
    from ..data.synth import generate

    if model_name is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(cfg.seed))
            model = prog.model(cfg.model, dtype=F64)
    else:
        model = prog.trained(model_name, weights=run, dtype=F64)
        cfg = cfg.model_copy(update={"noise": 0.0})
    traj = generate(model, cfg)
    n, steps = traj.y.shape[0], traj.y.shape[1]
    ids = torch.arange(n, dtype=F64)[:, None, None].expand(n, steps, 1)
    values, names = [traj.y.to(F64)], list(traj.output_names)
    if model_name is not None and traj.x is not None:  # a simulation: every state, then the other outputs
        keep = [j for j, c in enumerate(traj.output_names) if c not in traj.state_names]
        values, names = [traj.x.to(F64), traj.y[:, :, keep].to(F64)], [*traj.state_names, *[names[j] for j in keep]]
    inputs = [i for i, c in enumerate(traj.input_names) if c not in names]
    blocks = [ids, traj.t[:, :, None].to(F64), *values, traj.u[:, :, inputs].to(F64)]
    columns = ["trajectory", "t", *names, *[traj.input_names[i] for i in inputs]]
    return Table(columns, torch.cat(blocks, dim=-1).reshape(n * steps, -1).numpy())
