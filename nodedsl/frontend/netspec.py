"""Neural-network terms: validated options of a ``net`` declaration (declarative; no torch).

The torch MLP is built from a :class:`NetSpec` by ``nodedsl.compiler.nets.build_mlp``.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> net = parse_source("model M { net f(a, b[2]) -> 1 { hidden = [8], output = softplus } }").models[0].body[0]
    >>> spec = net_spec(net)
    >>> spec.in_size, spec.hidden, spec.output
    (3, (8,), 'softplus')
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..core.diagnostics import Diagnostic, Span, suggest
from ..core.limits import limit, over_limit
from . import ast

# activation name -> the name of its ``torch.nn`` module class (the compiler looks the class up)
ACTIVATIONS: dict[str, str] = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "softplus": "Softplus",
    "sigmoid": "Sigmoid",
    "gelu": "GELU",
    "silu": "SiLU",
    "elu": "ELU",
    "identity": "Identity",
    "none": "Identity",
    "linear": "Identity",
}
NONNEGATIVE_OUTPUTS = {"softplus", "sigmoid", "relu"}
_KEYS = {
    "hidden": "a list of layer widths, e.g. [32, 32]",
    "activation": "an activation name",
    "output": "an output activation name",
    "init": "'default' or 'zeros' (last layer starts at zero)",
    "input_scale": "a positive number or a list of one per input component (the net sees input / scale)",
    "output_scale": "a positive number or a list of one per output (the net's output is multiplied by it)",
    "scale": "'auto' (input and output scales from the training data, stored in the run) or 'none'",
    "odd": "a list of the net's argument names: the net changes sign when all of them change sign",
    "even": "a list of the net's argument names: the net is unchanged when all of them change sign",
}


@dataclass(frozen=True)
class NetSpec:
    """A checked ``net`` declaration: input size, output size, hidden widths and activations."""

    name: str
    in_size: int
    out: int
    hidden: tuple[int, ...] = (32, 32)
    activation: str = "tanh"
    output: str = "identity"
    init: str = "default"
    input_scale: tuple[float, ...] = ()  # empty: no scaling; else one per input component
    output_scale: tuple[float, ...] = ()
    scale_auto: bool = False  # scale = auto: train sets the scaling layers from the data's statistics
    odd: tuple[int, ...] = ()  # input components flipped together, output sign flipped (symmetrised call)
    even: tuple[int, ...] = ()  # input components flipped together, output unchanged

    @property
    def nonnegative(self) -> bool:
        """True when the output activation makes every output >= 0 (used to prove R PSD)."""
        return self.output in NONNEGATIVE_OUTPUTS and not self.odd


def _options(net: ast.Net) -> Iterator[tuple[str, ast.Value, Span]]:
    for entry in net.options:
        yield entry.key, entry.value, entry.span


def validate_net_options(net: ast.Net) -> list[Diagnostic]:
    """Diagnostics for unknown keys or bad values in a net's ``{ ... }`` options."""
    out: list[Diagnostic] = []
    seen: set[str] = set()
    for key, value, span in _options(net):
        if key in seen:
            out.append(Diagnostic("duplicate-key", f"option '{key}' is given twice", span))
        seen.add(key)
        if key not in _KEYS:
            note = suggest(key, _KEYS) or "net options: " + ", ".join(_KEYS)
            out.append(Diagnostic("unknown-key", f"unknown net option '{key}'", span, (note,)))
        elif key == "hidden":
            ok = isinstance(value, ast.VList) and all(
                isinstance(i, ast.VNumber) and i.value == int(i.value) and i.value >= 1 for i in value.items
            )
            if not ok:
                out.append(Diagnostic("bad-value", f"'hidden' must be {_KEYS['hidden']}", value.span))
            elif isinstance(value, ast.VList):  # a layer of 10^8 units would allocate 10^16 weights
                wide = [i for i in value.items if isinstance(i, ast.VNumber) and i.value > limit("net-width")]
                out += [over_limit("net-width", int(i.value), "this layer", i.span) for i in wide[:1]]
        elif key in ("activation", "output"):
            name = value.name if isinstance(value, ast.VName) else None
            if name not in ACTIVATIONS:
                got = name or type(value).__name__
                out.append(
                    Diagnostic(
                        "bad-value",
                        f"'{key}' must be one of {', '.join(ACTIVATIONS)}; got '{got}'",
                        value.span,
                        tuple(n for n in [suggest(got, ACTIVATIONS)] if n),
                    )
                )
        elif key in ("input_scale", "output_scale"):
            size = sum(a.size or 1 for a in net.args) if key == "input_scale" else net.out
            if _scales(value, size) is None:
                out.append(
                    Diagnostic(
                        "bad-value",
                        f"'{key}' must be {_KEYS[key]} ({size} here)",
                        value.span,
                        ("typical magnitudes of the data, e.g. input_scale = [10, 10, 30] for Lorenz-63 states",),
                    )
                )
        elif key == "scale":
            if not (isinstance(value, ast.VName) and value.name in ("auto", "none")):
                out.append(Diagnostic("bad-value", f"'scale' must be {_KEYS['scale']}", value.span))
        elif key == "init":
            name = value.name if isinstance(value, ast.VName) else None
            if name not in ("default", "zeros"):
                out.append(Diagnostic("bad-value", f"'init' must be {_KEYS['init']}", value.span))
        elif key in ("odd", "even"):
            out += _symmetry_errors(net, key, value)
    return out


