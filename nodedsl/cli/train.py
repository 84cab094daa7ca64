"""The ``train``, ``eval`` and ``plot`` commands (registered on the main typer app by :func:`register`).

Example::

    nodedsl train examples/pendulum.node --epochs 50 --set batch=32 --run runs/pendulum
    nodedsl train examples/pendulum.node --run runs/pendulum --epochs 100 --resume
    nodedsl eval examples/pendulum.node --run runs/pendulum
    nodedsl plot --run runs/pendulum
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from .common import fail, load_or_fail

__all__ = ["parse_sets", "register"]

CMDLINE = Span("<command line>", 0, 0)


def parse_sets(items: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict; a malformed item is a ``bad-override`` error."""
    out: dict[str, str] = {}
    bad = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            bad.append(
                Diagnostic("bad-override", f"--set expects key=value, got '{item}'", Span("<command line>", 0, 0))
            )
            continue
        out[key.strip()] = value.strip()
    if bad:
        raise NodeDslError(bad)
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def _summary(result, run_dir: str) -> None:
    typer.echo(
        f"{result.status} after {result.epochs_run} epochs in {result.wall_time:.1f} s"
        f" (train loss {_fmt(result.train_loss)}, validation loss {_fmt(result.val_loss)})"
    )
    for name, value in result.parameters.items():
        typer.echo(f"  {name} = {_fmt(value)}")
    for name, value in result.violations.items():
        typer.echo(f"  constraint {name}: violation {_fmt(value)}")
    if result.rollbacks:
        typer.echo(f"  {result.rollbacks} non-finite step(s) rolled back (learning rate halved each time)")
    missing = result.extra.get("data", {}).get("missing_values")
    if missing:
        typer.echo(f"  {missing} missing output value(s) in the data, left out of the loss")
    ev = result.extra.get("evaluation", {})
    if "log_likelihood" in ev:
        typer.echo(f"  log-likelihood on {ev['points']} {ev['on']} points: {_fmt(ev['log_likelihood'])} nats/point")
    if "rmse" in ev:
        typer.echo(f"  rollout RMSE on {ev.get('on')} trajectories: {_fmt(ev['rmse'])}")
    typer.echo(f"run directory: {run_dir}")


def register(app: typer.Typer) -> None:
    """Add ``train``, ``eval`` and ``plot`` to ``app``."""
    _register_train(app)
    _register_eval_plot(app)


