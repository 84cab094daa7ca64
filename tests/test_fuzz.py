"""Robustness: no input, however malformed, may make the front end raise anything but NodeDslError.

(a) random token sequences built from the language's vocabulary, raw and shaped as model bodies;
(b) random character/token mutations of the examples and of the standard library;
(c) the package source never evaluates text: no eval/exec/sympify/parse_expr/lambdify calls.

The number of examples per property is ``NODEDSL_FUZZ_EXAMPLES`` (default 300; CI sets 600), a quarter of
it for the port-Hamiltonian property (SymPy proofs per example).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodedsl
from nodedsl import NodeDslError
from nodedsl.core.diagnostics import Diagnostic
from nodedsl.core.words import ALL_WORDS

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
STDLIB = ROOT / "stdlib"
PACKAGE = ROOT / "nodedsl"

N = int(os.environ.get("NODEDSL_FUZZ_EXAMPLES", "300"))
FUZZ = settings(
    max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False, print_blob=True
)
# each port-Hamiltonian example runs the SymPy proofs (about 50 ms): a quarter of N keeps CI's share of
# this one property's cost down; NODEDSL_FUZZ_EXAMPLES=8000 gives it 2000 examples
FUZZ_PH = settings(FUZZ, max_examples=max(50, N // 4))


def _loads_only_node_errors(text: str) -> None:
    """``nodedsl.loads(text)`` either succeeds or raises NodeDslError with well-formed diagnostics."""
    try:
        nodedsl.loads(text, "fuzz.node")
    except NodeDslError as err:
        assert err.diagnostics, "NodeDslError without diagnostics"
        for d in err.diagnostics:
            assert isinstance(d, Diagnostic)
            assert isinstance(d.code, str) and d.code, d
            assert isinstance(d.message, str) and d.message, d
            assert d.span is not None and isinstance(d.span.line, int) and d.span.line >= 0, d
            assert isinstance(d.span.col, int) and d.span.col >= 0, d
            nodedsl.render(d, text)  # rendering never fails either


# ------------------------------------------------------------------ (a) token sequences
KEYWORDS = sorted(ALL_WORDS)  # every word of the language (nodedsl.core.words)
NAMES = [
    "x",
    "q",
    "p",
    "v",
    "M",
    "N",
    "f",
    "g",
    "k",
    "m",
    "c",
    "t",
    "pi",
    "G",
    "C",
    "theta",
    "omega",
    "tau",
    "left",
    "right",
    "spring",
    "force",
    "ends",
    "a",
    "b",
    "u",
    "y",
    "w",
    "sin",
    "cos",
    "exp",
    "log",
    "sqrt",
    "tanh",
    "softplus",
    "sigmoid",
    "abs",
    "sign",
    "min",
    "max",
    "clip",
    "dot",
    "norm",
    "transpose",
    "solve",
    "skew",
    "psd",
    "diag",
    "span",
    "uniform",
    "adam",
    "rk4",
    "hidden",
    "activation",
    "output",
    "data",
    "epochs",
    "seed",
    "time",
    "initial",
]
NUMBERS = [
    "0",
    "1",
    "2",
    "-1",
    "0.5",
    "2.5",
    "1e-3",
    "1e9",
    "-0.5",
    ".5",
    "3.",
    "1e400",
    "0.0",
    "10",
    "100000000000000000000",
]
PUNCT = [
    "=",
    "==",
    "<=",
    ">=",
    "->",
    "+",
    "-",
    "*",
    "/",
    "^",
    "@",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    ":",
    ".",
    "#",
    '"',
    '"x.node"',
    '"mechanics"',
    '"runs.csv"',
    "'",
    "$",
    "!",
    "\\",
]
SEPS = ("\n", "\n\n", ";", " ", "\t", "\r\n")
TOKENS = KEYWORDS + NAMES + NUMBERS + PUNCT + list(SEPS)

token = st.sampled_from(TOKENS)
joiner = st.sampled_from([" ", "", "\n"])


@FUZZ
@given(st.lists(token, max_size=60), joiner)
def test_random_token_sequences(tokens, sep):
    _loads_only_node_errors(sep.join(tokens))


# Expressions and statements: most random token soup stops at the parser; these get past it, into
# the checker, the lowering and the structural (skew/PSD) proofs.
leaf = st.sampled_from(
    [
        "x",
        "q",
        "p",
        "k",
        "m",
        "t",
        "pi",
        "0",
        "1",
        "2.5",
        "-1",
        "q[0]",
        "q[1]",
        "q[2]",
        "x[0]",
        "f(x)",
        "f(q)",
        "f(x)[1]",
        "g",
        "nope",
        "force",
        "[1, 2]",
        "[[0, 1], [-1, 0]]",
        "[[1, 0], [0, 1]]",
        "[[0]]",
        "[x, p]",
        "[[x, 0], [0, p]]",
    ]
)


def _expr(children):
    binop = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "^", "@"]), children).map(" ".join)
    call = st.tuples(
        st.sampled_from(
            [
                "sin",
                "exp",
                "sqrt",
                "softplus",
                "abs",
                "norm",
                "transpose",
                "skew",
                "psd",
                "diag",
                "min",
                "dot",
                "solve",
                "f",
                "unknown",
            ]
        ),
        st.lists(children, min_size=1, max_size=3),
    ).map(lambda a: f"{a[0]}({', '.join(a[1])})")
    return st.one_of(binop, call, children.map(lambda e: f"-({e})"), children.map(lambda e: f"[{e}, {e}]"))


expr = st.recursive(leaf, _expr, max_leaves=6)
size = st.sampled_from(["", "", "[2]", "[3]", "[0]"])
statement = st.one_of(
    st.tuples(
        st.sampled_from(["state", "input"]),
        st.sampled_from(["x", "q", "p", "u"]),
        size,
        st.one_of(st.just(""), expr.map(lambda e: f" = {e}")),
    ).map(lambda a: f"{a[0]} {a[1]}{a[2]}{a[3]}"),
    st.tuples(
        st.sampled_from(["k", "m", "c"]),
        size,
        expr,
        st.sampled_from(["", " learn", " learn positive", " learn in [0, 2]", " learn in [3, 1]"]),
    ).map(lambda a: f"param {a[0]}{a[1]} = {a[2]}{a[3]}"),
    st.tuples(
        st.sampled_from(["f(a)", "f(a, b[2])", "f(a[2])", "g(a)"]),
        st.sampled_from(["1", "2"]),
        st.sampled_from(["", " { hidden = [4] }", " { output = softplus }", " { hidden = [0], foo = 1 }"]),
    ).map(lambda a: f"net {a[0]} -> {a[1]}{a[2]}"),
    st.tuples(st.sampled_from(["e", "x", "f"]), expr).map(lambda a: f"let {a[0]} = {a[1]}"),
    st.tuples(st.sampled_from(["x", "q", "p", "k"]), expr).map(lambda a: f"der({a[0]}) = {a[1]}"),
    expr.map(lambda e: f"output y = {e}"),
    st.tuples(
        expr,
        st.sampled_from(["==", "<=", ">="]),
        expr,
        st.sampled_from(["", " for w in [-1, 1]", " for w in [1, -1]", " weight = 2", " weight = -1"]),
    ).map(lambda a: f"constraint {a[0]} {a[1]} {a[2]}{a[3]}"),
    expr.map(lambda e: f"hamiltonian = {e}"),
    expr.map(lambda e: f"J = {e}"),
    expr.map(lambda e: f"R = {e}"),
    expr.map(lambda e: f"port force {{ G = {e} }}"),
    st.sampled_from(
        [
            "sub a = M()",
            "sub a = N(k = 2)",
            "sub b = N(zz = 1)",
            "sub a = Nope()",
            "couple [a.force, b.force] C = [[0, 1], [-1, 0]]",
            "couple [a.force] C = learn skew",
            "couple [a.force, a.force] C = [[0, 1], [1, 0]]",
            "connect a.y -> b.u",
            "connect a.y -> b",
        ]
    ),
)
kind = st.sampled_from(["", " : port_hamiltonian", " : port_hamiltonian", " : other"])


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["M", "N"]), kind, st.lists(statement, max_size=8)), min_size=1, max_size=2))
def test_random_model_bodies(models):
    text = "\n".join(f"model {name}{k} {{\n" + "\n".join(f"    {s}" for s in body) + "\n}" for name, k, body in models)
    _loads_only_node_errors(text)


# Port-Hamiltonian skeletons with random H, J, R: these reach the symbolic skew/PSD proofs.
# Only exact numbers here: huge floating-point entries (exp(1e300)) crash the proofs' messages today;
# that is pinned by LOAD_CRASHERS below. Once fixed, add "0.5" and "1e300" back to these leaves.
ph_leaf = st.sampled_from(
    ["q", "p", "k", "c", "0", "1", "2", "-1", "(1/2)", "pi", "t", "d(p)", "d(q)", "sin(q)", "p^2", "c^2"]
)


def _ph_expr(children):
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "^"]), children).map(lambda a: f"({' '.join(a)})"),
        st.tuples(
            st.sampled_from(["sin", "exp", "softplus", "abs", "sqrt", "log", "sign", "tanh", "sigmoid"]), children
        ).map(lambda a: f"{a[0]}({a[1]})"),
        children.map(lambda e: f"-{e}"),
    )


ph_expr = st.recursive(ph_leaf, _ph_expr, max_leaves=4)
ph_matrix = st.one_of(
    st.just(None),
    st.tuples(ph_expr, ph_expr, ph_expr, ph_expr).map(lambda a: "[[{}, {}], [{}, {}]]".format(*a)),
    st.tuples(ph_expr, ph_expr).map(lambda a: f"[[0, {a[0]}], [-{a[0]}, {a[1]}]]"),
    st.tuples(ph_expr, ph_expr).map(lambda a: f"[[{a[0]}, 0], [0, {a[1]}]]"),
    st.tuples(ph_expr, ph_expr, ph_expr).map(lambda a: "psd([{}, {}, {}])".format(*a)),
    ph_expr.map(lambda a: f"skew([{a}])"),
    ph_expr.map(lambda a: f"diag([{a}, {a}])"),
)


@FUZZ_PH
@given(
    ph_expr,
    ph_matrix,
    ph_matrix,
    st.sampled_from(["", " learn", " learn positive", " learn in [-1, 1]"]),
    st.sampled_from(["", "output = softplus", "output = tanh"]),
)
def test_random_port_hamiltonian_structure(H, J, R, learn, out):
    text = (
        f"model P : port_hamiltonian {{\n    state q = 1\n    state p = 0\n    param k = 1.0\n"
        f"    param c = 0.5{learn}\n    net d(v) -> 1 {{ {out} }}\n    hamiltonian = {H}\n"
        + (f"    J = {J}\n" if J else "")
        + (f"    R = {R}\n" if R else "")
        + "    port force { G = [[0], [1]] }\n}\n"
    )
    _loads_only_node_errors(text)


# ------------------------------------------------------------------ (b) mutations of real files
_IMPORT = re.compile(r'^import\s+"([^"]+)"(?:\s+as\s+\w+)?[^\n]*$', re.M)


def _inline_imports(path: Path) -> str:
    """The file's text with each relative import replaced by the imported text (loads() has no files)."""
    text = path.read_text(encoding="utf-8")

    def sub(m):
        target = path.parent / m.group(1)
        return _inline_imports(target) if target.suffix == ".node" and target.is_file() else ""

    return _IMPORT.sub(sub, text)


