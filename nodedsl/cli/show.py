"""``nodedsl show FILE``: checked models in mathematical form (plain text or LaTeX)."""

from __future__ import annotations

import typer

from ..core.diagnostics import NodeDslError
from .common import fail, load_or_fail


def register(app: typer.Typer) -> None:
    """Add the command to ``app`` (the main ``nodedsl`` app)."""

    @app.command()
    def show(
        path: str,
        model: str | None = typer.Option(None, "--model", "-m", help="only this model"),
        latex: bool = typer.Option(False, "--latex", help="a LaTeX align* block per model (amsmath)"),
        document: bool = typer.Option(False, "--latex-document", help="a complete LaTeX document (pdflatex)"),
    ) -> None:
        """Print checked models in mathematical form (derived pH dynamics, constraints, parameters, nets)."""
        from ..symbolic.show import format_latex, format_system, latex_document

        prog = load_or_fail(path)
        names = [model] if model else [m.name for m in prog.module.models]
        try:
            if latex or document:
                blocks = [format_latex(prog.system(name), prog.info(name)) for name in names]
                typer.echo(latex_document(blocks) if document else "\n\n".join(blocks))
                return
            for name in names:
                typer.echo(format_system(prog.system(name), prog.info(name)))
                typer.echo("")
        except NodeDslError as err:
            fail(err, prog.sources)