def _register_train(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        path: str = typer.Argument(..., help="the .node file"),
        model: str | None = typer.Option(None, "--model", "-m", help="which train block (when several)"),
        epochs: int | None = typer.Option(None, "--epochs", help="override 'epochs'"),
        lr: float | None = typer.Option(None, "--lr", help="override the optimizer's learning rate"),
        set_: list[str] = typer.Option([], "--set", help="override any key: --set batch=32 --set solver.step=0.01"),
        run: str | None = typer.Option(
            None, "--run", help="run directory (default: the train block's output, else runs/<model>)"
        ),
        resume: bool = typer.Option(False, "--resume", help="continue from the run directory's checkpoint"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
        observer: str | None = typer.Option(None, "--observer", help="train this observer block instead"),
        device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (the block's 'device')"),
        nproc: int | None = typer.Option(
            None, "--nproc", min=1, help="data-parallel training in N processes on this machine (docs/scaling.md)"
        ),
        log: str | None = typer.Option(None, "--log", help="experiment log: files (default) or tensorboard"),
    ) -> None:
        """Fit a model to its data as its train block says; write checkpoints, metrics and plots."""
        # a first line before torch, SymPy and the data are loaded (tens of seconds on a cold start), so a
        # user or a log whose output is not a terminal sees at once that training has started
        typer.echo(f"nodedsl train {path}: loading the model and its data", err=True)
        from ..train.run import run_training, select_train

        prog = load_or_fail(path)
        if observer is not None:
            _train_observer(prog, observer, run)
            return
        try:
            block = select_train(prog, model)
            overrides = parse_sets(set_)
            if epochs is not None:
                overrides["epochs"] = str(epochs)
            if lr is not None:
                overrides["lr"] = repr(lr)
            overrides.update({k: v for k, v in (("device", device), ("log", log)) if v is not None})
            _validate_first(block, overrides)
            run_dir = run  # None: the train block's `output`, else runs/<model>
            if _parallel(path, model, prog, block, overrides, run_dir, resume, nproc, quiet):
                return
            if quiet:
                result = run_training(prog, block, overrides=overrides, run_dir=run_dir, resume=resume)
            else:
                result = _with_progress(prog, block, overrides, run_dir, resume)
        except NodeDslError as err:
            fail(err, prog.sources)
        except KeyboardInterrupt:
            typer.echo("interrupted: the last completed epoch is saved; continue with --resume", err=True)
            raise typer.Exit(130) from None
        _summary(result, result.extra.get("run_dir", run_dir or ""))


def _register_eval_plot(app: typer.Typer) -> None:
    @app.command("eval", context_settings=_MORE_RUNS)
    def eval_(
        ctx: typer.Context,
        path: str = typer.Argument(..., help="the .node file"),
        run: str | None = typer.Option(
            None, "--run", help="the run directory (without it: --model and --data, weights from `weights` clauses)"
        ),
        data: str | None = typer.Option(None, "--data", help="held-out CSV/NPZ (default: the validation split)"),
        model: str | None = typer.Option(None, "--model", "-m", help="model (default: the run's)"),
        runs: list[str] = typer.Option([], "--runs", help="an ensemble: several runs of one model (repeatable)"),
        out: str | None = typer.Option(None, "--output", "-o", help="with --runs: write ensemble.json/.npz here"),
    ) -> None:
        """Roll out a trained model over whole held-out trajectories; report errors and violations."""
        from ..train.run import evaluate

        runs = _ensemble_runs(ctx, runs)
        prog = load_or_fail(path)
        if runs:
            from .ensemble import eval_ensemble

            eval_ensemble(prog, [*runs, *([run] if run else [])], model, data, out)
            return
        try:
            out_ = evaluate(prog, model, run, data)
        except NodeDslError as err:
            fail(err, prog.sources)
        if "log_likelihood" in out_:  # a density run
            typer.echo(
                f"{out_['model']}: test log-likelihood {_fmt(out_['log_likelihood'])} nats/point "
                f"(NLL {_fmt(out_['nll'])}) over {out_['points']} points ({out_['on']}, {out_['trace']} trace)"
            )
            if run is not None:
                typer.echo(f"written: {Path(run) / 'eval.json'}")
            return
        typer.echo(
            f"{out_['model']}: rollout over {out_['trajectories']} trajectories ({out_['on']}): RMSE "
            f"{_fmt(out_['rmse'])}, normalized {_fmt(out_['nrmse'])}"
        )
        for name, e in out_["per_output"].items():
            typer.echo(f"  {name}: RMSE {_fmt(e['rmse'])}, MAE {_fmt(e['mae'])}")
        for name, v in out_.get("parameters", {}).items():
            typer.echo(f"  {name} = {_fmt(v)}")
        for name, v in out_.get("violations", {}).items():
            typer.echo(f"  constraint {name}: violation {_fmt(v)}")
        if run is not None:
            typer.echo(f"written: {Path(run) / 'eval.json'}")

    @app.command("plot", context_settings=_MORE_RUNS)
    def plot(
        ctx: typer.Context,
        run: str | None = typer.Option(None, "--run", help="the run directory"),
        runs: list[str] = typer.Option([], "--runs", help="an ensemble: prediction bands across these runs"),
        out: str = typer.Option("bands.png", "--output", "-o", help="with --runs: the PNG to write"),
        trajectory: int = typer.Option(0, "--trajectory", help="with --runs: which held-out trajectory"),
    ) -> None:
        """Redraw a run's plots (loss curves, data against prediction) as PNG files; with --runs, draw
        prediction bands across an ensemble."""
        runs = _ensemble_runs(ctx, runs)
        if runs:
            from .ensemble import plot_ensemble_bands

            plot_ensemble_bands([*runs, *([run] if run else [])], out, trajectory)
            return
        if run is None:
            fail(NodeDslError.single("bad-argument", "give --run DIR (or --runs DIR... for an ensemble)", CMDLINE))
        from ..train.run import plot_run

        try:
            written = plot_run(run)
        except NodeDslError as err:
            fail(err)
        for p in written:
            typer.echo(f"written: {p}")


# `--runs A B C`: the folders after the first come as extra arguments (typer options take one value each)
_MORE_RUNS = {"allow_extra_args": True}


def _ensemble_runs(ctx: typer.Context, runs: list[str]) -> list[str]:
    if ctx.args and not runs:
        fail(NodeDslError.single("bad-argument", f"unexpected argument(s): {' '.join(ctx.args)}", CMDLINE))
    return [*runs, *ctx.args]


def _train_observer(prog, name: str, run: str | None) -> None:
    from ..train.observer_run import run_observer_training

    try:
        summary = run_observer_training(prog, name, run)
    except NodeDslError as err:
        fail(err, prog.sources)
    typer.echo(f"observer {name} ({summary['kind']}) trained: final loss {_fmt(summary['loss'])}")
    typer.echo(f"run directory: {summary['run_dir']}")


def _parallel(path, model, prog, block, overrides, run_dir, resume, nproc, quiet) -> bool:
    """Data-parallel training when ``--nproc N`` (N > 1) asks for it or torchrun started this process;
    False when the run is an ordinary single-process one."""
    from ..train.distributed import env_rank
    from .parallel import group_backend, run_rank, spawn_training

    group = env_rank()
    if (nproc or 1) > 1:
        import torch.multiprocessing as mp

        group_backend(block, overrides, 0)  # a device error is reported here, once, before any spawn
        try:
            spawn_training(path, model, overrides, run_dir, resume, nproc, _summary, None if quiet else _bar_progress)
        except mp.ProcessException as err:  # the failing rank printed its error
            typer.echo(f"data-parallel training failed: {err}", err=True)
            raise typer.Exit(1) from None
        return True
    if group is None or group[1] == 1:
        return False
    rank, world = group
    progress = None if quiet or rank != 0 else _bar_progress
    result = run_rank(prog, block, overrides, run_dir, resume, rank, world, "env://", progress)
    if rank == 0:
        _summary(result, result.extra.get("run_dir", run_dir or ""))
    return True


def _bar_progress(epoch, epochs, train_loss, val_loss, worst) -> None:
    """Plain progress lines (torchrun multiplexes the ranks' output; a live bar would garble it)."""
    typer.echo(f"epoch {epoch}/{epochs}: loss {_fmt(train_loss)} val {_fmt(val_loss)}", err=True)


def _validate_first(block, overrides: dict[str, str]) -> None:
    """Report train-block and override errors before any progress bar is drawn."""
    from ..frontend.config import apply_overrides, validate_train

    cfg, diags = validate_train(block)
    if cfg is None:
        raise NodeDslError(diags)
    apply_overrides(cfg, overrides)


def _with_progress(prog, block, overrides, run_dir, resume):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..train.run import run_training

    console = Console(stderr=True)
    columns = (
        TextColumn(f"training {block.model}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("train", total=None, info="preparing data")

        def progress(epoch, epochs, train_loss, val_loss, worst):
            info = f"loss {_fmt(train_loss)}"
            if val_loss is not None:
                info += f"  val {_fmt(val_loss)}"
            if worst is not None:
                info += f"  violation {_fmt(worst)}"
            bar.update(task, total=epochs, completed=epoch, info=info)

        return run_training(prog, block, overrides=overrides, run_dir=run_dir, resume=resume, progress=progress)
