"""``nodedsl export --run DIR -o OUT --format pt2|onnx|safetensors``: a trained run as files for inference
elsewhere (docs/export.md)."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError, Span
from .common import fail


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def export(
        path: str | None = typer.Argument(None, help="the .node file (default: the run's recorded source)"),
        run: str = typer.Option(..., "--run", help="the run directory to export"),
        model: str | None = typer.Option(None, "--model", "-m", help="the run's model (checked against the run)"),
        out: str = typer.Option(..., "--output", "-o", help="output folder (created)"),
        fmt: str = typer.Option("pt2", "--format", "-f", help="pt2 (torch.export), onnx or safetensors"),
        steps: int | None = typer.Option(
            None, "--steps", help="also export a rollout of this many fixed steps (pt2, onnx)"
        ),
        solver: str | None = typer.Option(
            None, "--solver", help="the rollout's explicit solver, e.g. 'rk4(step = 0.05)' (default: the run's)"
        ),
        dtype: str = typer.Option("float64", "--dtype", help="float64 or float32"),
    ) -> None:
        """Export a trained run: the vector field (and a fixed-step rollout) as pt2 or ONNX, or safetensors."""
        from ..export import export_run

        try:
            files = export_run(run, out, fmt, model=model, path=path, steps=steps, solver=solver, dtype=dtype)
        except NodeDslError as err:
            fail(err)
        except OSError as err:
            fail(NodeDslError.single("io-error", f"cannot write '{out}': {err.strerror}", Span(out, 0, 0)))
        for f in files:
            typer.echo(str(f))
