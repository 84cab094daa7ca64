"""Highlighting: the Pygments lexer and the VS Code TextMate grammar give keywords, numbers, comments and
strings the scopes they declare, on every example and stdlib file.

The TextMate grammar is run by the engine VS Code uses (``vscode-textmate`` + ``vscode-oniguruma``,
driven by ``tests/textmate/tokenize.js``); the npm packages are installed into
``tests/textmate/node_modules`` on first use. The test skips only when node or npm is absent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments.token import Comment, Error, Keyword, Number, String

from nodedsl.core.words import ALL_WORDS
from nodedsl.frontend.shapes import BUILTINS
from nodedsl.highlight.lexer import BUILTINS as LEXER_BUILTINS
from nodedsl.highlight.lexer import NodeDslLexer

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted((ROOT / "examples").glob("*.node")) + sorted((ROOT / "stdlib").glob("*.node"))
GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "nodedsl.tmLanguage.json"
TM = ROOT / "tests" / "textmate"
_LEX = re.compile(
    r'(?P<comment>#[^\n]*)|(?P<string>"[^"\n]*")|(?P<number>(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)'
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>\S)"
)
SCOPES = {  # the category of a token -> the TextMate scope it must have
    "keyword": ("keyword.other.", "storage.modifier."),
    "number": ("constant.numeric.",),
    "comment": ("comment.line.",),
    "string": ("string.quoted.",),
}


def _expected(text: str) -> list[tuple[int, int, str, str]]:
    """(line, column, category, text) of every keyword, number, comment and string, 0-based."""
    out = []
    for i, line in enumerate(text.split("\n")):
        for m in _LEX.finditer(line):
            kind = m.lastgroup
            if kind == "name" and m.group() in ALL_WORDS:
                kind = "keyword"
            if kind in SCOPES:
                out.append((i, m.start(), kind, m.group()))
    return out


def test_expectations_cover_every_category():
    got = {c for f in FILES for _, _, c, _ in _expected(f.read_text())}
    assert got == set(SCOPES)


# ------------------------------------------------------------------ Pygments
PYGMENTS = {"keyword": Keyword, "number": Number, "comment": Comment, "string": String}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_pygments_lexer(path):
    text = path.read_text(encoding="utf-8")
    assert all(tok is not Error for _, tok, _ in NodeDslLexer().get_tokens_unprocessed(text))
    line_starts = [0]
    for line in text.split("\n"):
        line_starts.append(line_starts[-1] + len(line) + 1)
    starts = {pos: tok for pos, tok, _ in NodeDslLexer().get_tokens_unprocessed(text)}
    for line, col, kind, word in _expected(text):
        tok = starts.get(line_starts[line] + col)
        assert tok is not None and tok in PYGMENTS[kind], (path.name, line + 1, col + 1, word, tok)


def test_pygments_knows_the_language():
    assert set(LEXER_BUILTINS) == set(BUILTINS)
    lexed = {v for tok, v in NodeDslLexer().get_tokens(" ; ".join(sorted(ALL_WORDS))) if tok in Keyword}
    assert lexed == set(ALL_WORDS)


def test_textmate_grammar_names_every_word():
    """The VS Code grammar is JSON, not Python: every word of nodedsl.core.words must be in it."""
    patterns = json.loads(GRAMMAR.read_text())["repository"]["keyword"]["patterns"]
    named = {w for p in patterns for w in re.findall(r"[A-Za-z_]+", p["match"].replace("\\b", " "))} - {"b"}
    assert set(ALL_WORDS) <= named, sorted(set(ALL_WORDS) - named)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["project"]["entry-points"]["pygments.lexers"]["nodedsl"] == "nodedsl.highlight.lexer:NodeDslLexer"


def test_pygmentize_finds_the_lexer():
    """Through the entry point, as Sphinx and MkDocs find it (needs nodedsl installed with its metadata)."""
    if not any(ep.name == "nodedsl" for ep in entry_points(group="pygments.lexers")):
        pytest.skip("nodedsl is installed without the pygments entry point: reinstall it (pip install -e .)")
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert isinstance(get_lexer_by_name("nodedsl"), NodeDslLexer)
    assert isinstance(get_lexer_for_filename("pendulum.node"), NodeDslLexer)


# ------------------------------------------------------------------ TextMate
@pytest.fixture(scope="module")
def textmate_tokens():
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the TextMate grammar")
    if not (TM / "node_modules" / "vscode-textmate").is_dir():
        cmd = [npm, "ci" if (TM / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
        subprocess.run(cmd, cwd=TM, check=True, capture_output=True, timeout=300)
    run = subprocess.run(
        [node, str(TM / "tokenize.js"), str(GRAMMAR), *map(str, FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_textmate_grammar(textmate_tokens, path):
    tokens = textmate_tokens[str(path)]
    text = path.read_text(encoding="utf-8")
    by_start = {(line, start): (end, scopes) for line, start, end, scopes in tokens}
    for line, col, kind, word in _expected(text):
        end, scopes = by_start[(line, col)]
        assert end == col + len(word), (path.name, line + 1, col + 1, word, end)
        assert any(s.startswith(SCOPES[kind]) for s in scopes), (path.name, line + 1, col + 1, word, scopes)
    # every word and number is scoped (punctuation and spaces may stay plain source)
    lines = text.split("\n")
    for line, start, end, scopes in tokens:
        piece = lines[line][start:end]
        if re.search(r"\w", piece):
            assert len(scopes) > 1, (path.name, line + 1, start + 1, piece)
