"""Notebook and terminal display: a Program, a checked model and a lowered system show their equations
(``__repr__``) and render as LaTeX (``_repr_latex_``)."""

from __future__ import annotations

import nodedsl
from nodedsl.frontend.display import expr_latex, expr_text
from nodedsl.frontend.parse import parse_source

SRC = """model Decay {
    state x_pos[2] = [1, 2]
    param k = 0.5 learn positive
    der(x_pos) = -k * x_pos
    output total = x_pos[0] + x_pos[1]
    constraint bound: total <= 10
}
"""


def test_reprs_show_equations():
    prog = nodedsl.loads(SRC, "d.node")
    info, system = prog.info("Decay"), prog.system("Decay")
    assert repr(info).splitlines() == [
        "<Decay: 2 states, 0 inputs, 1 params (1 learned), 0 nets, 1 constraints>",
        "model Decay",
        "  state x_pos[2] = [1, 2]",
        "  param k = 0.5 (learned, > 0)",
        "  d/dt x_pos = -k * x_pos",
        "  output total = x_pos[0] + x_pos[1]",
        "  constraint bound: total <= 10",
    ]
    assert repr(system).splitlines() == [
        "System Decay",
        "  d/dt x_pos[0] = -k*x_pos[0]",
        "  d/dt x_pos[1] = -k*x_pos[1]",
        "  total = x_pos[0] + x_pos[1]",
    ]
    assert repr(prog).splitlines()[0] == "Program d.node" and repr(info) in repr(prog)


def test_latex():
    prog = nodedsl.loads(SRC, "d.node")
    latex = prog.info("Decay")._repr_latex_()
    assert latex.startswith("$$") and latex.endswith("$$")
    assert "\\frac{d\\mathrm{x\\_pos}}{dt} &= -k \\cdot \\mathrm{x\\_pos}" in latex
    assert "\\mathrm{total} &\\le 10" in latex
    assert prog._repr_latex_() == prog.system("Decay")._repr_latex_()
    assert "\\mathrm{total} &= " in prog.system("Decay")._repr_latex_()


def test_expressions_keep_their_meaning():
    """Printing then parsing an expression gives the same tree (parentheses only where needed)."""
    for text in ["-(a + b)^2 / c", "a - (b - c)", "(a - b) - c", "a^b^c", "(a^b)^c", "-a^2", "q[0] @ [[1, 2], [3, 4]]"]:
        e = parse_source(f"model M {{ let v = {text} }}").models[0].body[0].expr
        printed = expr_text(e)
        assert parse_source(f"model M {{ let v = {printed} }}").models[0].body[0].expr == e, (text, printed)
    e = parse_source("model M { let v = sqrt(a) / 2 }").models[0].body[0].expr
    assert expr_latex(e) == "\\frac{\\sqrt{a}}{2}"
