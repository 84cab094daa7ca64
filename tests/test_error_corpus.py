"""The error corpus: every ``tests/errors/*.node`` file is malformed and says inline what is wrong.

Expectations are trailing comments, mypy-style:

* ``# E: code``      an error with this code is reported on this line (several per line allowed);
* ``# E@N: code``    an error with this code is reported on line N (for errors at the end of the file);
* ``# N: text``      a diagnostic reported on this line mentions ``text`` (in its message or a note).

A fixture may import helper files (``_components.node``, ``cycle/*.node``); expectations written in
imported files under ``tests/errors/`` count too, so an error reported in an imported file is
checked there. Files whose name starts with ``_`` are helpers, not fixtures.

The test loads each fixture with :func:`nodedsl.load` and asserts that only ``NodeDslError`` is
raised, that the set of ``(file, line, code)`` of the reported errors equals the expected set
exactly, and that every diagnostic renders as ``file:line:col: error[code]: ...`` with a caret line.

Fixtures in ``KNOWN_FAILURES`` are written as the language contract says but the implementation
currently reports something else; they are strict xfails, so fixing the implementation turns them
into failures until they are removed from the list.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import nodedsl
from nodedsl import NodeDslError, render

ERRORS = Path(__file__).resolve().parent / "errors"

# fixture file name -> what the implementation does instead of what the fixture expects
KNOWN_FAILURES: dict[str, str] = {}

_E = re.compile(r"#\s*E(?:@(\d+))?:\s*([a-z][a-z0-9-]*)")
_N = re.compile(r"#\s*N:\s*([^#]*[^#\s])")
_IMPORT = re.compile(r'^\s*import\s+"([^"]+)"')
_HEAD = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): error\[(?P<code>[a-z0-9-]+)\]: ")
_CARET = re.compile(r"^\s*\|\s*\^~*\s*$")


def fixtures() -> list[Path]:
    return sorted(p for p in ERRORS.glob("*.node") if not p.name.startswith("_"))


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _involved(root: Path) -> list[Path]:
    """The fixture and the files under tests/errors/ it imports (transitively)."""
    seen: list[Path] = []
    todo = [root.resolve()]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.append(path)
        for line in _read(path).splitlines():
            m = _IMPORT.match(line)
            if m and (m.group(1).endswith(".node") or "/" in m.group(1)):
                target = (path.parent / m.group(1)).resolve()
                if ERRORS in target.parents:
                    todo.append(target)
    return seen


def expectations(root: Path) -> tuple[set[tuple[Path, int, str]], set[tuple[Path, int, str]]]:
    """``(file, line, code)`` of expected errors and ``(file, line, text)`` of expected notes."""
    errors, notes = set(), set()
    for path in _involved(root):
        for lineno, line in enumerate(_read(path).splitlines(), start=1):
            for m in _E.finditer(line):
                errors.add((path, int(m.group(1)) if m.group(1) else lineno, m.group(2)))
            for m in _N.finditer(line):
                notes.add((path, lineno, m.group(1)))
    return errors, notes


def _source_of(diag) -> str | None:
    path = Path(diag.span.file)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _params():
    out = []
    for path in fixtures():
        marks = ()
        if path.name in KNOWN_FAILURES:
            marks = (pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[path.name]),)
        out.append(pytest.param(path, id=path.stem, marks=marks))
    return out


def test_corpus_is_large_enough():
    assert len(fixtures()) >= 45
    for path in fixtures():
        assert expectations(path)[0], f"{path.name} declares no expected error"


def test_known_failures_exist():
    names = {p.name for p in fixtures()}
    assert set(KNOWN_FAILURES) <= names


@pytest.mark.parametrize("path", _params())
def test_error_fixture(path: Path):
    want, want_notes = expectations(path)
    with pytest.raises(NodeDslError) as info:
        nodedsl.load(path)
    diags = info.value.diagnostics
    assert diags, "NodeDslError without diagnostics"
    got = {(Path(d.span.file).resolve(), d.span.line, d.code) for d in diags if d.severity == "error"}
    rel = lambda s: sorted((str(p.relative_to(ERRORS)), line, code) for p, line, code in s)  # noqa: E731
    assert got == want, f"\nmissing: {rel(want - got)}\nunexpected: {rel(got - want)}\nall: " + "\n".join(
        render(d) for d in diags
    )

    rendered = []
    for d in diags:
        text = render(d, _source_of(d))
        rendered.append((Path(d.span.file).resolve(), d.span.line, text))
        head = _HEAD.match(text.splitlines()[0])
        assert head, text
        assert head.group("file") == d.span.file and head.group("code") == d.code
        assert (int(head.group("line")), int(head.group("col"))) == (d.span.line, d.span.col)
        assert d.span.line >= 1 and d.span.col >= 1, text
        assert d.message, text
        assert any(_CARET.match(line) for line in text.splitlines()[1:]), f"no caret line in:\n{text}"

    for file, line, note in want_notes:
        assert any(f == file and ln == line and note in text for f, ln, text in rendered), (
            f"no diagnostic on {file.name}:{line} mentions {note!r}"
        )


def test_algebraic_loop_is_reported_when_the_model_is_built():
    """Until load() reports it (see KNOWN_FAILURES), building the model must."""
    try:
        prog = nodedsl.load(ERRORS / "algebraic_loop.node")
    except NodeDslError as err:
        assert "algebraic-loop" in {d.code for d in err.diagnostics}
        return
    with pytest.raises(NodeDslError) as info:
        prog.model("Loop")
    assert {d.code for d in info.value.diagnostics} == {"algebraic-loop"}


def test_nul_byte_is_a_diagnostic():
    with pytest.raises(NodeDslError) as info:
        nodedsl.loads("model M {\x00}\n", "m.node")
    assert [d.code for d in info.value.diagnostics] == ["bad-encoding"]


def test_missing_root_file_is_a_diagnostic(tmp_path):
    with pytest.raises(NodeDslError) as info:
        nodedsl.load(tmp_path / "nowhere.node")
    assert [d.code for d in info.value.diagnostics] == ["file-not-found"]


def test_loads_rejects_imports():
    with pytest.raises(NodeDslError) as info:
        nodedsl.loads('import "mechanics"\n', "m.node")
    assert [d.code for d in info.value.diagnostics] == ["import-not-found"]


_CODE_CALL = re.compile(r'(?:Diagnostic|error|warn|single)\(\s*"([a-z]+(?:-[a-z]+)*)"')
_CODE_COND = re.compile(r'"([a-z]+(?:-[a-z]+)+)" if ')


def emitted_codes() -> set[str]:
    """Every diagnostic code that appears in a diagnostic constructor in the package source."""
    codes: set[str] = set()
    package = Path(nodedsl.__file__).resolve().parent
    for path in package.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes.update(_CODE_CALL.findall(text))
        codes.update(_CODE_COND.findall(text))
        codes.update(c for c in re.findall(r'"([a-z]+(?:-[a-z]+)+)"', text) if f'code = "{c}"' in text)
    from nodedsl.frontend.parse import _EXAMPLES

    codes.update(code for code, _ in _EXAMPLES)
    return codes | {"syntax", "unexpected-character"}


def test_every_code_is_documented():
    doc = (ERRORS.parent.parent / "docs" / "language.md").read_text(encoding="utf-8")
    missing = sorted(c for c in emitted_codes() if f"`{c}`" not in doc)
    assert not missing, f"docs/language.md section 11 lacks the codes {missing}"