_STDLIB_IMPORT = re.compile(r'^import\s+"[^"./]+"', re.M)  # a stdlib module: loads() cannot resolve its alias
SEEDS = [_inline_imports(p) for p in sorted(EXAMPLES.glob("*.node")) if not _STDLIB_IMPORT.search(p.read_text())] + [
    p.read_text(encoding="utf-8") for p in sorted(STDLIB.glob("*.node"))
]
_TOK = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d+\.?\d*(?:[eE][+-]?\d+)?|->|==|<=|>=|.", re.S)
ODD_CHARS = list("{}[]()=,;:.#\"'+-*/^@<>!$\\ \t\n\r") + ["\x00", "\u00e9", "\u2212", "\ufeff", "0", "9", "e", "_"]


def _edit(items: list, op: str, data, pool) -> list:
    """Delete, duplicate, swap or insert (from ``pool``) one element, at positions hypothesis draws."""
    i = data.draw(st.integers(0, len(items) - 1), label="at")
    if op == "del":
        del items[i]
    elif op == "dup":
        items.insert(i, items[i])
    elif op == "swap":
        j = data.draw(st.integers(0, len(items) - 1), label="with")
        items[i], items[j] = items[j], items[i]
    else:
        items.insert(i, data.draw(st.sampled_from(pool), label="insert"))
    return items


