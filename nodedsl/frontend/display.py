"""A checked model as its equations, in plain text or LaTeX, straight from the syntax tree (no SymPy).

Used for the terminal and notebook display (``__repr__`` and ``_repr_latex_``) of a checked model;
the lowered system's display (``nodedsl.symbolic.lower.System``) shows the derived equations.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> m = parse_source("model M { state theta = 1\\n param k = 2\\n der(theta) = -k*sin(theta)^2/2 }").models[0]
    >>> print(model_text(m))
    model M
      state theta = 1
      param k = 2
      d/dt theta = -k * sin(theta)^2 / 2
    >>> expr_latex(m.body[2].expr)
    '\\\\frac{-k \\\\cdot \\\\sin\\\\left(\\\\theta\\\\right)^{2}}{2}'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from . import ast

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "@": 2, "^": 4}
_GREEK = frozenset(
    [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
        "mu",
        "nu",
        "xi",
        "pi",
        "rho",
        "sigma",
        "tau",
        "phi",
        "chi",
        "psi",
        "omega",
        "Gamma",
        "Delta",
        "Theta",
        "Lambda",
        "Xi",
        "Pi",
        "Sigma",
        "Phi",
        "Psi",
        "Omega",
    ]
)
_LATEX_FUNCS = frozenset(["sin", "cos", "tan", "exp", "log", "tanh"])


def _prec(e: ast.Expr) -> int:
    if isinstance(e, ast.BinOp):
        return _PREC[e.op]
    return 3 if isinstance(e, ast.Neg) else 5


def expr_text(e: ast.Expr) -> str:
    """An expression in the language's own syntax, with only the parentheses it needs."""
    if isinstance(e, ast.Num):
        return e.text or f"{e.value:g}"
    if isinstance(e, ast.Name):
        return e.dotted
    if isinstance(e, ast.Call):
        return f"{e.func.dotted}({', '.join(expr_text(a) for a in e.args)})"
    if isinstance(e, ast.Index):
        col = "" if e.col is None else f", {expr_text(e.col)}"
        return f"{_wrap(e.target, 5, expr_text)}[{expr_text(e.index)}{col}]"
    if isinstance(e, ast.Slice):
        lo, hi = ("" if b is None else expr_text(b) for b in (e.low, e.high))
        return f"{_wrap(e.target, 5, expr_text)}[{lo}:{hi}]"
    if isinstance(e, ast.Comprehension):
        return f"[{expr_text(e.expr)} for {e.var} in {expr_text(e.low)}..{expr_text(e.high)}]"
    if isinstance(e, ast.Array):
        return "[" + ", ".join(expr_text(a) for a in e.items) + "]"
    if isinstance(e, ast.Neg):
        return "-" + _wrap(e.operand, 3, expr_text)
    p = _PREC[e.op]
    if e.op == "^":
        return f"{_wrap(e.left, 5, expr_text)}^{_wrap(e.right, 3, expr_text)}"
    return f"{_wrap(e.left, p, expr_text)} {e.op} {_wrap(e.right, p + 1, expr_text)}"


def _wrap(e: ast.Expr, need: int, show: Callable[[ast.Expr], str]) -> str:
    s = show(e)
    return f"({s})" if _prec(e) < need else s


def _name_latex(name: str) -> str:
    parts = name.split(".")
    last = parts[-1]
    base = f"\\{last}" if last in _GREEK else last if len(last) == 1 else f"\\mathrm{{{_escape(last)}}}"
    return base + (f"_{{\\mathrm{{{_escape('.'.join(parts[:-1]))}}}}}" if len(parts) > 1 else "")


def expr_latex(e: ast.Expr) -> str:
    """An expression in LaTeX: fractions, powers, matrices, subscripts for indices."""
    if isinstance(e, ast.Num):
        return e.text or f"{e.value:g}"
    if isinstance(e, ast.Name):
        return _name_latex(e.dotted)
    if isinstance(e, ast.Call):
        args = ", ".join(expr_latex(a) for a in e.args)
        name = e.func.dotted
        if name == "sqrt" and len(e.args) == 1:
            return f"\\sqrt{{{args}}}"
        head = f"\\{name}" if name in _LATEX_FUNCS else f"\\operatorname{{{name}}}"
        return f"{head}\\left({args}\\right)"
    if isinstance(e, ast.Index):
        col = "" if e.col is None else f", {expr_latex(e.col)}"
        return f"{_wrap(e.target, 5, expr_latex)}_{{{expr_latex(e.index)}{col}}}"
    if isinstance(e, (ast.Slice, ast.Comprehension)):
        return f"\\mathtt{{{_escape(expr_text(e))}}}"
    if isinstance(e, ast.Array):
        if all(isinstance(r, ast.Array) for r in e.items):
            rows = " \\\\ ".join(" & ".join(expr_latex(x) for x in cast(ast.Array, r).items) for r in e.items)
        else:
            rows = " \\\\ ".join(expr_latex(x) for x in e.items)
        return f"\\begin{{bmatrix}} {rows} \\end{{bmatrix}}"
    if isinstance(e, ast.Neg):
        return "-" + _wrap(e.operand, 3, expr_latex)
    if e.op == "/":
        return f"\\frac{{{expr_latex(e.left)}}}{{{expr_latex(e.right)}}}"
    if e.op == "^":
        return f"{_wrap(e.left, 5, expr_latex)}^{{{expr_latex(e.right)}}}"
    op = {"*": " \\cdot ", "@": " ", "+": " + ", "-": " - "}[e.op]
    p = _PREC[e.op]
    return f"{_wrap(e.left, p, expr_latex)}{op}{_wrap(e.right, p + 1, expr_latex)}"


