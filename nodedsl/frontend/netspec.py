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

    @property
    def nonnegative(self) -> bool:
        """True when the output activation makes every output >= 0 (used to prove R PSD)."""
        return self.output in NONNEGATIVE_OUTPUTS


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
    return out


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
