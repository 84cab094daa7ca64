"""The values of ``dataset`` blocks that draw per trajectory: distributions, excitation signals and input
expressions (kept apart from schema.py, which re-exports them, so each module stays small).

Example:
    >>> Signal.model_validate({"kind": "chirp", "f0": 0.1, "f1": 1.0}).amplitude
    1.0
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Tag, model_validator
from pydantic_core import PydanticCustomError

from .base import Finite, NonNegFloat, PosFloat, PosInt, _tag_errors, kind_of


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Uniform(_Strict):
    kind: Literal["uniform"]
    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _order(self) -> Self:
        if not self.high > self.low:
            raise PydanticCustomError(
                "bad_value",
                "uniform(low, high) needs low < high, got ({low}, {high})",
                {"low": self.low, "high": self.high},
            )
        return self


class Normal(_Strict):
    kind: Literal["normal"]
    mean: Finite = 0.0
    std: NonNegFloat = 1.0


def _init_tag(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, list):
        return "list"
    return kind_of(v) if isinstance(v, (dict, BaseModel)) else None


Distribution = Annotated[
    Annotated[Uniform, Tag("uniform")] | Annotated[Normal, Tag("normal")],
    Discriminator(kind_of, **_tag_errors("uniform(low, high), normal(mean, std)")),
]
Component = Annotated[
    Annotated[Finite, Tag("number")] | Annotated[Uniform, Tag("uniform")] | Annotated[Normal, Tag("normal")],
    Discriminator(_init_tag, **_tag_errors("a number, uniform(low, high), normal(mean, std)")),
]
InitValue = Annotated[
    Annotated[Finite, Tag("number")]
    | Annotated[list[Component], Tag("list")]
    | Annotated[Uniform, Tag("uniform")]
    | Annotated[Normal, Tag("normal")],
    Discriminator(_init_tag, **_tag_errors("a number, a list, uniform(low, high), normal(mean, std)")),
]


SIGNAL_KINDS = ("sine", "multisine", "chirp", "prbs", "steps")
_SIGNAL_NEEDS = {"sine": ("frequency",), "multisine": ("f0", "f1"), "chirp": ("f0", "f1"), "prbs": ("period",)}


class Signal(_Strict):
    """An excitation signal of a dataset input; every number may be a draw (one per trajectory).
    Frequencies are in cycles per time unit; ``period`` is how long prbs/steps hold a level."""

    kind: Literal["sine", "multisine", "chirp", "prbs", "steps"]
    amplitude: Component = 1.0
    offset: Component = 0.0
    frequency: Component | None = None
    phase: Component = 0.0
    f0: Component | None = None
    f1: Component | None = None
    n: PosInt = 8
    period: PosFloat | None = None

    @model_validator(mode="after")
    def _needs(self) -> Self:
        needs = _SIGNAL_NEEDS.get(self.kind, ()) + (("period",) if self.kind == "steps" else ())
        missing = [k for k in needs if getattr(self, k) is None]
        if missing:
            raise PydanticCustomError(
                "bad_value", "{kind}(...) needs {missing}", {"kind": self.kind, "missing": ", ".join(missing)}
            )
        return self


class InputExpression(_Strict):
    """A dataset input as a parenthesized expression of ``t`` and the dataset's ``draws``:
    ``force = (0.5 * sin(omega * t))`` (``expr`` is the expression's AST; checked by check_blocks)."""

    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)
    kind: Literal["expression"]
    expr: Any


def _input_tag(v: Any) -> str | None:
    tag = _init_tag(v)
    return "signal" if tag in SIGNAL_KINDS else tag


InputValue = Annotated[
    Annotated[Finite, Tag("number")]
    | Annotated[list[Finite], Tag("list")]
    | Annotated[Signal, Tag("signal")]
    | Annotated[InputExpression, Tag("expression")],
    Discriminator(
        _input_tag,
        **_tag_errors(
            "a number, a list, sine(...), multisine(...), chirp(...), prbs(...), steps(...), "
            "or a parenthesized expression of t, e.g. (0.5 * sin(omega * t))"
        ),
    ),
]