def _symmetry_errors(net: ast.Net, key: str, value: ast.Value) -> list[Diagnostic]:
    items = value.items if isinstance(value, ast.VList) else (value,)
    if not items or not all(isinstance(i, ast.VName) for i in items):
        return [Diagnostic("bad-value", f"'{key}' must be {_KEYS[key]}, e.g. {key} = [a, b]", value.span)]
    names = [a.name for a in net.args]
    other = "even" if key == "odd" else "odd"
    others = {i.name for e in net.options if e.key == other for i in _names(e.value)}
    out = []
    for i in items:
        assert isinstance(i, ast.VName)
        if i.name not in names:
            note = suggest(i.name, names) or "the arguments of " + net.name + ": " + ", ".join(names)
            out.append(
                Diagnostic("net-symmetry", f"'{i.name}' is not an argument of net '{net.name}'", i.span, (note,))
            )
        elif i.name in others and key == "even":
            out.append(Diagnostic("net-symmetry", f"'{i.name}' is declared both odd and even", i.span))
    return out


def _names(value: ast.Value) -> list[ast.VName]:
    items = value.items if isinstance(value, ast.VList) else (value,)
    return [i for i in items if isinstance(i, ast.VName)]


def _components(net: ast.Net, value: ast.Value | None) -> tuple[int, ...]:
    """The flat input components of the arguments named in ``value`` (an ``odd``/``even`` list)."""
    if value is None:
        return ()
    chosen = {i.name for i in _names(value)}
    out: list[int] = []
    at = 0
    for a in net.args:
        size = a.size or 1
        if a.name in chosen:
            out += range(at, at + size)
        at += size
    return tuple(out)


def net_spec(net: ast.Net) -> NetSpec:
    """The spec of a checked net declaration (call after validate_net_options found nothing)."""
    opts: dict[str, Any] = {k: v for k, v, _ in _options(net)}
    hidden = tuple(int(i.value) for i in opts["hidden"].items) if "hidden" in opts else (32, 32)
    in_size = sum(a.size or 1 for a in net.args)
    return NetSpec(
        net.name,
        in_size,
        net.out,
        hidden,
        opts["activation"].name if "activation" in opts else "tanh",
        opts["output"].name if "output" in opts else "identity",
        opts["init"].name if "init" in opts else "default",
        _scales(opts["input_scale"], in_size) or () if "input_scale" in opts else (),
        _scales(opts["output_scale"], net.out) or () if "output_scale" in opts else (),
        "scale" in opts and getattr(opts["scale"], "name", "") == "auto",
        _components(net, opts.get("odd")),
        _components(net, opts.get("even")),
    )


def _scales(value: ast.Value, size: int) -> tuple[float, ...] | None:
    """``size`` positive finite scales from a number (repeated) or a list of ``size`` numbers; else None."""
    items = value.items if isinstance(value, ast.VList) else (value,)
    if not all(isinstance(i, ast.VNumber) for i in items):
        return None
    vals = tuple(float(i.value) for i in items if isinstance(i, ast.VNumber))
    if len(vals) == 1:
        vals = vals * size
    ok = len(vals) == size and all(0 < v < float("inf") for v in vals)
    return vals if ok else None