def _mutate(text: str, data) -> str:
    tokens = _TOK.findall(text)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        op = data.draw(
            st.sampled_from(
                ["del_char", "dup_char", "swap_char", "ins_char", "del_tok", "dup_tok", "swap_tok", "ins_tok"]
            ),
            label="op",
        )
        if op.endswith("char"):
            chars = _edit(list("".join(tokens)) or [" "], op[:-5], data, ODD_CHARS)
            tokens = _TOK.findall("".join(chars))
        else:
            tokens = _edit(tokens or [" "], op[:-4], data, TOKENS)
    return "".join(tokens)


def test_seeds_load():
    """The unmutated seeds are valid, so mutations start from programs that reach every stage."""
    for text in SEEDS:
        nodedsl.loads(text, "seed.node")


@FUZZ
@given(st.sampled_from(range(len(SEEDS))), st.data())
def test_mutated_files(seed, data):
    _loads_only_node_errors(_mutate(SEEDS[seed], data))


# ------------------------------------------------------------------ (c) no evaluation of text
DYNAMIC = re.compile(r"\b(eval|exec|sympify|parse_expr|lambdify)\s*\(")
SOURCES = sorted(PACKAGE.rglob("*.py"))
# Files with a call that is not (yet) removed, with why it is there; strict xfails, reported to the lead.
KNOWN_DYNAMIC: dict[str, str] = {}


