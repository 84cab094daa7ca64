"""Mathematical display of a lowered system (plain text or LaTeX), built from SymPy objects.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model M { state x = 1\\n param k = 2\\n der(x) = -k*x }")
    >>> print(format_system(prog.system("M"), prog.info("M")).splitlines()[-1])
      d/dt x = -k*x
"""

from __future__ import annotations

import sympy as sp

from ..frontend.check import ModelInfo
from .lower import System


def _fmt(e, latex: bool) -> str:
    if latex:
        return sp.latex(e)
    if isinstance(e, sp.MatrixBase):
        return "[" + ", ".join("[" + ", ".join(sp.sstr(x) for x in row) + "]" for row in e.tolist()) + "]"
    return sp.sstr(e)


def _values(v: list[float]) -> str:
    return f"{v[0]:g}" if len(v) == 1 else "[" + ", ".join(f"{x:g}" for x in v) + "]"


def format_system(system: System, info: ModelInfo, *, latex: bool = False) -> str:
    """Every part of a model: states, inputs, parameters, nets, equations, ports, constraints."""
    kind = " : port_hamiltonian" if info.is_ph else ""
    lines = [f"model {system.name}{kind}"]
    lines.append("  states: " + ", ".join(f"{n} (x0 = {v:g})" for n, v in zip(system.state_names, system.x0)))
    if system.inputs:
        lines.append("  inputs: " + ", ".join(f"{n} (default {v:g})" for n, v in zip(system.input_names, system.u0)))
    for p in system.params:
        if p.learn is None:
            how = "known"
        elif p.learn == "interval":
            how = f"learned in [{p.low:g}, {p.high:g}]"
        elif p.learn == "positive":
            how = "learned, > 0"
        elif p.learn == "skew":
            how = "learned coupling, skew(C)"
        else:
            how = "learned"
        lines.append(f"  param {p.name} = {_values(p.value)} ({how})")
    for name, spec in system.nets.items():
        lines.append(
            f"  net {name}: R^{spec.in_size} -> R^{spec.out}, hidden {list(spec.hidden)}, "
            f"{spec.activation}, output {spec.output}"
        )
    if system.ph is not None:
        ph = system.ph
        lines.append(f"  H = {_fmt(ph.H, latex)}")
        J, R, gs = ph.assemble()
        lines.append(f"  J = {_fmt(J, latex)}")
        lines.append(f"  R = {_fmt(R, latex)}")
        for port in ph.ports:
            lines.append(f"  port {port.name}: G = {_fmt(gs.get(port.name, port.G), latex)}")
            for u, y in zip(port.inputs, port.output):
                lines.append(f"    output y({u}) = {_fmt(y, latex)}")
        lines.append("  dynamics: dx/dt = (J - R) grad H + G u")
        if ph.supplied != 0 or any(p.static for p in ph.ports):
            lines.append("  energy balance: dH/dt = -P_dissipated + P_supplied, P_supplied = y^T u + P_sources")
            lines.append(f"    P_dissipated = grad H^T R grad H + P_resistors = {_fmt(ph.dissipation, latex)}")
            lines.append(f"    P_sources = {_fmt(ph.supplied, latex)}")
        else:
            lines.append("  energy balance: dH/dt = -P_dissipated + P_supplied, P_supplied = y^T u")
            lines.append(f"    P_dissipated = grad H^T R grad H = {_fmt(ph.dissipation, latex)}")
    for c in system.constraints:
        op = "==" if c.kind == "eq" else "<="
        dom = ""
        if c.domains:
            dom = " for " + ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, _, lo, hi in c.domains)
        res = ", ".join(_fmt(r, latex) for r in c.residual)
        lines.append(f"  constraint {c.name}: {res} {op} 0{dom}" + (f" (weight {c.weight:g})" if c.weight != 1 else ""))
    if system.outputs and system.output_names != system.state_names:
        for n, e in zip(system.output_names, system.outputs):
            lines.append(f"  output {n} = {_fmt(e, latex)}")
    noise = getattr(system, "noise", None)
    if noise is None:
        for s, e in zip(system.states, system.rhs):
            lines.append(f"  d/dt {s.name} = {_fmt(e, latex)}")
    else:
        lines += _sde_lines(system, noise, latex)
    for ev in system.events:
        resets = ", ".join(f"{s.name} = {_fmt(e, latex)}" for s, e in ev.resets.items()) or "nothing"
        lines.append(f"  when {ev.text}: reset {resets}")
    return "\n".join(lines)


