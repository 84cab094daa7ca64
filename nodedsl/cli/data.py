"""``nodedsl data FILE --dataset NAME -o CSV``: write a dataset block's trajectories as a CSV file."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError, Span
from .common import fail, load_or_fail


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def data(
        path: str,
        dataset: str | None = typer.Option(None, "--dataset", "-d", help="dataset block (default: the only one)"),
        out: str = typer.Option("-", "--output", "-o", help="output CSV (default: stdout)"),
    ) -> None:
        """Simulate a dataset block and write its trajectories (trajectory, t, outputs, inputs) as CSV."""
        from ..simulate import dataset_table, write_csv

        prog = load_or_fail(path)
        try:
            names = [d.name for d in prog.module.datasets]
            if dataset is None and len(names) != 1:
                raise NodeDslError.single(
                    "bad-argument",
                    f"the file has {len(names)} dataset blocks; choose one with --dataset",
                    Span("<--dataset>", 0, 0),
                    "datasets: " + (", ".join(names) or "none"),
                )
            table = dataset_table(prog, dataset or names[0])
        except NodeDslError as err:
            fail(err, prog.sources)
        try:
            write_csv(table, None if out == "-" else out)
        except OSError as err:
            fail(NodeDslError.single("io-error", f"cannot write '{out}': {err.strerror}", Span(out, 0, 0)))