_LEARN = {"free": "learned", "positive": "learned, > 0", "interval": "learned in an interval"}


def _declarations(model: ast.Model) -> list[str]:
    out = []
    for d in model.body:
        if isinstance(d, ast.State | ast.Input | ast.Param):
            value = d.init if isinstance(d, ast.State) else d.default if isinstance(d, ast.Input) else d.value
            size = f"[{d.size}]" if d.size else ""
            learn = f" ({_LEARN[d.learn.kind]})" if isinstance(d, ast.Param) and d.learn else ""
            init = f" = {expr_text(value)}" if value is not None else ""
            out.append(f"{type(d).__name__.lower()} {d.name}{size}{init}{learn}")
        elif isinstance(d, ast.Sub):
            out.append(
                f"sub {d.name} = {d.model.dotted}("
                + ", ".join(f"{o.name} = {expr_text(o.expr)}" for o in d.overrides)
                + ")"
            )
        elif isinstance(d, ast.Couple):
            ports = ", ".join(n.dotted for n in d.ports)
            out.append(
                f"couple [{ports}] {d.matrix_name} = " + (expr_text(d.matrix) if d.matrix else f"learn {d.learn}")
            )
        elif isinstance(d, ast.Connect):
            out.append(f"connect {d.source.dotted} -> {d.target.dotted}")
        elif isinstance(d, ast.Net):
            out.append(f"net {d.name}: R^{sum(a.size or 1 for a in d.args)} -> R^{d.out}")
    return out


def _equations(model: ast.Model, latex: bool) -> list[tuple[str, str, str]]:
    """(left side, relation, right side) of every equation of the model."""
    expr = expr_latex if latex else expr_text
    name = _name_latex if latex else (lambda n: n)
    out = []
    for d in model.body:
        if isinstance(d, ast.Der):
            lhs = f"\\frac{{d{name(d.state)}}}{{dt}}" if latex else f"d/dt {d.state}"
            out.append((lhs, "=", expr(d.expr)))
        elif isinstance(d, ast.Let | ast.Output):
            out.append((name(d.name) if latex else f"{type(d).__name__.lower()} {d.name}", "=", expr(d.expr)))
        elif isinstance(d, ast.Hamiltonian | ast.JMatrix | ast.RMatrix):
            out.append(({ast.Hamiltonian: "H", ast.JMatrix: "J", ast.RMatrix: "R"}[type(d)], "=", expr(d.expr)))
        elif isinstance(d, ast.Port):
            for i in d.items:
                lhs = f"{i.key}_{{\\mathrm{{{_escape(d.name)}}}}}" if latex else f"port {d.name}: {i.key}"
                out.append((lhs, "=", expr(i.expr)))
        elif isinstance(d, ast.Constraint):
            rel = {"==": "=", "<=": "\\le", ">=": "\\ge"}[d.op] if latex else d.op
            named = f"constraint {d.name}: " if d.name and not latex else "constraint " if not latex else ""
            out.append((named + expr(d.lhs), rel, expr(d.rhs)))
    return out


def _escape(text: str) -> str:
    return text.replace("_", "\\_")


def model_text(model: ast.Model) -> str:
    """The model's declarations and equations as text (see the module example)."""
    kind = f" : {model.kind}" if model.kind else ""
    rows = _declarations(model) + [f"{a} {r} {b}" for a, r, b in _equations(model, latex=False)]
    return "\n".join([f"model {model.name}{kind}", *("  " + row for row in rows)])


def model_latex(model: ast.Model) -> str:
    """The model's equations as a LaTeX ``aligned`` block between ``$$``."""
    rows = [f"{a} &{r} {b}" for a, r, b in _equations(model, latex=True)]
    rows += [f"&\\text{{{_escape(d)}}}" for d in _declarations(model) if d.startswith(("sub ", "couple ", "connect "))]
    title = f"\\text{{{_escape(model.name)}}}"
    return "$$" + title + "\\quad \\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}$$"
