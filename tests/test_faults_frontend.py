"""Hard source inputs: long chains and deep nesting work; sizes, constants, special files get located errors."""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodedsl
from nodedsl import NodeDslError
from nodedsl.frontend import ast
from nodedsl.frontend.parse import parse_source


def _codes(fn) -> list[str]:
    with pytest.raises(NodeDslError) as info:
        fn()
    return [d.code for d in info.value.diagnostics]


def _field(prog, name="M", x=None):
    model = prog.model(name, dtype=torch.float64)
    x0 = model.x0_default[None] if x is None else x
    return model.field(torch.tensor(0.0, dtype=torch.float64), x0)


def test_a_10000_term_sum_checks_and_compiles():
    # signs alternate in runs, so the rebalanced tree must keep a - b + c = (a - b) + c
    terms, expect = [], 0.0
    for i in range(10_000):
        k = i % 7 + 1
        sign = "-" if i % 3 == 1 else "+"
        terms.append(f"{sign} {k}*x[{i % 4}]")
        expect += (-k if sign == "-" else k) * (i % 4 + 1) / 10
    text = "model M {\n state x[4] = [0.1, 0.2, 0.3, 0.4]\n der(x) = -x + (0 " + " ".join(terms) + ") / 1e4\n}\n"
    prog = nodedsl.loads(text)
    got = _field(prog)
    assert torch.allclose(got, -torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64) + expect / 1e4)


def test_10000_nested_parentheses_and_a_long_product():
    text = "model M {\n state x = 2\n der(x) = " + "(" * 10_000 + "-x" + ")" * 10_000 + "\n"
    text += " output y = x" + " * x / x" * 1500 + "\n}\n"
    prog = nodedsl.loads(text)
    assert _field(prog).item() == -2.0
    model = prog.model("M", dtype=torch.float64)
    y = model.observe(torch.zeros(1), model.x0_default[None], torch.zeros(1, 0))
    assert float(y[0, -1]) == 2.0


def _value(node) -> float:
    """The value of a constant AST expression (the rebalanced tree is shallow, so recursion is fine)."""
    if isinstance(node, ast.Num):
        return node.value
    if isinstance(node, ast.Neg):
        return -_value(node.operand)
    a, b = _value(node.left), _value(node.right)
    if node.op == "/":
        return a / b
    return {"+": a + b, "-": a - b, "*": a * b}[node.op]


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("+-"), st.integers(1, 9)), min_size=30, max_size=300),
    st.lists(st.tuples(st.sampled_from("*/"), st.integers(1, 3)), min_size=30, max_size=120),
)
def test_rebalancing_keeps_the_value_of_chains(sums, products):
    """A chain long enough to be rebalanced has the value of the same chain read left to right (factors
    near 1, so the regrouped products neither overflow nor underflow)."""
    text, value = "2", 2.0
    for op, k in sums:
        text += f" {op} {k} * 3"
        value = value + 3 * k if op == "+" else value - 3 * k
    text += " + (1"
    inner = 1.0
    for op, k in products:
        text += f" {op} ({k} - 0.5)"
        inner = inner * (k - 0.5) if op == "*" else inner / (k - 0.5)
    text += ")"
    value += inner
    expr = parse_source(f"model M {{\n state x = 1\n der(x) = {text}\n}}\n").models[0].body[1].expr
    assert math.isclose(_value(expr), value, rel_tol=1e-9, abs_tol=1e-9)


def test_a_chain_of_1000_imports_loads(tmp_path):
    for i in range(1000):
        head = f'import "m{i + 1}.node"\n' if i < 999 else ""
        (tmp_path / f"m{i}.node").write_text(head + f"model A{i} {{\n state x = 1\n der(x) = -x\n}}\n")
    prog = nodedsl.load(tmp_path / "m0.node")
    assert len(prog.sources) == 1000


@pytest.mark.parametrize(
    "body, code",
    [
        ("state x[1000000000] = 0\n der(x) = -x", "too-large"),
        ("state x[" + "9" * 5000 + "] = 0\n der(x) = -x", "too-large"),
        ("state x = 1\n net f(a[100000000]) -> 1\n der(x) = f(x)", "too-large"),
        ("state x = 1\n net f(a) -> 1 { hidden = [100000000] }\n der(x) = f(x)", "too-large"),
        ("state x = 1\n der(x) = -x * 2^2^2^2^2^2", "bad-constant"),
        ("state x = 1\n param k = 1e999\n der(x) = -k * x", "bad-constant"),
        ("state x = 1\n der(x) = -x * (10^200 * 10^200)", "bad-constant"),
        ("state x = 1\n der(x) = " + "sin(" * 500 + "x" + ")" * 500, "too-large"),
        ("state x = 1\n der(x) = " + "-" * 5000 + "x", "too-large"),
        ("state x = 1\n der(x) = " + "[" * 400 + "x" + "]" * 400, "too-large"),
    ],
)
def test_resource_and_value_limits_are_located_errors(body, code):
    codes = _codes(lambda: nodedsl.loads("model M {\n " + body + "\n}\n", "m.node"))
    assert code in codes


def test_constraint_domain_of_infinite_width_is_refused():
    body = "state x = 1\n param k = 1 learn\n der(x) = -k*x\n constraint c: x >= -1 for w in [-1e999, 1e999]"
    assert "bad-constant" in _codes(lambda: nodedsl.loads("model M {\n " + body + "\n}\n"))


def test_limits_are_raised_by_their_environment_variable(monkeypatch):
    text = "model M {\n state x[20] = 0\n der(x) = -x\n}\n"
    monkeypatch.setenv("NODEDSL_MAX_ELEMENTS", "10")
    with pytest.raises(NodeDslError) as info:
        nodedsl.loads(text)
    assert "NODEDSL_MAX_ELEMENTS" in info.value.diagnostics[0].notes[0]
    monkeypatch.setenv("NODEDSL_MAX_ELEMENTS", "100")
    nodedsl.loads(text)


def test_source_file_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.node"
    path.write_text("model M {\n state x = 1\n der(x) = -x\n}\n" + "# padding\n" * 200)
    monkeypatch.setenv("NODEDSL_MAX_SOURCE_BYTES", "1000")
    assert _codes(lambda: nodedsl.load(path)) == ["too-large"]


MODEL = "model M {\n state x = 1\n der(x) = -x\n}\n"


def test_special_files_and_odd_imports(tmp_path):
    fifo = tmp_path / "pipe.node"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.node"
    os.symlink(loop, loop)
    (tmp_path / "secret.txt").write_text("TOP SECRET first line\n")
    cases = {
        '"/dev/zero"': "not-node-source",
        '"./pipe.node"': "not-a-file",
        '"./loop.node"': "unreadable-file",
        '"./secret.txt"': "not-node-source",
        '"./"': "not-node-source",
    }
    for target, code in cases.items():
        main = tmp_path / "main.node"
        main.write_text(f"import {target}\n" + MODEL)
        with pytest.raises(NodeDslError) as info:
            nodedsl.load(main)
        assert [d.code for d in info.value.diagnostics] == [code], target
        assert "TOP SECRET" not in str(info.value) + "".join(str(d) for d in info.value.diagnostics)
    assert _codes(lambda: nodedsl.load(fifo)) == ["not-a-file"]
    assert _codes(lambda: nodedsl.load("/dev/zero")) == ["not-a-file"]
