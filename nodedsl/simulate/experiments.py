"""``simulate --trajectories N`` without ``--dataset``: N experiments from random initial states and inputs
given on the command line, built into a dataset configuration and simulated like one.

Initial states: ``--init-range x=-1:1`` draws ``x`` uniformly per trajectory (every component of a vector
state); ``--set x=0.5`` fixes it; other states start at their declared values. Inputs (``--input``): a
number, an excitation signal (``multisine(amplitude = 2, f0 = 0.1, f1 = 1)``, ``chirp``, ``prbs``,
``steps``, ``sine``: random phases and levels per trajectory) or an expression of ``t`` and the
``--draw`` numbers (``--draw omega=uniform(1, 3)`` ``--input "force=0.5 * sin(omega * t)"``). The seed
is ``--seed``, the solver ``--solver`` (default dopri5, rtol 1e-9, atol 1e-11, as ``simulate``). The table
has every state, output and input.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model M { state x = 1\\n input u\\n der(x) = -x + u }")
    >>> t = random_table(prog, "M", None, 3, 1.0, 0.5, inits=("x=-1:1",), inputs=("u=sin(t)",))
    >>> t.columns, t.rows.shape
    (['trajectory', 't', 'x', 'u'], (9, 4))
"""

from __future__ import annotations

import math

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from ..frontend import ast
from .table import Table, _arg_error

__all__ = ["random_table"]


def _pair(item: str, option: str) -> tuple[str, str]:
    if "=" not in item:
        raise _arg_error(option, f"'{item}' must have the form name=value")
    name, value = item.split("=", 1)
    return name.strip(), value.strip()


def _range(text: str, option: str) -> dict:
    lo_hi = text.split(":")
    try:
        lo, hi = (float(v) for v in lo_hi) if len(lo_hi) == 2 else (math.nan, math.nan)
    except ValueError:
        lo, hi = math.nan, math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise _arg_error(option, f"'{text}' is not a range LOW:HIGH with LOW < HIGH, e.g. -1:1")
    return {"kind": "uniform", "low": lo, "high": hi}


def _value(text: str, what: str, calls: tuple[str, ...] | None = None):
    """A block value from the command line: a number, a call (signal or distribution), else an expression.
    ``calls``: the call names that are values here (others, like ``sin(t)``, are expressions)."""
    from ..frontend.config.values import normalize, to_plain
    from ..frontend.parse import parse_expression, parse_value

    try:
        value = parse_value(text, what)
    except NodeDslError:
        value = None
    if isinstance(value, ast.VCall) and calls is not None and value.name not in calls:
        value = None  # `sin(t)`: a builtin of t, so an expression, not a signal or a distribution
    if isinstance(value, (ast.VNumber, ast.VCall, ast.VExpr)):
        spans: dict = {}
        diags: list[Diagnostic] = []
        out = normalize(to_plain(value, (), spans, diags), (), spans, diags)
        if diags:
            raise NodeDslError(diags)
        return out
    return {"kind": "expression", "expr": parse_expression(text, what)}


def _config(prog, name: str, count: int, t_end: float, step: float, opts: dict):
    from ..frontend.config import DatasetConfig
    from ..frontend.config.draws import SIGNAL_KINDS

    data: dict = {
        "model": name,
        "trajectories": count,
        "time": {"kind": "span", "t0": 0.0, "t1": t_end, "step": step},
        "seed": opts["seed"],
        "solver": _value(opts["solver"], "<--solver>"),
    }
    data["initial"] = {n: _range(v, "--init-range") for n, v in (_pair(i, "--init-range") for i in opts["inits"])}
    for n, v in (_pair(i, "--set") for i in opts["sets"]):
        try:
            data["initial"][n] = float(v)
        except ValueError:
            raise _arg_error("--set", f"'{v}' is not a number") from None
    data["draws"] = {n: _value(v, "<--draw>") for n, v in (_pair(i, "--draw") for i in opts["draws"])}
    signals = (*SIGNAL_KINDS, "uniform", "normal")
    data["inputs"] = {n: _value(v, "<--input>", signals) for n, v in (_pair(i, "--input") for i in opts["inputs"])}
    try:
        return DatasetConfig.model_validate(data)
    except Exception as err:  # pydantic's ValidationError: one line per problem
        lines = [e.get("msg", str(e)) + " (" + ".".join(map(str, e.get("loc", ()))) + ")" for e in err.errors()]
        raise _arg_error("--trajectories", "; ".join(lines)) from None


def random_table(
    prog,
    name: str,
    run: str | None,
    count: int,
    t_end: float,
    step: float,
    *,
    inits: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    inputs: tuple[str, ...] = (),
    draws: tuple[str, ...] = (),
    seed: int = 0,
    solver: str = "dopri5(rtol = 1e-9, atol = 1e-11)",
) -> Table:
    """``count`` simulations of model ``name`` (trained with ``run``) on ``[0, t_end]`` at ``step``, by
    ``solver`` (simulate's default: dopri5 with tight tolerances)."""
    from ..core.diagnostics import Collector
    from ..frontend.check_inputs import check_input_expressions
    from . import config_table

    if count < 1:
        raise _arg_error("--trajectories", "--trajectories must be at least 1")
    if not (step > 0 and t_end > 0 and math.isfinite(step) and math.isfinite(t_end)):
        raise _arg_error("--t-end/--step", "--t-end and --step must be positive finite numbers")
    opts = {"inits": inits, "sets": sets, "inputs": inputs, "draws": draws, "seed": seed, "solver": solver}
    cfg = _config(prog, name, count, t_end, step, opts)
    info = prog.info(name)
    states = {n for n, _ in info.states}
    for n in cfg.initial:
        if n not in states and n.split("[", 1)[0] not in states:
            raise _arg_error(
                "--init-range/--set",
                f"model '{name}' has no state '{n}'",
                suggest(n, sorted(states)) or "states: " + ", ".join(sorted(states)),
            )
    diags = Collector()
    check_input_expressions(info, ast.Dataset("--trajectories", (), Span("<--input>", 1, 1)), cfg, diags)
    diags.raise_if_errors()
    return config_table(prog, cfg, name, run)
