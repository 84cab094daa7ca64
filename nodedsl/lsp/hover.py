"""Hover text (Markdown) for a resolved name: kind, size, bounds, and its equation in mathematical form.

Example:
    >>> from nodedsl.lsp.analysis import Analyzer
    >>> from nodedsl.lsp.index import resolve
    >>> text = "model M { state x = 1\\n param k = 2 learn positive\\n der(x) = -k*x }"
    >>> res = Analyzer().analyze("/tmp/h.node", text)
    >>> print(hover_text(res, resolve(res, "/tmp/h.node", 3, 6)))
    **state** `x`: scalar, initially `1`
    <BLANKLINE>
    ```
    d/dt x = -k*x
    ```
"""

from __future__ import annotations

from ..core.diagnostics import Span
from ..frontend import ast
from ..frontend.shapes import BUILTINS, CONSTANTS, fmt_shape
from .analysis import Analysis
from .index import Target, lookup_model

_ARGS = ("x", "y", "z", "w")


def span_text(res: Analysis, span: Span) -> str:
    """The source text of ``span`` (whitespace runs squeezed to one space)."""
    lines = res.source.texts.get(span.file, "").splitlines()
    if span.line <= 0 or span.line > len(lines):
        return ""
    if span.end_line == span.line:
        piece = lines[span.line - 1][span.col - 1 : span.end_col - 1]
    else:
        piece = "\n".join(
            [
                lines[span.line - 1][span.col - 1 :],
                *lines[span.line : span.end_line - 1],
                lines[span.end_line - 1][: span.end_col - 1],
            ]
        )
    return " ".join(piece.split())


def signature(name: str) -> str:
    """A builtin's call form: ``clip(x, y, z)``; optional arguments in brackets."""
    lo, hi = BUILTINS[name].arity
    args = [_ARGS[i] if i < len(_ARGS) else f"a{i}" for i in range(hi)]
    shown = ", ".join(args[:lo]) + (f"[, {', '.join(args[lo:])}]" if hi > lo else "")
    return f"{name}({shown})"


def _size(res: Analysis, t: Target) -> str:
    info = res.info(t.file, t.model.name) if t.model is not None and t.file else None
    member = info.members.get(t.name) if info else None
    if member is not None:
        return fmt_shape(member.shape)
    size = getattr(t.decl, "size", None)
    return "scalar" if size is None else f"vector[{size}]"


def _leading_comment(res: Analysis, file: str, line: int) -> str:
    lines = res.source.texts.get(file, "").splitlines()
    out: list[str] = []
    k = line - 2
    while k >= 0 and lines[k].lstrip().startswith("#"):
        out.insert(0, lines[k].lstrip()[1:].strip())
        k -= 1
    return "\n".join(out)


def _port(res: Analysis, t: Target) -> list[str]:
    assert t.model is not None and t.file is not None
    g = next((i for i in t.decl.items if i.key == "G"), None)
    out = [f"**port** `{t.name}` of `{t.model.name}`", "", "```", "y = G^T grad H"]
    if g is not None:
        out.append(f"G = {span_text(res, g.expr.span)}")
    info = res.info(t.file, t.model.name)
    broken = any(
        d.severity == "error" and d.span.file == t.file and t.model.span.line <= d.span.line <= t.model.span.end_line
        for d in res.diagnostics
    )
    if info is not None and not broken:
        try:
            from ..symbolic.lower import lower  # sympy, only for a port's derived output

            ph = lower(info).ph
            for port in ph.ports if ph else []:
                if port.name == t.name:
                    out += [f"y({u}) = {y}" for u, y in zip(port.inputs, port.output)]
        except Exception:  # the hover still shows the definition
            pass
    return out + ["```"]


def _model(res: Analysis, t: Target) -> list[str]:
    assert t.file is not None
    kind = " : port_hamiltonian" if t.decl.kind else ""
    out = [f"**model** `{t.name}{kind}`"]
    info = res.info(t.file, t.name)
    if info is not None:
        out += ["", info.summary()]
    doc = _leading_comment(res, t.file, t.decl.span.line)
    return out + (["", doc] if doc else [])


def _equation(res: Analysis, t: Target) -> list[str]:
    """A state's equation: its ``der`` line, or the port-Hamiltonian form."""
    assert t.model is not None
    for d in t.model.decls(ast.Der):
        if d.state == t.name:
            return ["", "```", f"d/dt {t.name} = {span_text(res, d.expr.span)}", "```"]
    if t.model.is_port_hamiltonian:
        return ["", "```", "dx/dt = (J - R) grad H + G u", "```"]
    return []


def hover_text(res: Analysis, t: Target) -> str:
    """Markdown describing ``t``."""
    if t.kind == "builtin":
        return f"```\n{signature(t.name)}\n```\n{BUILTINS[t.name].doc}"
    if t.kind == "constant":
        return "**t**: the time" if t.name == "t" else f"**constant** `{t.name}` = {CONSTANTS[t.name]}"
    if t.kind == "model":
        return "\n".join(_model(res, t))
    if t.kind == "dataset":
        model = next((e for e in t.decl.entries if e.key == "model"), None)
        what = f" of `{span_text(res, model.value.span)}`" if model else ""
        return f"**dataset** `{t.name}`{what}"
    d = t.decl
    head = f"**{t.kind}** `{t.name}`"
    if t.kind == "state":
        init = f", initially `{span_text(res, d.init.span)}`" if d.init is not None else ""
        return "\n".join([f"{head}: {_size(res, t)}{init}", *_equation(res, t)])
    if t.kind == "param":
        how = "known"
        if d.learn is not None:
            how = {"free": "learned", "positive": "learned, > 0"}.get(d.learn.kind, "")
            if d.learn.kind == "interval":
                how = f"learned in [{span_text(res, d.learn.low.span)}, {span_text(res, d.learn.high.span)}]"
        return f"{head}: {_size(res, t)} = `{span_text(res, d.value.span)}` ({how})"
    if t.kind == "input":
        default = f", default `{span_text(res, d.default.span)}`" if d.default is not None else ""
        return f"{head}: {_size(res, t)}{default}"
    if t.kind in ("let", "output"):
        return f"{head}: {_size(res, t)}\n\n```\n{t.name} = {span_text(res, d.expr.span)}\n```"
    if t.kind == "net":
        return f"{head}\n\n```\n{span_text(res, d.span)}\n```"
    if t.kind == "port":
        return "\n".join(_port(res, t))
    if t.kind == "sub":
        out = [f"{head} = `{span_text(res, d.span).split('=', 1)[-1].strip()}`"]
        found = lookup_model(res, t.file or "", d.model.dotted)
        info = res.info(*found[0:1], found[1].name) if found else None
        if info is not None:
            out += ["", info.summary()]
        return "\n".join(out)
    return head
