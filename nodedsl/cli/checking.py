"""``nodedsl check`` without the command-line framework: the hot path of editors and pre-commit hooks.

``check`` is the command people run on every save, so :mod:`nodedsl.cli.entry` routes a plain
``nodedsl check FILE...`` here before typer (and its click machinery, a tenth of a second) is imported;
:mod:`nodedsl.cli.check` calls the same function, so both routes print the same lines.

Example:
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "m.node")
    >>> _ = open(p, "w").write("model M {\\n  state x = 1.0\\n  der(x) = -x\\n}\\n")
    >>> check_files([p], out=lambda line: print(line.split(": ", 1)[1]), err=print)
    M: 1 states, 0 inputs, 0 params (0 learned), 0 nets, 0 constraints
    0
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..core.diagnostics import Diagnostic, NodeDslError, Span, render

__all__ = ["check_files", "guarded", "render_all"]


def _stdout(line: str) -> None:
    print(line, flush=True)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def render_all(diags, sources: dict[str, str] | None = None) -> list[str]:
    """Each diagnostic rendered ``file:line:col: error[code]: message``, its line and a caret.

    The source text comes from ``sources`` or, failing that, the file on disk (when readable)."""
    sources = sources or {}
    lines = []
    for d in diags:
        text = sources.get(d.span.file)
        if text is None and d.span.file and Path(d.span.file).is_file():
            try:
                text = Path(d.span.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = None
        lines.append(render(d, text))
    return lines


def check_files(
    files: Sequence[str], out: Callable[[str], None] = _stdout, err: Callable[[str], None] = _stderr
) -> int:
    """Parse and check each file: a summary line per model, dataset and train block on ``out``, or
    every diagnostic and the error count on ``err``. Returns the exit status (1 if any file failed)."""
    from ..program import load

    failed = False
    for path in files:
        try:
            prog = load(path)
        except NodeDslError as exc:
            for line in render_all(exc.diagnostics):
                err(line)
            n = sum(1 for d in exc.diagnostics if d.severity == "error")
            err(f"{path}: {n} error{'s' if n != 1 else ''}")
            failed = True
            continue
        for line in render_all(prog.warnings, prog.sources):
            err(line)
        for info in prog.checked.root_models():
            out(f"{path}: {info.summary()}")
        for ds in prog.module.datasets:
            out(f"{path}: dataset {ds.name}")
        for tr in prog.module.trains:
            out(f"{path}: train {tr.model}")
    return 1 if failed else 0


def guarded(run: Callable[[], object]) -> None:
    """Run a command so that no Python traceback reaches the user: an unexpected exception becomes an
    ``internal`` diagnostic (exit 2), Ctrl-C exits 130, ``SystemExit`` passes through."""
    try:
        run()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _stderr("interrupted")
        sys.exit(130)
    except Exception as exc:
        diag = Diagnostic(
            "internal",
            f"internal error: {type(exc).__name__}: {exc}",
            Span("<nodedsl>", 0, 0),
            ("please report this with the input that caused it",),
        )
        _stderr(render(diag))
        sys.exit(2)
