"""``nodedsl fmt``: golden files, idempotence, and meaning preserved on examples, stdlib and fuzz files.

"Same meaning" is checked twice: the parsed syntax trees are equal (spans are not compared) and the
checker's one-line summaries and diagnostics of every model are the same before and after.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import kind, statement  # the random model bodies of the robustness fuzzer

from nodedsl import NodeDslError
from nodedsl.frontend.check import check_source
from nodedsl.frontend.format import format_source
from nodedsl.frontend.loader import load_sources, source_from_text
from nodedsl.frontend.parse import parse_source

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fmt"
FILES = sorted((ROOT / "examples").glob("*.node")) + sorted((ROOT / "stdlib").glob("*.node"))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _summary(src) -> list[str]:
    """Each checked model's summary (by file name) and each diagnostic's code and line."""
    prog, diags = check_source(src)
    out = sorted(f"{Path(file).name}:{info.summary()}" for (file, _), info in prog.infos.items())
    return out + sorted(f"{d.code}:{d.span.line}" for d in diags)


@pytest.mark.parametrize("name", sorted(p.name[: -len(".in.node")] for p in GOLDEN.glob("*.in.node")))
def test_golden(name):
    src = (GOLDEN / f"{name}.in.node").read_text(encoding="utf-8")
    want = (GOLDEN / f"{name}.out.node").read_text(encoding="utf-8")
    assert format_source(src) == want
    assert format_source(want) == want


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_examples_and_stdlib_twice(path, tmp_path):
    text = path.read_text(encoding="utf-8")
    once = format_source(text, path.name)
    assert format_source(once, path.name) == once
    assert parse_source(once, path.name) == parse_source(text, path.name)
    # the checked program (imports included) is the same: the folder copied, this file formatted
    shutil.copytree(path.parent, tmp_path / "fmt")
    (tmp_path / "fmt" / path.name).write_text(once, encoding="utf-8")
    before, after = load_sources(path), load_sources(tmp_path / "fmt" / path.name)
    assert _summary(after) == _summary(before)


def _respace(text: str, rng: random.Random) -> str:
    """The same tokens laid out badly: random indentation, spaces, blank-line runs."""
    out = []
    for line in text.split("\n"):
        if not line.strip():
            out.append("\n" * rng.randint(0, 2))
            continue
        code, hash_, comment = line.partition("#")
        tokens = re.findall(
            r"->|==|<=|>=|\"[^\"]*\"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[A-Za-z_0-9.]+|\S", code
        )
        pieces = [tokens[0]] if tokens else []
        for a, b in zip(tokens, tokens[1:]):
            word = re.match(r"[A-Za-z_0-9.\"]", a[-1]) and re.match(r"[A-Za-z_0-9.\"]", b[0])
            pieces.append(rng.choice([" ", "\t", "  "] if word else ["", " ", "   "]) + b)
        out.append(" " * rng.randint(0, 9) + "".join(pieces) + rng.choice(["", " ", "\t"]) + hash_ + comment)
    return "\n".join(out)


@SETTINGS
@given(st.sampled_from(FILES), st.integers(0, 2**32 - 1))
def test_any_layout_formats_to_the_canonical_one(path, seed):
    text = path.read_text(encoding="utf-8")
    messy = _respace(text, random.Random(seed))
    assert parse_source(messy, "f.node") == parse_source(text, "f.node")
    assert format_source(messy, "f.node") == format_source(text, "f.node")


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["M", "N"]), kind, st.lists(statement, max_size=8)), min_size=1, max_size=2))
def test_fuzz_generated_files(models):
    text = "\n".join(f"model {name}{k} {{\n" + "\n".join(f"  {s}" for s in body) + "\n}" for name, k, body in models)
    try:
        tree = parse_source(text, "f.node")
    except NodeDslError:
        with pytest.raises(NodeDslError):
            format_source(text, "f.node")
        return
    once = format_source(text, "f.node")
    assert format_source(once, "f.node") == once
    assert parse_source(once, "f.node") == tree
    try:
        src = source_from_text(text, "f.node")
    except NodeDslError:  # a duplicate model name: nothing to check
        return
    assert _summary(source_from_text(once, "f.node")) == _summary(src)


def test_syntax_error_is_reported_not_formatted():
    with pytest.raises(NodeDslError) as err:
        format_source("model M { state x = \n}", "bad.node")
    assert err.value.diagnostics[0].span.file == "bad.node"


def test_cli_check_and_rewrite(tmp_path):
    (tmp_path / "msd.node").write_text((GOLDEN / "msd.node").read_text())
    messy = tmp_path / "messy.node"
    messy.write_text((GOLDEN / "messy.in.node").read_text())
    bad = tmp_path / "bad.node"
    bad.write_text("model M { x = 1 }\n")

    def fmt(*args):
        cmd = [sys.executable, "-c", "from nodedsl.cli.main import main; main()", "fmt", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)

    r = fmt("--check", messy, bad)
    assert r.returncode == 1
    assert f"would reformat {messy}" in r.stderr and "error[unexpected-statement]" in r.stderr
    assert messy.read_text() == (GOLDEN / "messy.in.node").read_text()  # --check changes nothing
    r = fmt(messy)
    assert r.returncode == 0, r.stderr
    assert messy.read_text() == (GOLDEN / "messy.out.node").read_text()
