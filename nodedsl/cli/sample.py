"""``nodedsl sample FILE --run DIR -n N -o samples.csv``: draw samples from a trained density run
(``objective = density``): ``z ~ N(0, I)`` carried backwards through the flow (docs/training.md)."""

from __future__ import annotations

import sys

import typer

from ..core.diagnostics import NodeDslError, Span
from .common import fail, load_or_fail


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def sample(
        path: str = typer.Argument(..., help="the .node file"),
        run: str = typer.Option(..., "--run", help="a density run directory"),
        n: int = typer.Option(1000, "-n", "--samples", help="number of samples"),
        seed: int = typer.Option(0, "--seed", help="seed of the base samples"),
        out: str = typer.Option("-", "--output", "-o", help="output CSV (default: stdout)"),
        model: str | None = typer.Option(None, "--model", "-m", help="model (default: the run's)"),
    ) -> None:
        """Sample a trained continuous normalizing flow; one CSV column per state."""
        from ..io.atomic import atomic_write
        from ..train.density import sample as draw
        from ..train.trained import trained_model

        prog = load_or_fail(path)
        try:
            if n < 1:
                raise NodeDslError.single("bad-argument", f"-n must be >= 1, got {n}", Span("<-n>", 0, 0))
            net, cfg, _ = trained_model(prog, run, model)
            if cfg.objective is None or cfg.objective.kind != "density":
                raise NodeDslError.single(
                    "bad-argument",
                    f"run '{run}' is not a density run (train with objective = density)",
                    Span(str(run), 0, 0),
                )
            pts = draw(net, n, cfg.objective, seed, net.x0_default.dtype).double().numpy()
        except NodeDslError as err:
            fail(err, prog.sources)
        names = list(net.state_names)
        text = ",".join(names) + "\n" + "".join(",".join(f"{v:.9g}" for v in row) + "\n" for row in pts)
        if out == "-":
            sys.stdout.write(text)
        else:
            atomic_write(out, lambda fh: fh.write(text))
            typer.echo(f"wrote {n} samples to {out}", err=True)
