"""The editor commands: ``fmt`` (the canonical layout) and ``lsp`` (the language server on stdio).

Registered on the main typer app by :func:`register`.

Example::

    nodedsl fmt examples/*.node            # rewrite in place
    nodedsl fmt --check examples/*.node    # exit 1 listing the files that are not formatted
    nodedsl fmt - < model.node             # stdin to stdout (for editors)
    nodedsl lsp                            # speak LSP on stdin/stdout
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..core.diagnostics import NodeDslError, Span, render

__all__ = ["format_files", "register"]


def format_files(files: list[str], check: bool) -> tuple[list[str], list[NodeDslError]]:
    """Format ``files`` in place (or only compare, with ``check``): the changed files and the errors.

    Example:
        >>> format_files([], check=True)
        ([], [])
    """
    from ..frontend.format import format_source
    from ..io.atomic import atomic_write

    changed: list[str] = []
    errors: list[NodeDslError] = []
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = getattr(err, "strerror", None) or str(err)
            errors.append(NodeDslError.single("unreadable-file", f"cannot read '{name}': {reason}", Span(name, 0, 0)))
            continue
        try:
            out = format_source(text, name)
        except NodeDslError as err:
            errors.append(err)
            continue
        if out == text:
            continue
        changed.append(name)
        if not check:
            try:
                atomic_write(name, _writer(out))
            except OSError as err:
                errors.append(
                    NodeDslError.single("io-error", f"cannot write '{name}': {err.strerror}", Span(name, 0, 0))
                )
    return changed, errors


def _writer(text: str):
    return lambda fh: fh.write(text)


def _report(err: NodeDslError, text: str | None = None) -> None:
    """Each diagnostic rendered with its source line (this module does not import cli.main: no cycle)."""
    for d in err.diagnostics:
        source = text
        if source is None and Path(d.span.file).is_file():
            source = Path(d.span.file).read_text(encoding="utf-8", errors="replace")
        typer.echo(render(d, source), err=True)


def register(app: typer.Typer) -> None:
    """Add ``fmt`` and ``lsp`` to ``app``."""

    @app.command("fmt")
    def fmt(
        files: list[str] = typer.Argument(..., help="the .node files to format in place, or - for stdin to stdout"),
        check: bool = typer.Option(False, "--check", help="change nothing; exit 1 if a file is not formatted"),
    ) -> None:
        """Rewrite .node files in the canonical layout (comments kept, meaning unchanged)."""
        if files == ["-"]:
            from ..frontend.format import format_source

            text = sys.stdin.read()
            try:
                sys.stdout.write(format_source(text, "<stdin>"))
            except NodeDslError as bad:
                _report(bad, text)
                raise typer.Exit(1) from None
            return
        changed, errors = format_files(files, check)
        for err in errors:
            _report(err)
        for name in changed:
            typer.echo(f"{'would reformat' if check else 'reformatted'} {name}", err=check)
        if errors or (check and changed):
            raise typer.Exit(1)

    @app.command("lsp")
    def lsp() -> None:
        """Run the language server over stdin/stdout (for VS Code, Neovim, Emacs; see docs/editors.md)."""
        from ..lsp.server import serve

        serve()