def _sde_lines(system: System, noise, latex: bool) -> list[str]:
    """The Ito SDE ``dx = f dt + g dW``: per state, its drift and its noise terms (``W_k``: independent
    Wiener processes; diagonal noise drives state i by ``W_i``)."""
    kind = "diagonal" if noise.kind == "diagonal" else f"general, {noise.channels} Wiener processes"
    strat = getattr(noise, "sde_type", "ito") == "stratonovich"
    reading = "Stratonovich SDE" if strat else "Ito SDE"
    lines = [
        f"  {reading} ({kind} noise{', additive' if noise.additive else ''}): dx = f dt + g {'o ' if strat else ''}dW"
    ]
    g = noise.matrix()
    for i, (s, e) in enumerate(zip(system.states, system.rhs)):
        terms = [f"({_fmt(g[i, k], latex)}) dW{k}" for k in range(g.cols) if g[i, k] != 0]
        if not terms:
            lines.append(f"  d/dt {s.name} = {_fmt(e, latex)}")
        else:
            lines.append(f"  d{s.name} = ({_fmt(e, latex)}) dt + " + " + ".join(terms))
    if system.ph is not None:
        from .noise import ito_correction_expr

        ito = ito_correction_expr(noise, system.ph.H, list(system.states))
        lines.append("  Ito energy balance: dH = (-P_dissipated + P_supplied + P_ito) dt + grad H^T g dW")
        form = "1/2 tr(g^T Hess(H) g)" + (" + grad H^T (1/2 g dg/dx)" if strat and not noise.additive else "")
        lines.append(f"    P_ito = {form} = {_fmt(ito, latex)}")
    return lines


def format_latex(system: System, info: ModelInfo) -> str:
    """The model's equations as one standalone LaTeX ``align*`` block (amsmath), ready for a paper:
    the dynamics (``(J - R) grad H + G u`` written out for port-Hamiltonian models, with ``H``, ``J``,
    ``R``), the outputs and the constraints; a ``%`` comment names the model and its parameters.

    Example:
        >>> import nodedsl
        >>> prog = nodedsl.loads("model M { state x = 1\\n param k = 2\\n der(x) = -k*x }")
        >>> print(format_latex(prog.system("M"), prog.info("M")))
        % model M; parameters: k = 2 (known)
        \\begin{align*}
          \\frac{\\mathrm{d} x}{\\mathrm{d} t} &= - k x
        \\end{align*}
    """
    params = ", ".join(
        f"{p.name} = {_values(p.value)} ({'known' if p.learn is None else 'learned'})" for p in system.params
    )
    nets = ", ".join(f"{n}: R^{s.in_size} -> R^{s.out}" for n, s in system.nets.items())
    head = (
        f"% model {system.name}" + (f"; parameters: {params}" if params else "") + (f"; nets: {nets}" if nets else "")
    )
    rows = []
    if system.ph is not None:
        J, R, _ = system.ph.assemble()
        rows.append(f"H &= {sp.latex(system.ph.H)}")
        rows.append(f"J &= {sp.latex(J)}, \\quad R = {sp.latex(R)}")
    for s, e in zip(system.states, system.rhs):
        rows.append(f"\\frac{{\\mathrm{{d}} {sp.latex(s)}}}{{\\mathrm{{d}} t}} &= {sp.latex(e)}")
    if system.outputs and system.output_names != system.state_names:
        for n, e in zip(system.output_names, system.outputs):
            rows.append(f"{sp.latex(sp.Symbol(n))} &= {sp.latex(e)}")
    for c in system.constraints:
        op = "=" if c.kind == "eq" else "\\le"
        dom = ""
        if c.domains:
            dom = "\\quad \\text{for } " + ", ".join(
                f"{sp.latex(sp.Symbol(n))} \\in [{lo:g}, {hi:g}]" for n, _, lo, hi in c.domains
            )
        for r in c.residual:
            rows.append(f"{sp.latex(r)} &{op} 0{dom} && \\text{{({_tex_text(c.name)})}}")
    body = " \\\\\n".join(f"  {r}" for r in rows)
    return f"{head}\n\\begin{{align*}}\n{body}\n\\end{{align*}}"


def latex_document(blocks: list[str]) -> str:
    """A compilable LaTeX document (``pdflatex``) holding ``blocks`` (from :func:`format_latex`)."""
    body = "\n\n".join(blocks)
    return "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n\n" + body + "\n\n\\end{document}\n"


def _tex_text(text: str) -> str:
    """Text for ``\\text{...}``: LaTeX's special characters escaped (constraint names have underscores)."""
    for ch in "\\&%$#_{}":
        text = text.replace(ch, "\\" + ch)
    return text
