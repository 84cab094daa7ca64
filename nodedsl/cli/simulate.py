"""``nodedsl simulate FILE``: simulate a model and write the long CSV format."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError, Span
from .common import fail, load_or_fail


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def simulate(
        path: str,
        model: str | None = typer.Option(None, "--model", "-m", help="model to simulate (default: the only/last one)"),
        t_end: float = typer.Option(10.0, "--t-end", help="final time"),
        step: float = typer.Option(0.01, "--step", help="output time step"),
        times: str | None = typer.Option(None, "--times", help="CSV file with a column 't' of output times"),
        set_: list[str] = typer.Option([], "--set", help="initial state, e.g. --set theta=0.5 (repeatable)"),
        input_: list[str] = typer.Option([], "--input", help="input signal: name=expression-of-t or name=file.csv"),
        solver: str | None = typer.Option(
            None,
            "--solver",
            help='solver, e.g. radau or "radau(rtol = 1e-8)" (default dopri5, or the run\'s with --run)',
        ),
        solver_step: float | None = typer.Option(None, "--solver-step", help="step of fixed-step solvers"),
        rtol: float | None = typer.Option(None, "--rtol", help="relative tolerance of adaptive solvers (default 1e-9)"),
        atol: float | None = typer.Option(
            None, "--atol", help="absolute tolerance of adaptive solvers (default 1e-11)"
        ),
        energy: bool = typer.Option(False, "--energy", help="add H and power columns (port-Hamiltonian models)"),
        samples: int | None = typer.Option(None, "--samples", help="SDE models: number of sample paths (default 1)"),
        seed: int = typer.Option(0, "--seed", help="seed of the Brownian paths (SDE models) and of --init random"),
        quantiles: bool = typer.Option(False, "--quantiles", help="SDE models: add mean and 5/50/95% columns"),
        out: str = typer.Option("-", "--output", "-o", help="output CSV (default: stdout)"),
        run: str | None = typer.Option(None, "--run", help="a run directory: simulate its trained parameters and nets"),
        init: str | None = typer.Option(None, "--init", help="'random': simulate untrained nets as initialized"),
        dataset: str | None = typer.Option(
            None, "--dataset", help="simulate from a dataset block's initial states and input signals"
        ),
        trajectories: int | None = typer.Option(None, "--trajectories", help="experiments: random, or --dataset's"),
        device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:N or auto: where to integrate"),
        init_range: list[str] = typer.Option([], "--init-range", help="a state drawn per trajectory: x=-1:1"),
        draw: list[str] = typer.Option([], "--draw", help="a number drawn per trajectory: omega=uniform(1, 3)"),
    ) -> None:
        """Simulate a model and write the long CSV format (trajectory, t, states, outputs, inputs)."""
        from ..simulate import SimulationRequest, run_simulation, write_csv

        prog = load_or_fail(path)
        try:
            name = model or _default_model(prog, run)
            if init not in (None, "random"):
                raise NodeDslError.single(
                    "bad-argument", f"--init must be 'random', not '{init}'", Span("<--init>", 0, 0)
                )
            req = SimulationRequest(
                model=name,
                t_end=t_end,
                step=step,
                times_csv=times,
                sets=tuple(set_),
                inputs=tuple(input_),
                solver=solver,
                solver_step=solver_step,
                energy=energy,
                samples=samples,
                quantiles=quantiles,
                rtol=rtol,
                atol=atol,
                run=run,
                init_random=init == "random",
                seed=seed,
                device=_device(device),
            )
            if dataset is None and (trajectories is not None or init_range or draw):
                table = _random(prog, req, trajectories, tuple(init_range), tuple(draw))
            elif dataset is not None or trajectories is not None:
                table = _from_dataset(prog, name, run, init, dataset, trajectories)
            else:
                table = run_simulation(prog, req)
        except NodeDslError as err:
            fail(err, prog.sources)
        try:
            write_csv(table, None if out == "-" else out)
        except OSError as err:
            fail(NodeDslError.single("io-error", f"cannot write '{out}': {err.strerror}", Span(out, 0, 0)))


def _device(text: str) -> str:
    """``--device``: checked like the train block's ``device`` key (``bad-argument`` otherwise)."""
    import re

    if not re.fullmatch(r"cpu|auto|cuda(:[0-9]+)?", text):
        raise NodeDslError.single(
            "bad-argument", f"--device must be cpu, cuda, cuda:N or auto, not '{text}'", Span("<--device>", 0, 0)
        )
    return text


def _default_model(prog, run: str | None) -> str:
    """The run's model with --run; otherwise the file's last model."""
    if run is not None:
        from ..train.trained import run_config

        return str(run_config(run).get("model", ""))
    return prog.module.models[-1].name if prog.module.models else ""


def _random(prog, req, count: int | None, inits: tuple[str, ...], draws: tuple[str, ...]):
    """``--trajectories N`` without ``--dataset``: random initial states and inputs (simulate/experiments.py)."""
    from ..simulate.experiments import random_table

    where = Span("<--trajectories>", 0, 0)
    if count is None:
        raise NodeDslError.single("bad-argument", "--init-range and --draw need --trajectories N", where)
    if req.init_random or req.times_csv:
        raise NodeDslError.single("bad-argument", "--trajectories takes --t-end/--step, a run or a known model", where)
    return random_table(
        prog,
        req.model,
        req.run,
        count,
        req.t_end,
        req.step,
        inits=inits,
        sets=req.sets,
        inputs=req.inputs,
        draws=draws,
        seed=req.seed,
        solver=req.solver or f"dopri5(rtol = {req.rtol or 1e-9}, atol = {req.atol or 1e-11})",
    )


def _from_dataset(prog, name: str, run: str | None, init: str | None, dataset: str | None, count: int | None):
    """``--dataset NAME [--trajectories N]``: the model simulated on the dataset's experiments."""
    from ..simulate import dataset_table

    where = Span("<--dataset>", 0, 0)
    if dataset is None:
        raise NodeDslError.single(
            "bad-argument", "--trajectories needs --dataset (its initial-state distributions and inputs)", where
        )
    if count is not None and count < 1:
        raise NodeDslError.single("bad-argument", "--trajectories must be at least 1", where)
    if init == "random":
        raise NodeDslError.single("bad-argument", "--dataset simulates trained or known models only", where)
    return dataset_table(prog, dataset, name, run, count)