def _source_params():
    out = []
    for path in SOURCES:
        rel = str(path.relative_to(PACKAGE))
        marks = (pytest.mark.xfail(strict=True, reason=KNOWN_DYNAMIC[rel]),) if rel in KNOWN_DYNAMIC else ()
        out.append(pytest.param(path, id=rel, marks=marks))
    return out


def test_package_sources_found():
    assert len(SOURCES) >= 10
    assert set(KNOWN_DYNAMIC) <= {str(p.relative_to(PACKAGE)) for p in SOURCES}


@pytest.mark.parametrize("path", _source_params())
def test_no_dynamic_evaluation(path: Path):
    hits = [
        f"{path.name}:{i}: {line.strip()}"
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if DYNAMIC.search(line)
    ]
    assert not hits, "source text must never be evaluated:\n" + "\n".join(hits)


# ------------------------------------------------------------------ found by fuzzing: loads() crashes
# Inputs on which nodedsl.loads once raised something other than NodeDslError: the structural proofs
# formatted huge SymPy Floats (decimal.InvalidOperation) or took eigenvalues of them (mpmath).
_PH = "model P : port_hamiltonian {{\n    state q = 1\n    state p = 0\n    hamiltonian = q^2 + p^2\n    {}\n}}\n"
LOAD_CRASHERS = {
    "not_skew_message_huge_float": _PH.format("J = [[exp(1e300), q], [q, q]]"),
    "not_psd_message_huge_float": _PH.format("R = [[0, 0], [0, -exp(1e300)]]"),
    "psd_eigenvalues_huge_floats": _PH.format("R = [[1e300, 1e300], [1e300, -1e300]]"),
}


@pytest.mark.parametrize("name", list(LOAD_CRASHERS))
def test_loads_crashers(name):
    _loads_only_node_errors(LOAD_CRASHERS[name])


# ------------------------------------------------------------------ found by fuzzing: beyond loads()
# Programs that once loaded but crashed when compiled (prog.model), or reported an 'internal'
# diagnostic. The contract: no input may produce a Python traceback.
CRASHERS = {
    "complex_constant": "model M {\n    state x = 1\n    der(x) = sqrt(-1)\n}\n",
    "log_of_negative": "model M {\n    state x = 1\n    der(x) = log(-1) * x\n}\n",
    "division_by_zero": "model M {\n    state x = 1\n    der(x) = x / 0\n}\n",
    "log_of_zero": "model M {\n    state x = 1\n    der(x) = log(0)\n}\n",
    "ph_complex_hamiltonian": "model M : port_hamiltonian {\n    state q = 1\n    state p = 0\n"
    "    hamiltonian = -log(-1) + p^2\n}\n",
    "ph_huge_power": "model M : port_hamiltonian {\n    state q = 1\n    state p = 0\n"
    "    hamiltonian = tanh(-(2 ^ 1e300)) + p^2\n}\n",
}


@pytest.mark.parametrize("name", list(CRASHERS))
def test_building_a_loaded_model_never_crashes(name):
    text = CRASHERS[name]
    try:
        prog = nodedsl.loads(text, "m.node")
        prog.model("M")
    except NodeDslError as err:
        assert "internal" not in {d.code for d in err.diagnostics}, err.diagnostics
