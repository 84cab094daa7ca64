"""One builtin registry (nodedsl/core/builtins.py): every declared builtin has its SymPy constructor,
its torch ops and their Taylor rules; the language reference's table lists exactly the registry; the
declared sign facts hold."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import sympy as sp
import torch

import nodedsl
from nodedsl.compiler import emit, ops
from nodedsl.core.builtins import BUILTINS
from nodedsl.symbolic.builtins import HEADLESS, HEADS, SYMPY
from nodedsl.symbolic.functions import Val

DOCS = Path(__file__).resolve().parent.parent / "docs" / "language.md"
POINTS = [-2.5, -0.3, 0.0, 0.7, 3.0]


def test_every_builtin_has_a_sympy_constructor_and_nothing_else_does():
    assert set(SYMPY) == set(BUILTINS)
    for name in BUILTINS:
        assert (name in HEADS) != (name in HEADLESS), name
        assert name not in HEADLESS or HEADLESS[name], f"{name}: a builtin without a SymPy head says why"


def test_every_builtin_has_torch_ops_with_taylor_rules():
    assert set(ops.BUILTIN_OPS) == set(BUILTINS)
    assert set(ops.TORCH_BY_BUILTIN) == set(HEADS)
    for name, fns in ops.BUILTIN_OPS.items():
        for fn in fns:
            op = ops.FUNCTIONS.get(fn)
            assert op is not None, f"{name}: {fn} is not declared in ops.py"
            assert op.jet not in (ops.CONSTANT, ops.NO_RULE), f"{name}: {fn} has no Taylor rule"
    for name in HEADS:
        assert ops.TORCH_BY_BUILTIN[name] in ops.BUILTIN_OPS[name], name


@pytest.mark.parametrize("name", sorted(HEADS))
def test_torch_emission_agrees_with_sympy(name):
    """The torch op the compiler emits for a SymPy head computes what SymPy means by it."""
    x = sp.Symbol("x", real=True)
    expr = SYMPY[name]([Val.scalar(x)]).expr
    assert emit._FUNCS[type(expr)] is ops.TORCH_BY_BUILTIN[name]
    for v in POINTS:
        if name == "log" and v <= 0:
            continue
        want = float(expr.subs(x, v).evalf())
        got = float(ops.TORCH_BY_BUILTIN[name](torch.tensor(v, dtype=torch.float64)))
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (name, v, got, want)


def _table() -> dict[str, tuple[int, str]]:
    text = DOCS.read_text(encoding="utf-8")
    start = text.index("| function | arguments | result |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        m = re.fullmatch(r"`(\w+)\((.*)\)`", cells[0])
        assert m, line
        rows[m.group(1)] = (int(cells[1]), m.group(2))
    return rows


def test_language_reference_lists_exactly_the_registry():
    table = _table()
    assert list(table) == list(BUILTINS)
    for name, b in BUILTINS.items():
        assert table[name] == (b.arity[0], b.args), name


@pytest.mark.parametrize("name", sorted(n for n, b in BUILTINS.items() if b.nonnegative))
def test_nonnegative_facts_hold(name):
    b = BUILTINS[name]
    for v in POINTS:
        if name == "sqrt" and v < 0:
            continue  # outside its real domain
        if name == "norm":
            val = SYMPY[name]([Val((2,), (sp.Float(v), sp.Float(1 - v)))])
        else:
            val = SYMPY[name]([Val.scalar(sp.Float(v))])
        assert float(val.expr.evalf()) >= 0, (b.name, v)


def test_structure_facts_are_what_the_proofs_accept():
    v = [sp.Symbol(f"v{i}", real=True) for i in range(6)]
    assert {n: b.structure for n, b in BUILTINS.items() if b.structure} == {"skew": "skew", "psd": "psd"}
    S = SYMPY["skew"]([Val((6,), tuple(v))]).matrix()
    assert S.shape == (4, 4) and (S + S.T).is_zero_matrix
    P = SYMPY["psd"]([Val((6,), tuple(v))]).matrix()
    assert P.shape == (3, 3) and (P - P.T).is_zero_matrix
    # a learned R = psd(v) is accepted by construction, a learned diagonal R is not provable
    ok = "model M : port_hamiltonian { state q = 1\n state p = 0\n param r[3] = 0 learn\n hamiltonian = p^2 + q^2\n"
    nodedsl.loads(ok + " R = psd(r) }").model("M")
    with pytest.raises(nodedsl.NodeDslError, match=r"positive semi-definite"):
        nodedsl.loads(ok + " R = [[r[0], 0], [0, -1]] }")
    # the declared non-negative outputs of builtins let a diagonal R of learned values be proven
    nodedsl.loads(ok + " R = [[sigmoid(r[0]), 0], [0, softplus(r[1]) + abs(r[2])]] }").model("M")
    with pytest.raises(nodedsl.NodeDslError, match=r"may be negative"):
        nodedsl.loads(ok + " R = [[sigmoid(r[0]) - 1, 0], [0, 1]] }")


def test_the_checker_reads_the_registry():
    for name, b in BUILTINS.items():
        args = ", ".join(["x"] * (b.arity[0] + 1))
        with pytest.raises(nodedsl.NodeDslError, match=r"takes \d argument"):
            nodedsl.loads(f"model M {{ state x = 1\n der(x) = {name}({args}) }}")
